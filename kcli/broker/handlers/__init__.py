"""Request handlers, one module per API family, and the dispatcher that frames them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers import (  # noqa: F401  (imported to register their handlers)
    acls,
    cluster,
    configs,
    consumer_groups,
    fetch,
    groups,
    metadata,
    offsets,
    produce,
    producers,
    reassignments,
    sasl,
    scram_users,
    topics,
    transactions,
)
from kcli.broker.handlers.base import HANDLERS, RequestContext, make, response_module
from kcli.broker.protocol.codec import (
    MalformedRequest,
    RequestHeader,
    UnsupportedVersion,
    decode_request,
    encode_response,
    encode_response_buffers,
    response_type,
)
from kcli.broker.protocol.framing import Frame
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.session import SaslState
from kcli.broker.server import CloseAfterResponse, CloseConnection, ResponseFrame

if TYPE_CHECKING:
    from kcli.broker.broker import Broker
    from kcli.broker.security.session import Session

log = logging.getLogger("kcli.broker")


def _api_versions_fallback(header: RequestHeader) -> bytes:
    """Answer an ApiVersions we cannot parse with a v0 body and UNSUPPORTED_VERSION,
    listing what we serve, so the client retries with a version we know."""
    v0 = RequestHeader(ApiKey.API_VERSIONS, 0, header.correlation_id, header.client_id, False)
    response_cls = response_type(ApiKey.API_VERSIONS, 0)
    body = metadata.api_versions_body(
        response_cls, response_module(ApiKey.API_VERSIONS, 0).ApiVersion,
        ErrorCode.unsupported_version,
    )
    return encode_response(v0, body)


_BEFORE_AUTHENTICATION = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE})


class Dispatcher:
    """Turns a request frame into a response frame using the registered handlers,
    serving a connection only what its authentication state allows (security.session)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def __call__(self, frame: Frame, session: Session) -> ResponseFrame | None:
        """Handle one frame; raises CloseConnection when Kafka would close it, and
        CloseAfterResponse after a failed authentication."""
        if session.state is SaslState.RAW:
            return sasl.raw_token(bytes(frame), session)
        try:
            header, request = decode_request(frame)
        except UnsupportedVersion as error:
            if error.header.api_key == ApiKey.API_VERSIONS:
                return _api_versions_fallback(error.header)
            raise CloseConnection(str(error)) from None
        except MalformedRequest as error:
            raise CloseConnection(str(error)) from None
        if not session.authenticated or session.expires_at is not None:
            self._check_allowed(header.api_key, session)
        handler = HANDLERS.get(header.api_key)
        if handler is None:
            raise CloseConnection(f"no handler for api {header.api_key}")
        response = await handler(RequestContext(self.broker, header, session), request)
        if response is None:
            return None
        if session.close_after is not None:
            raise CloseAfterResponse(encode_response(header, response), session.close_after,
                                     "authentication failed")
        return encode_response_buffers(header, response)

    @staticmethod
    def _check_allowed(api_key: int, session: Session) -> None:
        if session.state is SaslState.HANDSHAKE and api_key not in _BEFORE_AUTHENTICATION:
            raise CloseConnection(f"request {api_key} before SASL authentication")
        if session.state is SaslState.AUTHENTICATE and api_key != ApiKey.SASL_AUTHENTICATE:
            raise CloseConnection(f"request {api_key} during a SASL exchange")
        if (session.authenticated and session.expired()
                and api_key not in (*_BEFORE_AUTHENTICATION, ApiKey.SASL_AUTHENTICATE)):
            raise CloseConnection("the SASL session expired without re-authentication "
                                  "(connections.max.reauth.ms)")


__all__ = ["HANDLERS", "Dispatcher", "make"]
