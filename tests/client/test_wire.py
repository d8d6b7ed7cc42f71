"""Requests kcli sends itself (``kcli.client.wire``): a broker's garbage answer is a
ValueError, never a crash or a huge allocation."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from kio.schema.consumer_group_describe.v0.request import ConsumerGroupDescribeRequest
from kio.schema.types import GroupId

from kcli.client.wire import exchange, is_plaintext

pytestmark = pytest.mark.system  # a local socket server


def answering(frame: bytes) -> tuple[str, int]:
    """A one-shot server that reads a request and answers ``frame`` (sized or not)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(frame)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    host, port = server.getsockname()
    return host, port


REQUEST = ConsumerGroupDescribeRequest(group_ids=(GroupId("g"),),
                                       include_authorized_operations=False)


@pytest.mark.parametrize("frame", [
    b"",                                              # closed at once
    struct.pack(">i", 0),                             # an empty frame
    struct.pack(">i", 1 << 30),                       # an implausible size
    struct.pack(">ii", 5, 2) + b"\x00",               # another correlation id
    # correlation id 1, no tags, throttle 0, then a groups array claiming 2**31 entries
    struct.pack(">iib", 14, 1, 0) + struct.pack(">i", 0) + b"\xff\xff\xff\xff\x07",
])
def test_garbage_answers_are_value_or_connection_errors(frame: bytes) -> None:
    host, port = answering(frame)
    with pytest.raises((ValueError, ConnectionError)):
        exchange(host, port, REQUEST, 5)


def test_only_plaintext_connections_are_used() -> None:
    assert is_plaintext({})
    assert is_plaintext({"security.protocol": "PLAINTEXT"})
    assert not is_plaintext({"security.protocol": "SASL_SSL"})
