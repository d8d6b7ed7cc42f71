"""Standard Kafka requests that confluent-kafka does not expose, sent over a plain TCP
connection and encoded with kio (generated from Kafka's own message schemas).

Only for clusters reached without TLS or SASL (``security.protocol`` PLAINTEXT): the
callers go without what these requests add otherwise, never fail because of them.
"""

from __future__ import annotations

import io
import socket
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


def exchange(host: str, port: int, request: Any, timeout: float, client_id: str = "kcli"
             ) -> Any:
    """Send one kio request on a new connection and return the decoded response.

    Raises OSError (connection), ValueError (an answer that does not decode)."""
    header_cls = request.__header_schema__
    header = header_cls(request_api_key=request.__api_key__,
                        request_api_version=request.__version__,
                        correlation_id=1, client_id=client_id)
    out = io.BytesIO()
    entity_writer(header_cls)(out, header)
    entity_writer(type(request))(out, request)
    body = out.getvalue()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        frame = recv_frame(sock)
    response_cls = _response_class(request)
    try:
        answer_header, pos = entity_reader(response_cls.__header_schema__)(frame, 0)
        if answer_header.correlation_id != 1:
            raise ValueError("correlation id mismatch")
        # kio allocates what an array count claims: a hostile count is refused first
        check_body(response_cls, frame, pos)
        response, _size = entity_reader(response_cls)(frame, pos)
    except ValueError:
        raise
    except Exception as error:  # kio raises its own errors on bytes that do not decode
        raise ValueError(f"undecodable response: {error}") from None
    return response


def _response_class(request: Any) -> Any:
    from kio.index import load_response_schema

    return load_response_schema(request.__api_key__, request.__version__)
