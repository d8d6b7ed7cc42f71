"""Listeners as Kafka configures them: ``listeners``, ``advertised.listeners``,
``listener.security.protocol.map`` and ``inter.broker.listener.name``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from kcli.broker.configs import InvalidConfig, Settings


class Protocol(Enum):
    """A listener's security protocol."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        """Whether the listener speaks TLS."""
        return self in (Protocol.SSL, Protocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        """Whether clients must authenticate with SASL."""
        return self in (Protocol.SASL_PLAINTEXT, Protocol.SASL_SSL)


@dataclass(frozen=True)
class Listener:
    """One listener: where it binds, what it advertises, how it is secured."""

    name: str
    protocol: Protocol
    host: str
    port: int
    advertised_host: str
    advertised_port: int

    def with_port(self, port: int) -> Listener:
        """The same listener bound to ``port`` (a free port was asked for with 0)."""
        advertised = self.advertised_port or port
        return Listener(self.name, self.protocol, self.host, port, self.advertised_host,
                        advertised)


_ENDPOINT = re.compile(r"([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/]*):(\d+)")


def _endpoints(value: str, setting: str) -> list[tuple[str, str, int]]:
    found: list[tuple[str, str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        match = _ENDPOINT.fullmatch(item)
        if match is None:
            raise InvalidConfig(f"{setting}: {item!r} is not NAME://HOST:PORT")
        name, host, port = match.group(1).upper(), match.group(2).strip("[]"), int(match.group(3))
        if port > 65535:
            raise InvalidConfig(f"{setting}: port {port} is out of range")
        if any(name == other for other, _, _ in found):
            raise InvalidConfig(f"{setting}: listener {name} is given twice")
        found.append((name, host, port))
    return found


def _protocol_map(settings: Settings) -> dict[str, Protocol]:
    mapping: dict[str, Protocol] = {}
    for item in settings.get("listener.security.protocol.map").split(","):
        if not item.strip():
            continue
        name, _, protocol = item.partition(":")
        try:
            mapping[name.strip().upper()] = Protocol(protocol.strip().upper())
        except ValueError:
            raise InvalidConfig(f"listener.security.protocol.map: {item.strip()!r} is not "
                                "NAME:PROTOCOL with PLAINTEXT, SSL, SASL_PLAINTEXT or "
                                "SASL_SSL") from None
    return mapping


def parse_listeners(settings: Settings, host: str, port: int,
                    advertised_host: str) -> list[Listener]:
    """Every listener of a broker, the inter-broker one first. Without ``listeners``,
    one PLAINTEXT listener on ``host:port``. Raises InvalidConfig."""
    given = settings.optional("listeners")
    if not given:
        return [Listener("PLAINTEXT", Protocol.PLAINTEXT, host, port, advertised_host, port)]
    mapping = _protocol_map(settings)
    bound = _endpoints(given, "listeners")
    if not bound:
        raise InvalidConfig("listeners is empty")
    advertised = {name: (h, p) for name, h, p in
                  _endpoints(settings.optional("advertised.listeners") or "",
                             "advertised.listeners")}
    for name in advertised:
        if name not in {n for n, _, _ in bound}:
            raise InvalidConfig(f"advertised.listeners: {name} is not in listeners")
    listeners = []
    for name, bind_host, bind_port in bound:
        if name not in mapping:
            raise InvalidConfig(f"listener {name} has no security protocol: add "
                                f"{name}:PROTOCOL to listener.security.protocol.map")
        shown_host, shown_port = advertised.get(name, (bind_host, bind_port))
        if shown_host in ("", "0.0.0.0", "::"):
            if name in advertised:
                raise InvalidConfig(f"advertised.listeners: {name} may not advertise "
                                    f"{shown_host or 'an empty host'}")
            shown_host = advertised_host
        listeners.append(Listener(name, mapping[name], bind_host or "0.0.0.0", bind_port,
                                  shown_host, shown_port))
    inter = (settings.optional("inter.broker.listener.name") or listeners[0].name).upper()
    first = [item for item in listeners if item.name == inter]
    if not first:
        raise InvalidConfig(f"inter.broker.listener.name: {inter} is not in listeners")
    return first + [item for item in listeners if item.name != inter]
