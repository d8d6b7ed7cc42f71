"""Standard Kafka requests that confluent-kafka does not expose, sent over a TCP
connection of our own and encoded with kio (generated from Kafka's own message schemas).

``Connection`` secures itself as the client configuration says (TLS, SASL PLAIN and
SCRAM). Some older callers still ask ``is_plaintext`` and go without what these requests
add on other clusters.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from kio.serial import entity_reader, entity_writer

from kcli.broker.protocol.bounds import check_body

MAX_RESPONSE = 64 * 1024 * 1024


def is_plaintext(config: Mapping[str, Any]) -> bool:
    """Whether a client configuration connects without TLS or SASL."""
    return str(config.get("security.protocol", "plaintext")).lower() == "plaintext"


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock``; ConnectionError when it closes first."""
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    """One size-prefixed response frame, without its size; ValueError when implausible."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if not 0 < size <= MAX_RESPONSE:
        raise ValueError("implausible response size")
    return recv_exact(sock, size)


def _tls_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    """An SSL context from librdkafka's ssl.* properties (PEM files)."""
    context = ssl.create_default_context(cafile=config.get("ssl.ca.location") or None)
    if str(config.get("enable.ssl.certificate.verification", "true")).lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif str(config.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
        context.check_hostname = False
    certificate = config.get("ssl.certificate.location")
    if certificate:
        context.load_cert_chain(certificate, config.get("ssl.key.location") or None,
                                config.get("ssl.key.password") or None)
    return context


class Connection:
    """One connection to a broker, secured as a client configuration says: TLS for
    SSL and SASL_SSL, then SASL PLAIN or SCRAM for SASL_* (the mechanisms librdkafka
    speaks without plugins). OAUTHBEARER and GSSAPI raise UnsupportedSecurity."""

    def __init__(self, host: str, port: int, timeout: float,
                 config: Mapping[str, Any] | None = None, client_id: str = "kcli") -> None:
        config = config or {}
        protocol = str(config.get("security.protocol", "plaintext")).lower()
        mechanism = str(config.get("sasl.mechanism", config.get("sasl.mechanisms", "GSSAPI")))
        if protocol.startswith("sasl") and mechanism.upper() not in _SASL:
            raise UnsupportedSecurity(f"SASL {mechanism} is not supported by kcli's own "
                                      "requests")
        self.client_id = client_id
        self._correlation_id = 0
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if protocol in ("ssl", "sasl_ssl"):
                sock = _tls_context(config).wrap_socket(sock, server_hostname=host)
            self.sock = sock
            if protocol.startswith("sasl"):
                self._login(mechanism.upper(), str(config.get("sasl.username", "")),
                            str(config.get("sasl.password", "")))
        except BaseException:
            sock.close()
            raise

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def request(self, request: Any, response_cls: Any = None) -> Any:
        """Send one kio request and return its decoded response (as ``response_cls``
        when given: see ``timestamps_as_ints``). Raises OSError (connection),
        ValueError (an answer that does not decode)."""
        self._correlation_id += 1
        correlation_id = self._correlation_id
        header_cls = request.__header_schema__
        header = header_cls(request_api_key=request.__api_key__,
                            request_api_version=request.__version__,
                            correlation_id=correlation_id, client_id=self.client_id)
        out = io.BytesIO()
        entity_writer(header_cls)(out, header)
        entity_writer(type(request))(out, request)
        body = out.getvalue()
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        frame = recv_frame(self.sock)
        response_cls = response_cls or _response_class(request)
        try:
            answer_header, pos = entity_reader(response_cls.__header_schema__)(frame, 0)
            if answer_header.correlation_id != correlation_id:
                raise ValueError("correlation id mismatch")
            # kio allocates what an array count claims: a hostile count is refused first
            check_body(response_cls, frame, pos)
            response, _size = entity_reader(response_cls)(frame, pos)
        except ValueError:
            raise
        except Exception as error:  # kio raises its own errors on bytes that do not decode
            raise ValueError(f"undecodable response: {error}") from None
        return response

    def _login(self, mechanism: str, user: str, password: str) -> None:
        from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
        from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

        from kcli.broker.security.plain import plain_token
        from kcli.broker.security.scram import AuthenticationFailed, ScramClient

        answer = self.request(SaslHandshakeRequest(mechanism=mechanism))
        if answer.error_code:
            raise SaslFailed(f"the broker does not accept SASL {mechanism}")

        def token(data: bytes) -> bytes:
            reply = self.request(SaslAuthenticateRequest(auth_bytes=data))
            if reply.error_code:
                raise SaslFailed(f"SASL {mechanism} login as {user} failed: "
                                 f"{reply.error_message or reply.error_code}")
            return bytes(reply.auth_bytes)

        if mechanism == "PLAIN":
            token(plain_token(user, password))
            return
        client = ScramClient(mechanism, user, password)
        try:
            client.verify(token(client.final(token(client.first()))))
        except AuthenticationFailed as error:
            raise SaslFailed(f"SASL {mechanism} login as {user}: {error}") from None


_SASL = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class UnsupportedSecurity(OSError):
    """A security setting kcli's own connections cannot use."""


class SaslFailed(OSError):
    """The broker refused the SASL login."""


def exchange(host: str, port: int, request: Any, timeout: float, client_id: str = "kcli",
             config: Mapping[str, Any] | None = None) -> Any:
    """Send one kio request on a new connection (secured as ``config`` says) and return
    the decoded response.

    Raises OSError (connection, login), ValueError (an answer that does not decode)."""
    with Connection(host, port, timeout, config, client_id) as connection:
        return connection.request(request)


def timestamps_as_ints(cls: Any, nested: Mapping[str, Any] | None = None) -> Any:
    """A copy of a kio message class whose timestamp fields read as plain int64.

    kio refuses a negative timestamp, yet Kafka answers -1 where there is none (the start
    of a transaction that is not open, in DescribeTransactions). ``nested`` gives the
    copies to use for fields holding nested messages."""
    changed = []
    for f in dataclasses.fields(cls):
        metadata = dict(f.metadata)
        kind = f.type
        if metadata.get("kafka_type") == "datetime_i64":
            metadata["kafka_type"] = "int64"
            kind = int
        if nested and f.name in nested:
            kind = tuple.__class_getitem__((nested[f.name], ...))
        changed.append((f.name, kind, dataclasses.field(metadata=metadata)))
    copy = dataclasses.make_dataclass(cls.__name__, changed, frozen=True, slots=True)
    for name in ("__type__", "__version__", "__flexible__", "__api_key__", "__header_schema__"):
        setattr(copy, name, getattr(cls, name))
    return copy


def _response_class(request: Any) -> Any:
    from kio.index import load_response_schema

    return load_response_schema(request.__api_key__, request.__version__)
