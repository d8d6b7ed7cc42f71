"""How a broker logs in to another broker's inter-broker listener (the replica
fetcher): TLS with the truststore (and the keystore, for ssl.client.auth), and SASL
with ``sasl.mechanism.inter.broker.protocol`` and the username/password of that
listener's JAAS config, as Kafka does."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from kcli.broker.configs import InvalidConfig, Settings
from kcli.broker.security.jaas import parse_jaas
from kcli.broker.security.listeners import Listener
from kcli.broker.security.tls import client_context


@dataclass(frozen=True)
class Login:
    """What a broker-to-broker connection needs: a TLS context, a SASL login, both or
    neither."""

    tls: ssl.SSLContext | None = None
    mechanism: str | None = None
    user: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never the password, in any log or traceback
        return f"Login(tls={self.tls is not None}, mechanism={self.mechanism}, user={self.user})"


def inter_broker_login(settings: Settings, listener: Listener) -> Login | None:
    """The login for the inter-broker listener; None when it is PLAINTEXT. Raises
    InvalidConfig when a SASL listener has no username and password for brokers."""
    if not listener.protocol.tls and not listener.protocol.sasl:
        return None
    try:
        tls = client_context(settings, listener) if listener.protocol.tls else None
    except (OSError, ssl.SSLError) as error:
        raise InvalidConfig(f"inter-broker TLS on listener {listener.name}: {error}") from None
    if not listener.protocol.sasl:
        return Login(tls)
    mechanism = settings.get("sasl.mechanism.inter.broker.protocol")
    enabled = settings.for_listener(listener.name, "sasl.enabled.mechanisms") or ""
    if mechanism not in [m.strip() for m in enabled.split(",")]:
        raise InvalidConfig(f"sasl.mechanism.inter.broker.protocol={mechanism} is not enabled "
                            f"on the inter-broker listener {listener.name}")
    text = settings.for_listener(listener.name, "sasl.jaas.config", mechanism)
    login = parse_jaas(text).login if text is not None else None
    if login is None:
        raise InvalidConfig(
            f"the inter-broker listener {listener.name} uses SASL {mechanism}: its JAAS "
            f"config (listener.name.{listener.name.lower()}.{mechanism.lower()}."
            'sasl.jaas.config) needs the brokers\' username="..." password="..."')
    return Login(tls, mechanism, *login)
