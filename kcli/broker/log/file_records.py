"""Stored batches handed out as ranges of segment files, for zero-copy sends.

A Fetch answer's records are bytes already on disk, exactly as the client will read them.
Instead of reading them into memory and writing them back out (two copies per byte, and a
fresh allocation per response), the log can hand out :class:`FileRecords`: the file
ranges, each with its own duplicated descriptor so that retention, compaction or the
descriptor cache closing the segment meanwhile cannot change what is sent. The server
writes them with ``os.sendfile`` (Kafka's ``FileRecords.writeTo``, its zero-copy path);
wherever bytes are needed instead (TLS, a test) :meth:`FileRecords.read` reads them.
"""

from __future__ import annotations

import os

ZERO_COPY_MIN_BYTES = 65536
"""Smaller reads are returned as bytes: a pread of a few KiB costs less than the
descriptor duplication and the extra system calls a file range needs."""


class FileRecords:
    """Ranges of segment files, each ``(descriptor, position, size)``, in order.

    The descriptors are duplicates owned by this object; :meth:`close` (or garbage
    collection) closes them. ``len()`` is the byte count, as for the bytes it stands for.
    """

    __slots__ = ("_size", "ranges")

    def __init__(self, ranges: list[tuple[int, int, int]]) -> None:
        self.ranges = ranges
        self._size = sum(size for _fd, _position, size in ranges)

    @classmethod
    def of(cls, parts: list[tuple[int, int, int]]) -> FileRecords:
        """Duplicate the descriptor of each ``(fd, position, size)`` range."""
        ranges: list[tuple[int, int, int]] = []
        try:
            for fd, position, size in parts:
                ranges.append((os.dup(fd), position, size))
        except OSError:
            for fd, _position, _size in ranges:
                os.close(fd)
            raise
        return cls(ranges)

    def __len__(self) -> int:  # also its truth: no bytes, false
        return self._size

    def read(self) -> bytes:
        """The bytes of every range, read now (for a sink that cannot take a file)."""
        return b"".join(read_range(fd, position, size) for fd, position, size in self.ranges)

    def close(self) -> None:
        """Close the duplicated descriptors (idempotent)."""
        ranges, self.ranges = self.ranges, []
        for fd, _position, _size in ranges:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def read_range(fd: int, position: int, size: int) -> bytes:
    """``size`` bytes at ``position``; a file cut shorter meanwhile is an error, not a
    short answer that would corrupt the frame around it."""
    data = os.pread(fd, size, position)
    if len(data) != size:
        raise OSError(f"a segment file shrank under a read ({len(data)} of {size} bytes)")
    return data
