"""Length-prefixed Kafka frames, sans-IO: feed bytes in, take whole frames out."""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")

Frame = bytes | memoryview
"""A request frame's body: a read-only view from FrameDecoder, or bytes."""


class FrameError(Exception):
    """The peer sent a frame we refuse to read; the connection must be closed."""


class FrameDecoder:
    """Splits a byte stream into Kafka request frames.

    Every frame starts with a signed 32-bit big-endian size. The size is checked
    against ``max_frame_bytes`` before a single byte of the body is buffered for it,
    and the buffer grows only as bytes arrive (never to the announced size), so a
    hostile size cannot make us allocate.
    """

    __slots__ = ("_buffer", "_max_frame_bytes", "_need", "_pos")

    def __init__(self, max_frame_bytes: int) -> None:
        self._buffer = bytearray()
        self._pos = 0  # start of unread bytes; compacted once everything before it is used
        self._max_frame_bytes = max_frame_bytes
        self._need = -1  # body size of the frame being read, -1 while reading a size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer) - self._pos

    def feed(self, data: bytes) -> list[memoryview]:
        """Add received bytes and return every frame body they complete, in order, as
        read-only views of the buffer they arrived in: a body is never copied (a
        produced batch is copied once here, once by the decoder and once to be
        stamped, where it used to be copied twice more). A buffer views were taken
        of is theirs from then on; what follows the last whole frame moves to a new
        one."""
        buffer = self._buffer
        if self._pos and self._pos == len(buffer):
            buffer.clear()
            self._pos = 0
        buffer += data
        frames: list[memoryview] = []
        view: memoryview | None = None
        pos = self._pos
        end = len(buffer)
        while True:
            if self._need < 0:
                if end - pos < 4:
                    break
                (size,) = _SIZE.unpack_from(buffer, pos)
                if size < 0 or size > self._max_frame_bytes:
                    raise FrameError(f"frame size {size} outside 0..{self._max_frame_bytes}")
                self._need = size
                pos += 4
            if end - pos < self._need:
                break
            if view is None:
                view = memoryview(buffer).toreadonly()  # read-only: what kio's reader takes
            frames.append(view[pos : pos + self._need])
            pos += self._need
            self._need = -1
        if frames:  # the buffer is the views' now: exported, it cannot change anyway
            self._buffer = buffer[pos:]
            pos = 0
        elif pos == end:
            buffer.clear()
            pos = 0
        elif pos > 65536:
            del buffer[:pos]
            pos = 0
        self._pos = pos
        return frames


def frame(payload: bytes | bytearray) -> bytes:
    """Prefix a payload with its size."""
    return _SIZE.pack(len(payload)) + bytes(payload)
