"""SaslHandshake and SaslAuthenticate (KIP-43, KIP-152), and the raw token frames that
follow a v0 handshake. The state machine is in kcli.broker.security.session."""

from __future__ import annotations

import datetime
import struct
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.scram import AuthenticationFailed
from kcli.broker.security.session import SaslState, Session
from kcli.broker.server import CloseConnection


@handles(ApiKey.SASL_HANDSHAKE)
async def sasl_handshake(ctx: RequestContext, request: Any) -> Any:
    """Choose the mechanism; v1 puts the tokens in SaslAuthenticate, v0 in raw frames."""
    session = ctx.session
    mechanisms = session.security.mechanisms if session.security is not None else ()
    cls = ctx.response_class()
    if session.security is None or not ctx.session.listener.protocol.sasl:
        return make(cls, error_code=ErrorCode.illegal_sasl_state, mechanisms=())
    reauthenticating = session.state is SaslState.COMPLETE
    if reauthenticating and session.security.reauth_ms <= 0:
        return make(cls, error_code=ErrorCode.illegal_sasl_state, mechanisms=mechanisms)
    wanted = request.mechanism
    if wanted not in mechanisms or (reauthenticating and wanted != session.mechanism):
        session.close_after = 0.0
        return make(cls, error_code=ErrorCode.unsupported_sasl_mechanism,
                    mechanisms=mechanisms)
    session.begin(wanted, ctx.version, ctx.broker.scram_credential)
    return make(cls, error_code=ErrorCode.none, mechanisms=mechanisms)


@handles(ApiKey.SASL_AUTHENTICATE)
async def sasl_authenticate(ctx: RequestContext, request: Any) -> Any:
    """One token of the exchange; the last one completes the session."""
    session = ctx.session
    cls = ctx.response_class()
    if session.state is not SaslState.AUTHENTICATE:
        return make(cls, error_code=ErrorCode.illegal_sasl_state,
                    error_message="SaslAuthenticate outside a SASL exchange", auth_bytes=b"",
                    session_lifetime=datetime.timedelta(0))
    try:
        answer = session.step(request.auth_bytes)
    except AuthenticationFailed as failure:
        return make(cls, error_code=ErrorCode.sasl_authentication_failed,
                    error_message=str(failure), auth_bytes=b"",
                    session_lifetime=datetime.timedelta(0))
    lifetime = session.lifetime_ms if session.authenticated else 0
    return make(cls, error_code=ErrorCode.none, error_message=None, auth_bytes=answer,
                session_lifetime=datetime.timedelta(milliseconds=lifetime))


def raw_token(token: bytes, session: Session) -> bytes:
    """A token frame after a v0 handshake: the answer as a bare frame. A failure
    closes the connection, as Kafka does (there is no way to say why)."""
    try:
        answer = session.step(token)
    except AuthenticationFailed as failure:
        raise CloseConnection(f"authentication failed: {failure}") from None
    return struct.pack(">i", len(answer)) + answer
