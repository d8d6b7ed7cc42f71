"""A raw Kafka protocol client for tests that must send exactly the bytes they choose."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer


class WireClient:
    """One TCP connection speaking framed requests."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, payload: bytes) -> None:
        """Send a frame (size prefix added)."""
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def recv_frame(self) -> bytes:
        """Read one response frame; raises ConnectionError if the broker closed."""
        size = struct.unpack(">i", self._recv_exactly(4))[0]
        return self._recv_exactly(size)

    def _recv_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("closed by broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def is_closed_by_peer(self) -> bool:
        """True once the broker has closed this connection."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def request(self, api_key: int, version: int, body: Any, client_id: str = "wire") -> Any:
        """Send a kio request body and decode the response with the same version."""
        self.correlation_id += 1
        schema = load_request_schema(api_key, version)
        out = io.BytesIO()
        out.write(struct.pack(">hhi", api_key, version, self.correlation_id))
        raw = client_id.encode()
        out.write(struct.pack(">h", len(raw)) + raw)
        if schema.__flexible__:
            out.write(b"\0")
        entity_writer(type(body))(out, body)
        self.send_raw(out.getvalue())
        frame = self.recv_frame()
        (correlation_id,) = struct.unpack_from(">i", frame, 0)
        assert correlation_id == self.correlation_id
        response_schema = load_response_schema(api_key, version)
        offset = 4
        if response_schema.__flexible__ and api_key != 18:
            offset += 1  # empty tagged fields of response header v1
        value, _size = entity_reader(response_schema)(frame, offset)
        return value
