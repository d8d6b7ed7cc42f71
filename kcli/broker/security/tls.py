"""TLS for SSL and SASL_SSL listeners: the server context from Kafka's ssl.* settings
(PEM files), and the principal a client certificate gives (Kafka's default principal
builder: ``User:`` and the subject in RFC 2253 order, ``CN=a,OU=x,O=y``)."""

from __future__ import annotations

import ssl
from typing import Any

from kcli.broker.configs import InvalidConfig, Settings
from kcli.broker.security.listeners import Listener

ANONYMOUS = "User:ANONYMOUS"
_RFC2253_SPECIAL = ',+"\\<>;'


def server_context(settings: Settings, listener: Listener) -> ssl.SSLContext:
    """The SSL context of a TLS listener; InvalidConfig names what is missing or bad."""
    def setting(name: str) -> str | None:
        return settings.for_listener(listener.name, name)

    keystore = setting("ssl.keystore.location")
    if not keystore:
        raise InvalidConfig(f"listener {listener.name} ({listener.protocol.value}) needs "
                            "ssl.keystore.location: a PEM file with the certificate and key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(keystore, password=setting("ssl.key.password"))
    except (OSError, ssl.SSLError) as error:
        raise InvalidConfig(f"ssl.keystore.location {keystore}: {_reason(error)}") from None
    auth = setting("ssl.client.auth") or "none"
    if listener.protocol.sasl and settings.overrides.get(
            f"listener.name.{listener.name.lower()}.ssl.client.auth") is None:
        auth = "none"  # KIP-684: SASL_SSL honours only the listener's own setting
    truststore = setting("ssl.truststore.location")
    if auth != "none":
        if not truststore:
            raise InvalidConfig(f"ssl.client.auth={auth} on listener {listener.name} needs "
                                "ssl.truststore.location: the CAs of client certificates")
        try:
            context.load_verify_locations(cafile=truststore)
        except (OSError, ssl.SSLError) as error:
            raise InvalidConfig(f"ssl.truststore.location {truststore}: "
                                f"{_reason(error)}") from None
        context.verify_mode = ssl.CERT_REQUIRED if auth == "required" else ssl.CERT_OPTIONAL
    return context


def client_context(settings: Settings, listener: Listener) -> ssl.SSLContext:
    """The context a broker connects to another broker's TLS listener with: it trusts
    the truststore's CAs and shows its own certificate (for ssl.client.auth)."""
    context = ssl.create_default_context(
        cafile=settings.for_listener(listener.name, "ssl.truststore.location"))
    keystore = settings.for_listener(listener.name, "ssl.keystore.location")
    if keystore:
        context.load_cert_chain(keystore,
                                password=settings.for_listener(listener.name,
                                                               "ssl.key.password"))
    return context


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in _RFC2253_SPECIAL else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


_SHORT_NAMES = {"commonName": "CN", "organizationalUnitName": "OU", "organizationName": "O",
                "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
                "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}


def principal(peer_certificate: dict[str, Any] | None) -> str:
    """``User:<subject>`` of a verified client certificate (``getpeercert()``),
    ``User:ANONYMOUS`` without one."""
    if not peer_certificate or not peer_certificate.get("subject"):
        return ANONYMOUS
    rdns = []
    for rdn in reversed(peer_certificate["subject"]):  # Python lists it root first
        rdns.append("+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}"
                             for key, value in rdn))
    return "User:" + ",".join(rdns)
