"""Sparse segment indexes, in Kafka's file formats, kept in memory for bisect lookups.

`.index`: 8-byte entries (relative offset i32, position i32): the last offset of a batch
and where that batch starts. `.timeindex`: 12-byte entries (timestamp i64, relative
offset i32): the largest timestamp seen so far in the segment and the (last) offset of the
batch that carried it. Both big endian, appended as entries are made.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

import crc32c

from kcli.broker.log._files import WRITE_APPEND, read_small_file, write_all
from kcli.broker.log.descriptors import DescriptorCache, LogFile

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_SWAP = sys.byteorder == "little"


def _strictly_increasing(values: array[int]) -> bool:
    items = values.tolist()
    return items == sorted(items) and len(set(items)) == len(items)


def _non_decreasing(values: array[int]) -> bool:
    items = values.tolist()
    return items == sorted(items)


class _IndexFile:
    """The append-only file under an in-memory index, with a running digest of its bytes."""

    __slots__ = ("crc", "dirty", "file", "nbytes")

    def __init__(self, path: Path, cache: DescriptorCache | None) -> None:
        self.file = LogFile(path, WRITE_APPEND, cache)
        """The writer, opened on the first entry written (the cache may close it)."""
        self.dirty = False
        """Written since the last fsync."""
        self.crc = 0
        """CRC32C of the file's content."""
        self.nbytes = 0
        """The file's length."""

    def digest(self) -> tuple[int, int]:
        """(length, CRC32C) of the file as the in-memory entries say it is."""
        return self.nbytes, self.crc

    def _read_checked(self, expected: tuple[int, int] | None, limit: int) -> bytes | None:
        """The file's bytes, None if missing, over `limit` bytes, or not `expected`."""
        data = self._read(limit)
        if data is None:
            return None
        digest = (len(data), int(crc32c.crc32c(data)))
        if expected is not None and digest != expected:
            return None
        self.nbytes, self.crc = digest
        return data

    def _entries_bytes(self) -> bytes:
        raise NotImplementedError

    def _drop_entries(self, keep: int) -> int:
        """Forget the in-memory entries after the first `keep`; returns the entry size."""
        raise NotImplementedError

    def truncate_entries(self, keep: int) -> None:
        """Keep the first `keep` entries, in memory and on disk (undoes a failed append,
        whose entry may be half written)."""
        self._truncate_file(keep * self._drop_entries(keep))

    @property
    def path(self) -> Path:
        return self.file.path

    def attach(self, cache: DescriptorCache) -> None:
        """Hand a writer that kept its own descriptor to `cache`."""
        self.file.attach(cache)

    def _writer(self) -> int:
        return self.file.fd

    def _write(self, data: bytes) -> None:
        self.dirty = True
        write_all(self._writer(), data)
        self.crc = crc32c.crc32c(data, self.crc)
        self.nbytes += len(data)

    def _truncate_file(self, size: int) -> None:
        self.dirty = True
        os.ftruncate(self._writer(), size)
        content = self._entries_bytes()
        self.nbytes = len(content)
        self.crc = int(crc32c.crc32c(content))

    def _read(self, limit: int) -> bytes | None:
        return read_small_file(self.path, limit)

    def sync(self) -> None:
        """fsync what was written since the last sync (through a descriptor opened for
        it if the cache closed the writer); safe in a worker thread."""
        if not self.dirty or self.file.closed:
            return
        self.dirty = False  # first: a write meanwhile sets it again
        try:
            with self.file.pinned() as fd:
                os.fsync(fd)
        except BaseException:
            self.dirty = True
            raise

    def close(self) -> None:
        """Release the writer's descriptor (a later write opens it again)."""
        self.file.release()

    def delete(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def rename(self, target: Path) -> None:
        """Move the file to `target` (replacing what is there; nothing to move if it was
        never written); an open writer stays valid."""
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
        self.file.path = target


class OffsetIndex(_IndexFile):
    """(relative last offset, position) of every batch that crossed the index interval."""

    __slots__ = ("positions", "relative")

    def __init__(self, path: Path, cache: DescriptorCache | None) -> None:
        super().__init__(path, cache)
        self.relative: array[int] = array("i")
        self.positions: array[int] = array("i")

    def __len__(self) -> int:
        return len(self.relative)

    def load(self, segment_size: int, expected: tuple[int, int] | None = None) -> bool:
        """Read the file; False (and empty) if it is missing, torn, not plausible, or not
        the (length, CRC32C) `expected`."""
        self.relative = array("i")
        self.positions = array("i")
        # at most one entry per batch, and a batch takes at least a header
        data = self._read_checked(expected, (segment_size // 61 + 1) * _OFFSET_ENTRY.size)
        if data is None:
            return segment_size == 0 and expected is None
        if len(data) % _OFFSET_ENTRY.size:
            return False
        flat = array("i")
        flat.frombytes(data)
        if _SWAP:
            flat.byteswap()
        relative = flat[0::2]
        positions = flat[1::2]
        if relative and (
            relative[0] < 0
            or positions[0] < 0
            or positions[-1] >= segment_size
            or not _strictly_increasing(relative)
            or not _strictly_increasing(positions)
        ):
            return False
        self.relative = relative
        self.positions = positions
        return True

    def reset(self) -> None:
        """Forget every entry, in memory and on disk."""
        self.relative = array("i")
        self.positions = array("i")
        self._truncate_file(0)

    def _drop_entries(self, keep: int) -> int:
        del self.relative[keep:]
        del self.positions[keep:]
        return _OFFSET_ENTRY.size

    def _entries_bytes(self) -> bytes:
        flat = array("i", bytes(8 * len(self.relative)))
        flat[0::2] = self.relative
        flat[1::2] = self.positions
        if _SWAP:
            flat.byteswap()
        return flat.tobytes()

    def append(self, relative_offset: int, position: int) -> None:
        self.relative.append(relative_offset)
        self.positions.append(position)
        self._write(_OFFSET_ENTRY.pack(relative_offset, position))

    def lookup(self, relative_offset: int) -> int:
        """Position of the last entry whose offset is <= `relative_offset` (0 if none)."""
        i = bisect_right(self.relative, relative_offset) - 1
        return self.positions[i] if i >= 0 else 0

    def floor_position(self, position: int) -> int:
        """The largest entry position <= `position`, or -1."""
        i = bisect_right(self.positions, position) - 1
        return self.positions[i] if i >= 0 else -1

    def truncate_at_position(self, position: int) -> None:
        """Drop the entries for batches at or after `position`."""
        keep = bisect_left(self.positions, position)
        if keep < len(self.positions):
            del self.relative[keep:]
            del self.positions[keep:]
            self._truncate_file(keep * _OFFSET_ENTRY.size)


class TimeIndex(_IndexFile):
    """(largest timestamp so far, relative offset of its batch), timestamps rising."""

    __slots__ = ("relative", "timestamps")

    def __init__(self, path: Path, cache: DescriptorCache | None) -> None:
        super().__init__(path, cache)
        self.timestamps: array[int] = array("q")
        self.relative: array[int] = array("i")

    def __len__(self) -> int:
        return len(self.timestamps)

    def load(self, segment_size: int, expected: tuple[int, int] | None = None) -> bool:
        """Read the file; False (and empty) if it is missing, torn, not plausible, or not
        the (length, CRC32C) `expected`."""
        self.timestamps = array("q")
        self.relative = array("i")
        data = self._read_checked(expected, (segment_size // 61 + 2) * _TIME_ENTRY.size)
        if data is None:
            return segment_size == 0 and expected is None
        if len(data) % _TIME_ENTRY.size:
            return False
        timestamps = array("q")
        relative = array("i")
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            timestamps.append(ts)
            relative.append(rel)
        if timestamps and (
            relative[0] < 0 or not _strictly_increasing(timestamps) or not _non_decreasing(relative)
        ):
            return False
        self.timestamps = timestamps
        self.relative = relative
        return True

    def reset(self) -> None:
        self.timestamps = array("q")
        self.relative = array("i")
        self._truncate_file(0)

    def _drop_entries(self, keep: int) -> int:
        del self.timestamps[keep:]
        del self.relative[keep:]
        return _TIME_ENTRY.size

    def _entries_bytes(self) -> bytes:
        pack = _TIME_ENTRY.pack
        return b"".join(
            pack(ts, rel) for ts, rel in zip(self.timestamps, self.relative, strict=True)
        )

    def last(self) -> tuple[int, int] | None:
        """(timestamp, relative offset) of the last entry."""
        if not self.timestamps:
            return None
        return self.timestamps[-1], self.relative[-1]

    def maybe_append(self, timestamp: int, relative_offset: int) -> None:
        """Append unless `timestamp` does not exceed the last entry's (or is NO_TIMESTAMP)."""
        if timestamp <= (self.timestamps[-1] if self.timestamps else -1):
            return
        self.timestamps.append(timestamp)
        self.relative.append(relative_offset)
        self._write(_TIME_ENTRY.pack(timestamp, relative_offset))

    def relative_before(self, timestamp: int) -> int:
        """Relative offset of the last entry with a timestamp < `timestamp`, or -1.

        Every record at or before that offset has a smaller timestamp.
        """
        i = bisect_left(self.timestamps, timestamp) - 1
        return self.relative[i] if i >= 0 else -1

    def truncate_at_relative(self, relative_offset: int) -> None:
        """Drop the entries whose offset is >= `relative_offset`."""
        keep = bisect_left(self.relative, relative_offset)
        if keep < len(self.relative):
            del self.timestamps[keep:]
            del self.relative[keep:]
            self._truncate_file(keep * _TIME_ENTRY.size)
