"""Writing a response whose records are still in segment files: ``os.sendfile``.

The pieces of the frame go out in order. Bytes go through the transport (which writes at
once when its buffer is empty); a file range goes straight from the page cache to the
socket with ``os.sendfile``, but only while the transport has nothing buffered, so the
frame's bytes never overtake each other. When the socket is full, one chunk of the range
is read and handed to the transport, which waits for room as it always does; the rest
follows by sendfile once the transport has drained. TLS connections cannot take
sendfile: their records are read and written like any other bytes (as in Kafka, where
zero-copy is off under TLS).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kcli.broker.log.file_records import FileRecords, read_range

FALLBACK_CHUNK = 262144
"""Bytes of a file range read into memory when the socket is full, for the transport to
write when there is room (the transport's buffer then signals when it has drained)."""


class ShortFile(Exception):
    """A segment file ended before a range sent from it: the frame cannot be completed."""


def has_files(pieces: Sequence[Any]) -> bool:
    """Whether a response's pieces include records in files."""
    return any(isinstance(piece, FileRecords) for piece in pieces)


def close_files(pieces: Sequence[Any]) -> None:
    """Close the descriptors of every FileRecords among ``pieces``."""
    for piece in pieces:
        if isinstance(piece, FileRecords):
            piece.close()


def materialized(pieces: Sequence[Any]) -> list[Any]:
    """The pieces with file ranges read into bytes (for a TLS transport)."""
    return [piece.read() if isinstance(piece, FileRecords) else piece for piece in pieces]


async def send_pieces(transport: asyncio.Transport, pieces: Sequence[Any],
                      drained: Callable[[], Awaitable[bool]]) -> None:
    """Write ``pieces`` (bytes and FileRecords) in order on a plain TCP ``transport``.

    ``drained()`` waits until the transport's buffer is empty and says whether the
    connection is still open; the transport's high-water mark must be 0 for its
    pause/resume calls to tell that. Raises ShortFile if a file shrank under the send.
    """
    sock = transport.get_extra_info("socket")
    out = sock.fileno()
    pending: list[Any] = []
    for piece in pieces:
        if not isinstance(piece, FileRecords):
            pending.append(piece)
            continue
        if pending:
            transport.writelines(pending)
            pending = []
        for fd, start, length in piece.ranges:
            position, size = start, length
            while size:
                if transport.get_write_buffer_size() and not await drained():
                    return
                try:
                    sent = os.sendfile(out, fd, position, size)
                except BlockingIOError:
                    chunk = min(size, FALLBACK_CHUNK)
                    transport.write(read_range(fd, position, chunk))
                    sent = chunk
                if sent == 0:
                    raise ShortFile(f"a segment file ended {size} bytes early")
                position += sent
                size -= sent
    if pending:
        transport.writelines(pending)
