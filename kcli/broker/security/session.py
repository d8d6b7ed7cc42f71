"""One connection's authentication, as Kafka's SaslServerAuthenticator runs it.

On a SASL listener a connection starts in HANDSHAKE: only ApiVersions and SaslHandshake
are served, anything else closes it. SaslHandshake v1 moves it to AUTHENTICATE, where
every token comes in a SaslAuthenticate request; v0 moves it to RAW, where tokens come
as bare frames (the pre-KIP-152 flow). A finished exchange makes it COMPLETE, with the
principal ``User:<name>``; a failed one is answered, then the connection is closed
after ``connection.failed.authentication.delay.ms``. With ``connections.max.reauth.ms``
the session expires: the client must re-authenticate (KIP-368) with the same mechanism
and user, or its next other request closes the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from kcli.broker.configs import InvalidConfig, Settings
from kcli.broker.security.jaas import parse_jaas
from kcli.broker.security.listeners import Listener
from kcli.broker.security.plain import PlainServer
from kcli.broker.security.scram import AuthenticationFailed, ScramCredential, ScramServer
from kcli.broker.security.tls import ANONYMOUS

log = logging.getLogger("kcli.broker.security")

Exchange = PlainServer | ScramServer


class SaslState(Enum):
    """Where a connection is in its authentication."""

    HANDSHAKE = "handshake"
    AUTHENTICATE = "authenticate"
    RAW = "raw"
    COMPLETE = "complete"


@dataclass(frozen=True)
class ListenerSecurity:
    """What one listener's SASL settings allow, read once at start."""

    mechanisms: tuple[str, ...]
    plain_users: dict[str, str]
    reauth_ms: int
    failure_delay_ms: int

    @classmethod
    def from_settings(cls, settings: Settings, listener: Listener) -> ListenerSecurity:
        """Read them; InvalidConfig when a SASL listener cannot authenticate anyone."""
        mechanisms = tuple(m.strip() for m in (settings.for_listener(
            listener.name, "sasl.enabled.mechanisms") or "").split(",") if m.strip())
        users: dict[str, str] = {}
        if listener.protocol.sasl and "PLAIN" in mechanisms:
            text = settings.for_listener(listener.name, "sasl.jaas.config", "PLAIN")
            if text is None:
                raise InvalidConfig(
                    f"listener {listener.name} offers PLAIN but has no JAAS config: set "
                    f"listener.name.{listener.name.lower()}.plain.sasl.jaas.config with "
                    'user_NAME="password" options')
            users = parse_jaas(text).plain_users
        reauth = settings.for_listener(listener.name, "connections.max.reauth.ms") or "0"
        return cls(mechanisms, users, int(reauth),
                   settings.get_int("connection.failed.authentication.delay.ms"))


@dataclass
class Session:
    """One connection: its listener, peer and principal, and its SASL progress."""

    listener: Listener
    peer: str
    security: ListenerSecurity | None = None
    principal: str = ANONYMOUS
    state: SaslState = SaslState.COMPLETE
    mechanism: str | None = None
    exchange: Exchange | None = None
    expires_at: float | None = None
    """monotonic time the SASL session ends (KIP-368); None: never."""
    close_after: float | None = None
    """Set by a handler: close the connection this many seconds after the response."""
    user: str | None = None
    """The SASL user once authenticated (a re-authentication must keep it)."""

    def __post_init__(self) -> None:
        if self.listener.protocol.sasl:
            self.state = SaslState.HANDSHAKE

    @property
    def authenticated(self) -> bool:
        """Whether requests other than the SASL ones may be served."""
        return self.state is SaslState.COMPLETE

    def expired(self, now: float | None = None) -> bool:
        """Whether a re-authentication was due and has not happened."""
        return self.expires_at is not None and (now or time.monotonic()) >= self.expires_at

    def begin(self, mechanism: str, version: int,
              scram_lookup: Callable[[str, str], ScramCredential | None]) -> None:
        """Start an exchange after a SaslHandshake for an enabled mechanism."""
        assert self.security is not None
        if mechanism == "PLAIN":
            self.exchange = PlainServer(self.security.plain_users)
        else:
            self.exchange = ScramServer(mechanism, lambda user: scram_lookup(user, mechanism))
        self.mechanism = mechanism
        self.state = SaslState.AUTHENTICATE if version >= 1 else SaslState.RAW

    def step(self, token: bytes) -> bytes:
        """Feed one client token; on success the session becomes COMPLETE. Raises
        AuthenticationFailed (and arranges the close) when the exchange fails."""
        assert self.exchange is not None
        assert self.security is not None
        try:
            answer = self.exchange.step(token)
        except AuthenticationFailed as failure:
            log.warning("authentication of %s on listener %s with %s failed: %s",
                        self.peer, self.listener.name, self.mechanism, failure)
            self.close_after = self.security.failure_delay_ms / 1000
            raise
        if self.exchange.done:
            user = self.exchange.user
            if self.user is not None and user != self.user:  # KIP-368: same principal
                self.close_after = self.security.failure_delay_ms / 1000
                log.warning("re-authentication of %s as %s, not %s: closing", self.peer,
                            user, self.user)
                raise AuthenticationFailed("re-authentication must keep the same user")
            self.user = user
            self.principal = f"User:{user}"
            self.state = SaslState.COMPLETE
            self.exchange = None
            reauth = self.security.reauth_ms
            self.expires_at = time.monotonic() + reauth / 1000 if reauth > 0 else None
        return answer

    @property
    def lifetime_ms(self) -> int:
        """SessionLifetimeMs for the SaslAuthenticate response (0: unlimited)."""
        return self.security.reauth_ms if self.security is not None else 0

