"""One log segment: `<base offset>.log` with its `.index` and `.timeindex`.

Batches sit back to back in the `.log` file exactly as they came off the wire. Reads and
writes use raw file descriptors (os.write, os.pread), taken for each operation from the
process's bounded descriptor cache (descriptors.py); the indexes live in memory and are
appended to their files as entries are made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import crc32c

from kcli.broker.log._files import READ_WRITE_APPEND, sync_data, write_all, writev_all
from kcli.broker.log.batch import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    batch_extent,
    unpack_header,
)
from kcli.broker.log.descriptors import DescriptorCache, LogFile, descriptors
from kcli.broker.log.errors import CorruptBatch, LogOffline
from kcli.broker.log.index import OffsetIndex, TimeIndex

_REOPEN = READ_WRITE_APPEND & ~os.O_CREAT
"""A segment's log file is only created by `create`: one gone from under an open log is
an error, not a new empty file."""

INT32_MAX = (1 << 31) - 1
LONG_MAX = (1 << 63) - 1
NO_TIMESTAMP = -1

# Suffixes after a segment's file names (`<base>.log.swap`, ...) while it is not plainly
# part of the log.
DELETED_SUFFIX = ".deleted"
"""Deleted, removed after file.delete.delay.ms (or on open)."""
CLEANED_SUFFIX = ".cleaned"
"""The cleaner's output, before its commit."""
SWAP_SUFFIX = ".swap"
"""The cleaner's output, committed, on its way to the plain names."""

_SCAN_WINDOW = 16 * 1024
_RECOVER_WINDOW = 1 << 20


def _follows(base_offset: int, expected: int, gaps_below: int) -> bool:
    """Whether a batch at `base_offset` may follow one that ended before `expected`."""
    if base_offset == expected:
        return True
    return expected < base_offset < gaps_below


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def parse_segment_name(name: str) -> int | None:
    """Base offset of a `<20 digits>.log` file name, or None."""
    stem, dot, suffix = name.partition(".")
    if dot and suffix == "log" and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


class SegmentInfo(NamedTuple):
    """What retention and DescribeLogDirs need to know of a segment."""

    base_offset: int
    size: int
    last_modified: int
    """File modification time, ms since the epoch."""
    max_timestamp: int
    """Largest batch maxTimestamp in the segment, -1 if none."""


class Recovery(NamedTuple):
    """Where a recovery scan cut a segment."""

    offset: int
    """Offset the first dropped batch would have started at."""
    position: int
    dropped_bytes: int
    reason: str


class Segment:
    """A segment file, its indexes, and what is known about its offsets and timestamps.

    Offsets within a segment rise from batch to batch; below the log's gap limit (see
    `recover`) a batch may skip offsets, as compaction leaves them.
    """

    __slots__ = (
        "_first_timestamp",
        "base_offset",
        "bytes_since_index",
        "created_ms",
        "file",
        "max_timestamp",
        "next_offset",
        "offset_index",
        "offset_of_max_timestamp",
        "size",
        "time_index",
    )

    def __init__(
        self, directory: Path, base_offset: int, file: LogFile, size: int, now_ms: int,
        suffix: str = "",
    ):
        name = segment_name(base_offset)
        self.base_offset = base_offset
        self.file = file
        """The `.log` file (its descriptor comes and goes with the cache)."""
        self.size = size
        cache = file.cache
        self.offset_index = OffsetIndex(directory / f"{name}.index{suffix}", cache)
        self.time_index = TimeIndex(directory / f"{name}.timeindex{suffix}", cache)
        self.next_offset = base_offset
        """One past the last offset; only kept up to date for the active segment."""
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = -1
        """Last offset of the first batch that carried `max_timestamp`."""
        self.bytes_since_index = 0
        self.created_ms = now_ms
        self._first_timestamp: int | None = None

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, now_ms: int, suffix: str = "",
        cache: DescriptorCache | None = descriptors,
    ) -> Segment:
        """A new, empty segment (any file already under that name is emptied); `suffix`
        follows each file name (the cleaner writes `.log.cleaned` and so on). With
        `cache` None its files keep their own descriptors (a worker thread writes them)
        until `attach`."""
        path = directory / f"{segment_name(base_offset)}.log{suffix}"
        file = LogFile(path, READ_WRITE_APPEND | os.O_TRUNC, cache, _REOPEN)
        _ = file.fd  # created (and emptied) now, not on first use
        segment = cls(directory, base_offset, file, 0, now_ms, suffix)
        try:
            segment.offset_index.reset()
            segment.time_index.reset()
        except BaseException:
            with contextlib.suppress(OSError):  # an empty leftover is harmless on open
                segment.delete()
            raise
        return segment

    @classmethod
    def open(cls, directory: Path, base_offset: int, now_ms: int, suffix: str = "") -> Segment:
        """An existing segment file; its indexes are not loaded yet."""
        path = directory / f"{segment_name(base_offset)}.log{suffix}"
        file = LogFile(path, _REOPEN, descriptors)
        try:
            size = os.fstat(file.fd).st_size
        except OSError:
            file.close()
            raise
        return cls(directory, base_offset, file, size, now_ms, suffix)

    @property
    def fd(self) -> int:
        """The `.log` file's descriptor, for one operation (see LogFile.fd)."""
        return self.file.fd

    @property
    def log_path(self) -> Path:
        return self.file.path

    @property
    def closed(self) -> bool:
        """Whether the segment was closed or deleted."""
        return self.file.closed

    def attach(self, cache: DescriptorCache = descriptors) -> None:
        """Hand the files of a segment made with `cache=None` to `cache` (loop thread)."""
        self.file.attach(cache)
        self.offset_index.attach(cache)
        self.time_index.attach(cache)

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        """The index, time index and log file paths (the order renames go in)."""
        return self.offset_index.path, self.time_index.path, self.log_path

    def rename(self, suffix: str, before: Callable[[Path], None] | None = None) -> None:
        """Give every file the name suffix `suffix` ("" for the plain names): the indexes
        first, the log last, so a `.log` under a name means its indexes went before it.
        `before(path)` is called ahead of each rename. Open descriptors stay valid."""
        name = segment_name(self.base_offset)
        directory = self.log_path.parent
        for index, kind in ((self.offset_index, "index"), (self.time_index, "timeindex")):
            if before is not None:
                before(index.path)
            index.rename(directory / f"{name}.{kind}{suffix}")
        if before is not None:
            before(self.log_path)
        target = directory / f"{name}.log{suffix}"
        os.replace(self.log_path, target)
        self.file.path = target

    def close(self) -> None:
        self.offset_index.close()
        self.time_index.close()
        self.file.close()

    def delete(self) -> None:
        self.close()
        self.log_path.unlink(missing_ok=True)
        self.offset_index.delete()
        self.time_index.delete()

    def sync(self, *, indexes: bool) -> None:
        """fsync the log file (and the indexes); safe in a worker thread. ValueError if
        the segment was closed meanwhile."""
        with self.file.pinned() as fd:
            sync_data(fd)
        if indexes:
            self.offset_index.sync()
            self.time_index.sync()

    def sync_all(self) -> None:
        """fsync the log file and both indexes."""
        self.sync(indexes=True)

    def close_indexes(self) -> None:
        """Release the index file descriptors (a sealed segment writes no more entries)."""
        self.offset_index.close()
        self.time_index.close()

    def seal(self) -> None:
        """Record the segment's largest timestamp in the time index (on roll and close)."""
        if self.offset_of_max_timestamp >= 0:
            self.time_index.maybe_append(
                self.max_timestamp, self.offset_of_max_timestamp - self.base_offset
            )

    def last_modified_ms(self) -> int:
        return self.file.stat().st_mtime_ns // 1_000_000

    def info(self) -> SegmentInfo:
        return SegmentInfo(self.base_offset, self.size, self.last_modified_ms(), self.max_timestamp)

    # ------------------------------------------------------------------ writing

    def append(
        self,
        data: bytes | bytearray | memoryview | tuple[bytearray, memoryview],
        last_offset: int,
        max_ts: int,
        index_interval: int,
    ) -> None:
        """Write whole batches at the end, then their index entries; all or nothing: on
        failure the files and the segment's state are cut back to where they were
        (LogOffline, chained to the failure, if even that fails). ``data`` may be one
        batch in two parts, its stamped header and the rest, written with one writev."""
        position = self.size
        try:
            if isinstance(data, tuple):
                size = writev_all(self.fd, data)
            else:
                write_all(self.fd, data)
                size = len(data)
            self.size = position + size
            if position == 0:
                self._first_timestamp = max_ts
            self._index_batch(position, size, last_offset, max_ts, index_interval)
        except BaseException as error:
            self._undo_append(position, error)
            raise

    def append_batches(
        self, data: bytes | bytearray, batches: list[tuple[int, int, int]], index_interval: int
    ) -> None:
        """Write `data`, whole batches back to back, at the end in one write; `batches` are
        their (size, last offset, maxTimestamp) in order, for the indexes. All or nothing,
        as `append`."""
        if not data:
            return
        start = self.size
        try:
            write_all(self.fd, data)
            self.size = start + len(data)
            if start == 0:
                self._first_timestamp = batches[0][2]
            position = start
            for size, last_offset, max_ts in batches:
                self._index_batch(position, size, last_offset, max_ts, index_interval)
                position += size
        except BaseException as error:
            self._undo_append(start, error)
            raise

    def _undo_append(self, position: int, error: BaseException) -> None:
        """Cut the log file and both indexes back to a failed append's start `position`."""
        try:
            self.truncate_to(position)
            index = self.offset_index  # as if the batch never came: the interval goes on
            self.bytes_since_index = position - (index.positions[-1] if len(index) else 0)
        except (OSError, CorruptBatch) as undo_error:
            self.size = position  # reads stop where the log did
            raise LogOffline(
                f"{self.log_path}: cannot undo a failed append ({error}): {undo_error}"
            ) from error

    def _index_batch(
        self, position: int, size: int, last_offset: int, max_ts: int, index_interval: int
    ) -> None:
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
            self.offset_of_max_timestamp = last_offset
        if self.bytes_since_index > index_interval:
            base = self.base_offset
            self.offset_index.append(last_offset - base, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp - base)
            self.bytes_since_index = 0
        self.bytes_since_index += size
        self.next_offset = last_offset + 1

    def rolling_timestamp(self) -> int:
        """maxTimestamp of the first batch (what segment.ms is measured from), or -1."""
        if self._first_timestamp is None:
            if self.size < HEADER_SIZE:
                return NO_TIMESTAMP
            self._first_timestamp = unpack_header(
                os.pread(self.fd, HEADER_SIZE, 0), 0, 0
            ).max_timestamp
        return self._first_timestamp

    # ------------------------------------------------------------------ reading

    def pread(self, position: int, size: int) -> bytes:
        return os.pread(self.fd, size, position)

    def scan(self, position: int = 0) -> Iterator[BatchHeader]:
        """Headers of the batches from `position` on (a batch starts there), in order.

        Stops at a partial batch; CorruptBatch on an impossible batch length.
        """
        end = self.size
        while end - position >= HEADER_SIZE:
            # the descriptor is taken for each read: the caller may open other files
            # (so close this one) between the batches it is given
            window = os.pread(self.fd, min(_SCAN_WINDOW, end - position), position)
            n = len(window)
            off = 0
            while n - off >= HEADER_SIZE:
                header = unpack_header(window, off, position + off)
                if header.batch_length < MIN_BATCH_LENGTH:
                    raise CorruptBatch(
                        f"{self.log_path}: impossible batch length at {position + off}"
                    )
                if header.position + header.batch_length + LOG_OVERHEAD > end:
                    return
                yield header
                off += header.batch_length + LOG_OVERHEAD
            position += off

    def locate(self, offset: int) -> BatchHeader | None:
        """The first batch whose last offset is >= `offset` (the one holding it, if any)."""
        for header in self.scan(self.offset_index.lookup(offset - self.base_offset)):
            if header.base_offset + header.last_offset_delta >= offset:
                return header
        return None

    def end_position_below(self, offset: int) -> int:
        """Where the first batch with base offset >= `offset` starts (the size if none)."""
        header = self.locate(offset)
        if header is None:
            return self.size
        if header.base_offset >= offset:
            return header.position
        return header.position + header.batch_length + LOG_OVERHEAD

    def whole_batches_end(self, position: int, limit: int) -> int:
        """The end of the last whole batch within `limit` bytes from `position`.

        The caller guarantees a batch starts at `position`. Walks batch lengths from the
        last index entry inside the range, so the work is bounded by the index interval.
        """
        end = min(position + limit, self.size)
        cursor = max(self.offset_index.floor_position(end), position)
        while end - cursor >= LOG_OVERHEAD:
            window = os.pread(self.fd, min(end - cursor, _SCAN_WINDOW), cursor)
            off = 0
            n = len(window)
            while n - off >= LOG_OVERHEAD:
                _, size = batch_extent(window, off)
                if size < HEADER_SIZE or end - cursor - off < size:
                    return cursor + off
                off += size
            if off == 0:
                break
            cursor += off
        return cursor

    def read_batch(self, header: BatchHeader) -> bytes:
        return os.pread(self.fd, header.batch_length + LOG_OVERHEAD, header.position)

    # ------------------------------------------------------------------ loading

    def digest(self) -> tuple[int, int, int, int, int]:
        """(log size, index length, index CRC32C, time index length, time index CRC32C)."""
        return (self.size, *self.offset_index.digest(), *self.time_index.digest())

    def load_indexes(self, expected: tuple[int, int, int, int, int] | None = None) -> bool:
        """Load the index files; False if they cannot be trusted (rebuild then): they do
        not match the `expected` digest, or are not plausible for the log file."""
        if expected is not None and expected[0] != self.size:
            return False
        if not self.offset_index.load(
            self.size, None if expected is None else (expected[1], expected[2])
        ) or not self.time_index.load(
            self.size, None if expected is None else (expected[3], expected[4])
        ):
            return False
        base = self.base_offset
        index = self.offset_index
        if len(index):
            for i in (0, len(index) - 1):  # spot-check that entries point at their batches
                header = self._header_at(index.positions[i])
                if header is None or header.base_offset + header.last_offset_delta != (
                    base + index.relative[i]
                ):
                    return False
        last = self.time_index.last()
        if last is not None:
            self.max_timestamp, relative = last
            self.offset_of_max_timestamp = base + relative
        return True

    def _header_at(self, position: int) -> BatchHeader | None:
        if self.size - position < HEADER_SIZE:
            return None
        header = unpack_header(os.pread(self.fd, HEADER_SIZE, position), 0, position)
        if (
            header.batch_length < MIN_BATCH_LENGTH
            or header.magic != 2
            or header.last_offset_delta < 0
            or position + header.batch_length + LOG_OVERHEAD > self.size
        ):
            return None
        return header

    def read_next_offset(self, gaps_below: int = 0) -> int | None:
        """Walk from the last index entry to the end: the next offset, None if the tail is
        torn or its offsets do not follow on (batches below `gaps_below` may skip
        offsets, as in `recover`)."""
        index = self.offset_index
        if len(index):
            position = index.positions[-1]
            expected = None  # the indexed batch itself is checked by load_indexes
        else:
            position = 0
            expected = self.base_offset
        next_offset = self.base_offset
        end = position
        try:
            for header in self.scan(position):
                if header.magic != 2 or header.last_offset_delta < 0:
                    return None
                if expected is not None and not _follows(header.base_offset, expected, gaps_below):
                    return None
                next_offset = expected = header.base_offset + header.last_offset_delta + 1
                end = header.position + header.batch_length + LOG_OVERHEAD
        except CorruptBatch:
            return None
        if end != self.size:
            return None
        return next_offset

    def recover(
        self,
        index_interval: int,
        on_batch: Callable[[int, int, int], None] | None = None,
        *,
        gaps_below: int = 0,
    ) -> Recovery | None:
        """Check every batch (length, magic, CRC, offsets following on from the segment's
        base offset) and rebuild the indexes; `on_batch(leader_epoch, base_offset,
        last_offset)` sees every sound batch.

        A batch whose base offset is below `gaps_below` (the log's gap limit: compaction
        and replicas of compacted logs leave holes only there) may start anywhere after
        the previous batch's last offset; at and above it, offsets must follow on exactly,
        so a base offset garbled outside the CRC is still caught where gaps cannot be.

        The first bad batch and everything after it are cut off the file; returns where,
        or None when the whole segment is sound.
        """
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = -1
        self.bytes_since_index = 0
        self._first_timestamp = None
        base = self.base_offset
        expected = base
        size = self.size
        position = 0
        window = b""
        window_start = 0
        reason = ""
        while position < size:
            if size - position < HEADER_SIZE:
                reason = "partial batch header"
                break
            if position + HEADER_SIZE > window_start + len(window):
                window = os.pread(self.fd, min(_RECOVER_WINDOW, size - position), position)
                window_start = position
            header = unpack_header(window, position - window_start, position)
            batch_size = header.batch_length + LOG_OVERHEAD
            if header.batch_length < MIN_BATCH_LENGTH or batch_size > size - position:
                reason = f"batch length {header.batch_length} out of bounds"
                break
            if header.magic != 2:
                reason = f"magic {header.magic}"
                break
            if position + batch_size > window_start + len(window):
                if batch_size <= _RECOVER_WINDOW:
                    window = os.pread(self.fd, min(_RECOVER_WINDOW, size - position), position)
                    window_start = position
                    data = window[:batch_size]
                else:
                    data = os.pread(self.fd, batch_size, position)
                crc = crc32c.crc32c(memoryview(data)[CRC_START:])
            else:
                start = position - window_start
                with memoryview(window) as view:
                    crc = crc32c.crc32c(view[start + CRC_START : start + batch_size])
            if crc != header.crc:
                reason = "CRC mismatch"
                break
            last_offset = header.base_offset + header.last_offset_delta
            if (
                header.last_offset_delta < 0
                or not _follows(header.base_offset, expected, gaps_below)
                or last_offset - base > INT32_MAX
            ):
                reason = f"offsets {header.base_offset}..{last_offset} do not follow {expected - 1}"
                break
            if on_batch is not None:
                on_batch(header.partition_leader_epoch, header.base_offset, last_offset)
            if position == 0:
                self._first_timestamp = header.max_timestamp
            self._index_batch(
                position, batch_size, last_offset, header.max_timestamp, index_interval
            )
            expected = last_offset + 1
            position += batch_size
        self.next_offset = expected if position else base
        self.seal()
        if position == size:
            return None
        self.truncate_file(position)
        return Recovery(expected if position else base, position, size - position, reason)

    def truncate_file(self, position: int) -> None:
        os.ftruncate(self.fd, position)
        self.size = position

    def truncate_to(self, position: int) -> None:
        """Cut the segment at `position` (a batch boundary) and bring its state in line."""
        self.truncate_file(position)
        self.offset_index.truncate_at_position(position)
        self.bytes_since_index = 0
        if position == 0:
            self.next_offset = self.base_offset
            self._first_timestamp = None
            self.time_index.reset()
            self.max_timestamp = NO_TIMESTAMP
            self.offset_of_max_timestamp = -1
            return
        next_offset = self.base_offset
        for header in self.scan(self.offset_index.lookup(INT32_MAX)):
            next_offset = header.base_offset + header.last_offset_delta + 1
        self.next_offset = next_offset
        self.time_index.truncate_at_relative(next_offset - self.base_offset)
        # The largest timestamp: the last time index entry, then whatever follows it.
        last = self.time_index.last()
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = -1
        start = 0
        if last is not None:
            self.max_timestamp = last[0]
            self.offset_of_max_timestamp = self.base_offset + last[1]
            start = self.offset_index.lookup(last[1])
        for header in self.scan(start):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.base_offset + header.last_offset_delta
