"""SASL/PLAIN (RFC 4616) as Kafka's PlainSaslServer checks it: ``[authzid] NUL user NUL
password``, exactly three parts, a non-empty user and password, an authzid that is
empty or the user. Users come from the listener's JAAS config (``user_NAME``)."""

from __future__ import annotations

import hmac

from kcli.broker.security.scram import AuthenticationFailed


class PlainServer:
    """One PLAIN exchange: a single client message."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.user: str | None = None

    @property
    def done(self) -> bool:
        """Whether the exchange succeeded."""
        return self.user is not None

    def step(self, token: bytes) -> bytes:
        """Check the one message; an empty answer means success."""
        if self.user is not None:
            raise AuthenticationFailed("PLAIN exchange already finished")
        try:
            parts = token.decode("utf-8").split("\0")
        except UnicodeDecodeError:
            raise AuthenticationFailed("PLAIN message is not UTF-8") from None
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        authzid, user, password = parts
        if not user or not password:
            raise AuthenticationFailed("Authentication failed: username or password empty")
        if authzid and authzid != user:
            raise AuthenticationFailed("Authentication failed: client requested an "
                                       "authorization id that is different from username")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        self.user = user
        return b""


def plain_token(user: str, password: str) -> bytes:
    """The client's PLAIN message."""
    return f"\0{user}\0{password}".encode()
