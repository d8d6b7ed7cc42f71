"""PartitionLog: one partition's log on disk, the API the broker calls.

Directory layout (Kafka's)::

    <base offset, 20 digits>.log        batches back to back, as on the wire
    <base offset>.index / .timeindex    sparse indexes
    leader-epoch-checkpoint             leader epoch cache (epoch.py)
    log-start-offset, recovery-point-offset, .kcli-clean-shutdown, offset-gaps-below,
    cleaner-offset-checkpoint           where the log stands (checkpoints.py)
    *.deleted                           deleted segment files, removed after
                                        file.delete.delay.ms (or on open)
    *.cleaned, *.swap                   the cleaner's output, before and after its commit

Opening and recovery are loader.py's; finding records by timestamp, timestamps.py's.

Single-threaded: every call comes from the broker's event loop thread (the cleaner works
in a thread on duplicated descriptors, and calls in here only on the loop).

At about 830 lines this module is over the project's ~600-line guide, on purpose: it is
one class whose segment list, offsets and checkpoints change together in every section
(an append's undo on a full disk and the offline state included).
The next cut is Kafka's LocalLog/UnifiedLog split (a segment-list object of its own),
which goes through the append and read hot paths and so is a change of its own.
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import crc32c

from kcli.broker.log import checkpoints, timestamps
from kcli.broker.log._files import fsync_dir, make_private_dir
from kcli.broker.log.batch import (
    BATCH_LENGTH,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LAST_OFFSET_DELTA,
    LOG_OVERHEAD,
    MAX_TIMESTAMP,
    MIN_BATCH_LENGTH,
    RECORDS_COUNT,
    BatchHeader,
    stamp_batch,
    unpack_header,
)
from kcli.broker.log.config import LogConfig
from kcli.broker.log.dirs import delete_partition_dir
from kcli.broker.log.errors import (
    CorruptBatch,
    InvalidBatch,
    LogOffline,
    OffsetOutOfRange,
    StorageError,
    UnsupportedMagic,
)
from kcli.broker.log.file_records import ZERO_COPY_MIN_BYTES, FileRecords
from kcli.broker.log.loader import LoadedLog, load_log
from kcli.broker.log.retention import deletable_segments
from kcli.broker.log.segment import (
    DELETED_SUFFIX,
    INT32_MAX,
    SWAP_SUFFIX,
    Segment,
    SegmentInfo,
)

__all__ = ["AppendInfo", "PartitionLog", "sync_segments"]

log = logging.getLogger("kcli.broker.log")


class AppendInfo(NamedTuple):
    """What an append assigned."""

    base_offset: int
    last_offset: int
    log_append_time: int
    """The LogAppendTime stamped on the batch, or -1 for CreateTime."""
    max_timestamp: int


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    """Append-only storage of one partition's record batches. Create with `open`."""

    def __init__(
        self, directory: Path, config: LogConfig, clock: Callable[[], int], loaded: LoadedLog
    ) -> None:
        self.directory = directory
        self.config = config
        self.log_start_offset = loaded.log_start_offset
        """First offset a consumer may read; persisted, survives restart."""
        self.log_end_offset = loaded.log_end_offset
        """Next offset to assign."""
        self._clock = clock
        self._max_segment_bytes = min(config.segment_bytes, INT32_MAX)
        self._segments = loaded.segments
        self._bases = [segment.base_offset for segment in loaded.segments]
        self._unsynced = loaded.unsynced
        self._epochs = loaded.epochs
        self._recovery_point = loaded.recovery_point
        self._dir_dirty = loaded.dir_dirty
        self._clean_marker = loaded.clean_marker
        self._unflushed_records = 0
        self._last_flush_ms = clock()
        self._closed = False
        self._gaps_below = loaded.gaps_below
        self._first_dirty_offset = loaded.first_dirty_offset
        self._tombstone_deadline = loaded.tombstone_deadline
        self._pending_deletes: list[tuple[int, tuple[Path, ...]]] = []
        self._offline = False

    # ================================================================== opening

    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, *, clock: Callable[[], int] | None = None
    ) -> PartitionLog:
        """Open the log in `directory`, creating it, or recovering it after an unclean stop
        (see kcli.broker.log.loader).

        `clock` (ms since the epoch) is for tests; it drives segment_ms and flush_ms.
        """
        directory = Path(directory)
        make_private_dir(directory)
        clock = clock or _wall_clock_ms
        partition_log = cls(
            directory, config, clock, load_log(directory, config.index_interval_bytes, clock)
        )
        if partition_log._unsynced or partition_log._dir_dirty:
            try:
                partition_log.flush()
            except BaseException:
                partition_log._close_files()
                raise
        return partition_log

    # ================================================================== segments

    @property
    def _active(self) -> Segment:
        return self._segments[-1]

    def _add_segment(self, base_offset: int) -> Segment:
        segment = Segment.create(self.directory, base_offset, self._clock())
        self._segments.append(segment)
        self._bases.append(base_offset)
        self._dir_dirty = True
        return segment

    def _will_write(self) -> None:
        """Call before the log's files first change after a clean open: removes the clean
        shutdown marker, durably, so that from then on a crash cannot pass for a clean
        stop. (Opening leaves it in place, so a clean restart writes nothing per
        partition; Kafka likewise keeps one marker per log dir until it writes.)"""
        if self._clean_marker:
            checkpoints.remove_clean_shutdown(self.directory)
            fsync_dir(self.directory)
            self._clean_marker = False

    def _roll(self, base_offset: int) -> Segment:
        """Start a new active segment at `base_offset`; all or nothing: on failure the old
        one is as it was (LogOffline if even that cannot be restored)."""
        old = self._segments[-1]
        if old.size == 0 and old.base_offset == base_offset:
            return old
        entries = len(old.time_index)
        try:
            if old.size:
                old.seal()
            segment = Segment.create(self.directory, base_offset, self._clock())
        except BaseException as error:
            try:
                old.time_index.truncate_entries(entries)
            except OSError as undo_error:
                raise LogOffline(f"{self.directory}: cannot undo a failed roll ({error}): "
                                 f"{undo_error}") from error
            raise
        if old.size == 0:
            self._drop_segment(len(self._segments) - 1)
        elif old not in self._unsynced:
            self._unsynced.append(old)
        self._segments.append(segment)
        self._bases.append(base_offset)
        self._dir_dirty = True
        return segment

    def _drop_segment(self, i: int) -> None:
        segment = self._segments.pop(i)
        del self._bases[i]
        if segment in self._unsynced:
            self._unsynced.remove(segment)
        segment.delete()
        self._dir_dirty = True

    def _should_roll(self, segment: Segment, size: int, last_offset: int, max_ts: int) -> bool:
        if last_offset - segment.base_offset > INT32_MAX:
            return True
        if segment.size == 0:
            return False
        if segment.size > self._max_segment_bytes - size:
            return True
        first = segment.rolling_timestamp()
        waited = max_ts - first if first >= 0 else self._clock() - segment.created_ms
        return waited > self.config.roll_ms

    def _start_empty_at(self, offset: int) -> None:
        while self._segments:
            self._drop_segment(len(self._segments) - 1)
        self._add_segment(offset)
        self.log_end_offset = offset
        self._first_dirty_offset = offset

    def update_config(self, config: LogConfig) -> None:
        """Replace the settings; they apply from the next call on."""
        self.config = config
        self._max_segment_bytes = min(config.segment_bytes, INT32_MAX)

    # ================================================================== appending

    def append(
        self, batch: bytes | bytearray | memoryview, *, leader_epoch: int,
        log_append_time: int | None,
    ) -> AppendInfo:
        """Append one client batch (already checked by validate_client_batch).

        Assigns offsets from log_end_offset and stamps them, the leader epoch and the
        LogAppendTime into `batch` in place when it is writable; rolls first if needed;
        writes to the OS and fsyncs by the flush policy. A read-only `batch` (bytes) is
        not copied: offsets and epoch lie outside its CRC, so a copy of its header is
        stamped and written before the rest (LogAppendTime, inside the CRC, takes a copy).

        All or nothing: a failed write (StorageError) leaves the files and the log end
        offset as they were. LogOffline when the log is (or has just gone) offline.
        """
        fields = HEADER.unpack_from(batch)
        size = fields[BATCH_LENGTH] + LOG_OVERHEAD
        if size != len(batch):
            raise InvalidBatch(f"append expects exactly one batch ({size} of {len(batch)} bytes)")
        if self._offline:
            raise LogOffline(f"{self.directory} is offline")
        base = self.log_end_offset
        last = base + fields[LAST_OFFSET_DELTA]
        max_ts = fields[MAX_TIMESTAMP] if log_append_time is None else log_append_time
        segment = self._segments[-1]
        try:
            self._will_write()
            if leader_epoch > self._epochs.latest_epoch:  # before the batch, as Kafka does
                self._epochs.assign(leader_epoch, base)
            if self._should_roll(segment, size, last, max_ts):
                segment = self._roll(base)
            data: bytearray | memoryview | tuple[bytearray, memoryview]
            if isinstance(batch, bytearray) or (isinstance(batch, memoryview)
                                                and not batch.readonly):
                stamp_batch(batch, base, leader_epoch, log_append_time)
                data = batch
            elif log_append_time is None:  # offsets and epoch lie outside the CRC
                head = bytearray(batch[:HEADER_SIZE])
                stamp_batch(head, base, leader_epoch, None)
                data = (head, memoryview(batch)[HEADER_SIZE:])
            else:  # LogAppendTime changes the CRC, which covers the whole batch
                data = bytearray(batch)
                stamp_batch(data, base, leader_epoch, log_append_time)
            segment.append(data, last, max_ts, self.config.index_interval_bytes)
        except LogOffline:
            self._offline = True
            raise
        except OSError as error:
            raise StorageError(f"{self.directory}: append at {base} failed: {error}") from error
        self.log_end_offset = last + 1
        self._unflushed_records += fields[RECORDS_COUNT]
        self._maybe_flush()
        return AppendInfo(base, last, -1 if log_append_time is None else log_append_time, max_ts)

    def append_replicated(self, data: bytes | bytearray | memoryview) -> None:
        """Append batches that already carry offsets and epochs (a follower's fetch).

        Every whole batch is checked (magic, CRC, offsets rising from log_end_offset on)
        before any is written; a partial batch at the end is ignored, as Kafka does. A
        compacted leader's batches skip offsets: the gap limit is raised past them first,
        so recovery accepts them. Raises CorruptBatch, UnsupportedMagic, InvalidBatch;
        StorageError and LogOffline as `append` (the batches before a failed one stay).
        """
        if self._offline:
            raise LogOffline(f"{self.directory} is offline")
        headers: list[BatchHeader] = []
        with memoryview(data) as view:
            n = len(view)
            position = 0
            expected = self.log_end_offset
            gapped = False
            while n - position >= HEADER_SIZE:
                header = unpack_header(view, position, position)
                if header.batch_length < MIN_BATCH_LENGTH:
                    raise CorruptBatch(f"impossible batch length at {position}")
                size = header.batch_length + LOG_OVERHEAD
                if size > n - position:
                    break
                if header.magic != 2:
                    raise UnsupportedMagic(f"record batch magic {header.magic}")
                if crc32c.crc32c(view[position + CRC_START : position + size]) != header.crc:
                    raise CorruptBatch(f"CRC mismatch in the batch at offset {header.base_offset}")
                if header.last_offset_delta < 0 or header.base_offset < expected:
                    raise InvalidBatch(
                        f"batch offsets {header.base_offset}..{header.last_offset} do not "
                        f"continue from {expected}"
                    )
                gapped = gapped or header.base_offset != expected
                headers.append(header)
                expected = header.base_offset + header.last_offset_delta + 1
                position += size
            if gapped:
                self.raise_gap_limit(expected)
            interval = self.config.index_interval_bytes
            for header in headers:
                size = header.batch_length + LOG_OVERHEAD
                last = header.base_offset + header.last_offset_delta
                segment = self._segments[-1]
                try:
                    self._will_write()
                    if header.partition_leader_epoch > self._epochs.latest_epoch:
                        self._epochs.assign(header.partition_leader_epoch, header.base_offset)
                    if self._should_roll(segment, size, last, header.max_timestamp):
                        segment = self._roll(header.base_offset)
                    start = header.position
                    segment.append(view[start : start + size], last, header.max_timestamp,
                                   interval)
                except LogOffline:
                    self._offline = True
                    raise
                except OSError as error:
                    raise StorageError(f"{self.directory}: replicated append at "
                                       f"{header.base_offset} failed: {error}") from error
                self.log_end_offset = last + 1
                self._unflushed_records += header.records_count
        if headers:
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        config = self.config
        if config.flush_messages is not None and self._unflushed_records >= config.flush_messages:
            self._flush_or_go_offline()
        elif config.flush_ms is not None:
            now = self._clock()
            if now - self._last_flush_ms >= config.flush_ms or now < self._last_flush_ms:
                self._flush_or_go_offline()

    def _flush_or_go_offline(self) -> None:
        """flush() after an append. A failed fsync leaves what reached the disk unknown, so
        the log goes offline (Kafka's rule for an IOException in a log dir); a recovery
        point that cannot be written (disk full) is only logged: the next flush retries
        it, and meanwhile a crash scans a little more."""
        try:
            self._sync_files()
        except OSError as error:
            self._offline = True
            raise LogOffline(f"{self.directory}: fsync failed: {error}") from error
        try:
            self._flushed()
        except OSError as error:
            log.warning("%s: recovery point not written: %s", self.directory, error)

    @property
    def offline(self) -> bool:
        """Whether the log takes no more writes (see LogOffline); reads still work."""
        return self._offline

    def flush_if_due(self) -> None:
        """fsync when flush.ms has passed with records still unflushed (a periodic check,
        so an idle partition is flushed too, not only on its next append)."""
        config = self.config
        if (
            config.flush_ms is not None
            and self._unflushed_records
            and self._clock() - self._last_flush_ms >= config.flush_ms
            and not self._closed
            and not self._offline
        ):
            self._flush_or_go_offline()

    # ================================================================== reading

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        """Whole batches from the one containing `offset` on, at most `max_bytes` in total
        but always the first whole batch (KIP-74); none whose base offset is >=
        `upper_bound` (the high watermark). b"" at log_end_offset; OffsetOutOfRange outside
        [log_start_offset, log_end_offset]."""
        return _read_ranges(self._ranges(offset, max_bytes, upper_bound))

    def read_for_send(self, offset: int, max_bytes: int, *, upper_bound: int | None = None,
                      min_bytes: int = ZERO_COPY_MIN_BYTES) -> bytes | FileRecords:
        """What `read` returns, as file ranges to send without copying (FileRecords) when
        there are at least `min_bytes` of them, else as bytes."""
        ranges = self._ranges(offset, max_bytes, upper_bound)
        if sum(size for _segment, _position, size in ranges) < max(min_bytes, 1):
            return _read_ranges(ranges)
        try:
            return FileRecords.of([(segment.fd, position, size)
                                   for segment, position, size in ranges])
        except OSError:  # out of descriptors: the bytes, read now, serve as well
            return _read_ranges(ranges)

    def _ranges(self, offset: int, max_bytes: int,
                upper_bound: int | None) -> list[tuple[Segment, int, int]]:
        """The (segment, position, size) ranges `read` returns the bytes of."""
        end_offset = self.log_end_offset
        if offset < self.log_start_offset or offset > end_offset:
            raise OffsetOutOfRange(self.log_start_offset, end_offset, offset)
        if offset == end_offset:
            return []
        segments = self._segments
        bases = self._bases
        last_i = len(segments) - 1
        if upper_bound is None or upper_bound >= end_offset:
            bound = end_offset
            bound_i = last_i
        else:
            bound = upper_bound
            bound_i = max(bisect_right(bases, bound) - 1, 0)
        i = max(bisect_right(bases, offset) - 1, 0)
        header = segments[i].locate(offset)
        while header is None:
            i += 1
            if i > bound_i:
                return []
            header = segments[i].locate(offset)
        if header.base_offset >= bound or i > bound_i:
            return []
        position = header.position
        remaining = max(max_bytes, header.batch_length + LOG_OVERHEAD)
        ranges: list[tuple[Segment, int, int]] = []
        while True:
            segment = segments[i]
            end = (
                segment.size
                if i < bound_i or bound == end_offset
                else (segment.end_position_below(bound))
            )
            want = end - position
            if want > remaining:
                end = segment.whole_batches_end(position, remaining)
                if end > position:
                    ranges.append((segment, position, end - position))
                break
            if want > 0:
                ranges.append((segment, position, want))
                remaining -= want
            i += 1
            if i > bound_i or remaining < HEADER_SIZE:
                break
            position = 0
        return ranges

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after log_start_offset whose
        timestamp is >= `timestamp` (a LogAppendTime batch's records carry its
        maxTimestamp); None if there is none.

        For a real timestamp; ListOffsets' -1/-2/-3 are the high watermark,
        log_start_offset and max_timestamp(). The result is not capped at the high
        watermark: compare it there.
        """
        start = self.log_start_offset
        first = max(bisect_right(self._bases, start) - 1, 0)
        return timestamps.offset_for_timestamp(self._segments[first:], timestamp, start)

    def max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record with the largest timestamp (ListOffsets
        -3), None when no record carries a timestamp."""
        return timestamps.max_timestamp(self._segments)

    def batch_headers(self, start_offset: int | None = None) -> Iterator[BatchHeader]:
        """Headers of the stored batches from the one holding `start_offset` (default: the
        log start) to the end, in order; `position` is within the batch's segment.

        For slow paths such as rebuilding producer state at startup; do not change the
        log while iterating.
        """
        start = self.log_start_offset if start_offset is None else start_offset
        first = max(bisect_right(self._bases, start) - 1, 0)
        for segment in self._segments[first:]:
            for header in segment.scan(segment.offset_index.lookup(start - segment.base_offset)):
                if header.base_offset + header.last_offset_delta >= start:
                    yield header

    # ================================================================== trimming

    def delete_records_before(self, offset: int) -> int:
        """Raise log_start_offset to `offset` (never lower it) and delete the segments wholly
        below it; returns the new log start offset. OffsetOutOfRange past log_end_offset;
        StorageError, with nothing changed, when the new start cannot be persisted (a full
        disk): a start inside a segment is known only from its checkpoint."""
        if offset > self.log_end_offset:
            raise OffsetOutOfRange(self.log_start_offset, self.log_end_offset, offset)
        if offset <= self.log_start_offset:
            return self.log_start_offset
        if self._offline:
            raise LogOffline(f"{self.directory} is offline")
        try:
            self._will_write()
            checkpoints.write_log_start_offset(self.directory, offset)
        except OSError as error:
            raise StorageError(f"{self.directory}: log start offset {offset} not written: "
                               f"{error}") from error
        self.log_start_offset = offset
        while len(self._segments) > 1 and self._bases[1] <= offset:
            self._retire_segment(0)
        if offset == self.log_end_offset and self._segments[0].size:
            try:
                self._roll(offset)
            except LogOffline:
                self._offline = True
                raise
            except OSError as error:  # the start moved; the emptied segment stays a while
                log.warning("%s: no new segment at %d: %s", self.directory, offset, error)
            else:
                self._retire_segment(0)
        self._epochs.truncate_from_start(offset)
        return offset

    # ================================================================== retention

    def apply_retention(self, high_watermark: int, now_ms: int | None = None) -> int:
        """Delete the oldest closed segments that retention.ms or retention.bytes let go
        (when cleanup.policy has delete), or that lie wholly below the log start offset;
        never the active segment, never one holding an offset at or past
        `high_watermark`. The log start offset moves to the first segment kept. Returns
        how many segments went."""
        if self._closed:
            return 0
        now = self._clock() if now_ms is None else now_ms
        config = self.config
        count = deletable_segments(
            self.segments(),
            now_ms=now,
            retention_ms=config.retention_ms if config.delete else -1,
            retention_bytes=config.retention_bytes if config.delete else -1,
            log_start_offset=self.log_start_offset,
            high_watermark=high_watermark,
        )
        if not count:
            return 0
        self._will_write()
        start = self._bases[count]
        if start > self.log_start_offset:
            self.log_start_offset = start
            try:
                checkpoints.write_log_start_offset(self.directory, start)
            except OSError as error:
                # Deleting is what frees a full disk, and it needs no checkpoint: the
                # start is the first kept segment's base, as opening the log finds it.
                log.warning("%s: log start offset %d not written: %s", self.directory, start,
                            error)
        for _ in range(count):
            self._retire_segment(0)
        self._epochs.truncate_from_start(self.log_start_offset)
        log.info("%s: retention deleted %d segment(s), the log now starts at %d",
                 self.directory, count, self.log_start_offset)
        return count

    def _retire_segment(self, i: int) -> None:
        """Take segment `i` out of the log and delete its files (after file.delete.delay.ms,
        renamed `*.deleted` meanwhile, as Kafka does)."""
        segment = self._segments.pop(i)
        del self._bases[i]
        if segment in self._unsynced:
            self._unsynced.remove(segment)
        self._retire_files(segment)

    def _retire_files(self, segment: Segment) -> None:
        segment.close()
        self._dir_dirty = True
        delay = self.config.file_delete_delay_ms
        if delay > 0:
            try:
                for path in segment.paths:
                    self._crash_point(f"retire {path.name}")
                    if path.exists():
                        os.replace(path, path.with_name(path.name + DELETED_SUFFIX))
            except FileNotFoundError:
                pass
            else:
                deleted = tuple(p.with_name(p.name + DELETED_SUFFIX) for p in segment.paths)
                self._pending_deletes.append((self._clock() + delay, deleted))
                return
        for path in segment.paths:
            self._crash_point(f"delete {path.name}")
            path.unlink(missing_ok=True)

    def remove_deleted_files(self, now_ms: int | None = None) -> None:
        """Remove the `*.deleted` files whose file.delete.delay.ms has passed (call it now
        and then; close() removes the rest)."""
        if not self._pending_deletes:
            return
        now = self._clock() if now_ms is None else now_ms
        due = [paths for when, paths in self._pending_deletes if when <= now]
        if not due:
            return
        self._pending_deletes = [(w, paths) for w, paths in self._pending_deletes if w > now]
        for paths in due:
            for path in paths:
                path.unlink(missing_ok=True)

    # ================================================================== for the cleaner

    _crash_point: Callable[[str], None] = staticmethod(lambda step: None)
    """Called before each file operation of a swap or a segment deletion; tests replace it
    to stop there, as a crash would."""

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    @property
    def first_dirty_offset(self) -> int:
        """Where the part of the log the cleaner has not yet deduplicated begins."""
        return min(max(self._first_dirty_offset, self.log_start_offset), self.log_end_offset)

    @property
    def tombstone_deadline(self) -> int:
        """When the earliest tombstone the cleaner kept may go (ms), -1 if none is known."""
        return self._tombstone_deadline

    @property
    def recovery_point(self) -> int:
        """Segments wholly below this offset are known to be on disk."""
        return self._recovery_point if self._recovery_point is not None else 0

    @property
    def gaps_below(self) -> int:
        """Batches below this offset may skip offsets (compacted); above it they may not."""
        return self._gaps_below

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def closed_segments(self) -> list[Segment]:
        """Every segment but the active one, oldest first (for the cleaner, which reads
        them in steps: check `segment.closed` before each read)."""
        return self._segments[:-1]

    def segment_after(self, segment: Segment) -> Segment | None:
        """The segment following `segment` in the log, None if it is the last or gone."""
        i = bisect_right(self._bases, segment.base_offset) - 1
        if i < 0 or self._segments[i] is not segment or i + 1 >= len(self._segments):
            return None
        return self._segments[i + 1]

    def holds_closed_run(self, run: list[Segment], sizes: list[int]) -> bool:
        """Whether `run` still sits in the log as consecutive closed segments of `sizes`."""
        if not run or self._closed:
            return False
        i = bisect_right(self._bases, run[0].base_offset) - 1
        if i < 0 or i + len(run) >= len(self._segments):
            return False
        return all(
            self._segments[i + k] is seg and not seg.closed and seg.size == size
            for k, (seg, size) in enumerate(zip(run, sizes, strict=True))
        )

    def set_cleaner_checkpoint(self, first_dirty_offset: int, tombstone_deadline: int) -> None:
        """Persist how far the cleaner got and when its earliest kept tombstone expires."""
        self._first_dirty_offset = first_dirty_offset
        self._tombstone_deadline = tombstone_deadline
        checkpoints.write_cleaner_checkpoint(self.directory, first_dirty_offset, tombstone_deadline)

    def raise_gap_limit(self, offset: int) -> None:
        """Allow batches below `offset` to skip offsets, persisted before any gap exists."""
        if offset > self._gaps_below:
            self._will_write()
            checkpoints.write_gap_limit(self.directory, offset)
            self._gaps_below = offset

    def replace_segments(self, old: list[Segment], new: Segment | None) -> None:
        """Swap cleaner output in for `old`, consecutive closed segments of this log.

        `new` holds the cleaned batches of all of them under the first one's base offset,
        its files named `*.cleaned` and fsynced; None drops `old` (nothing of them was
        kept, and they do not start the log). Crash-safe, as Kafka's cleaner is: the
        `.cleaned` files become `.swap` files (indexes first, the log last: that rename
        commits), the directory is fsynced, the old segments' files are deleted, then the
        `.swap` files take the plain names. Opening the log completes a committed swap and
        removes an uncommitted one (`_finish_interrupted_work` in loader.py).
        """
        i = bisect_right(self._bases, old[0].base_offset) - 1
        if not self.holds_closed_run(old, [s.size for s in old]):
            raise ValueError("the segments to replace are no longer in the log")
        assert new is None or new.base_offset == old[0].base_offset
        assert new is not None or i > 0
        step = self._crash_point
        try:
            self._will_write()
            self.raise_gap_limit(self._bases[i + len(old)])
            if new is not None:
                new.rename(SWAP_SUFFIX, lambda path: step(f"swap {path.name}"))
        except OSError:
            if new is not None and not new.log_path.name.endswith(SWAP_SUFFIX):
                new.delete()  # not committed: nothing changed
            raise
        if new is not None:
            step("fsync directory")
            fsync_dir(self.directory)
            new.close_indexes()
            new.attach()  # the worker thread is done with it: the cache may close it now
        # Committed: the log serves the new segment from here on, whatever the file
        # operations below meet (opening the log finishes them after a crash).
        self._segments[i : i + len(old)] = [new] if new is not None else []
        self._bases[i : i + len(old)] = [new.base_offset] if new is not None else []
        self._dir_dirty = True
        for segment in old:
            if segment in self._unsynced:
                self._unsynced.remove(segment)
            self._retire_files(segment)
        if new is not None:
            new.rename("", lambda path: step(f"install {path.name}"))
        if self._recovery_point is not None:  # vouch for the new files, not the old ones
            self._set_recovery_point(self._recovery_point)

    # ================================================================== follower truncation
    # A follower cuts its log back to where it diverged from the leader's (found with
    # OffsetForLeaderEpoch), or restarts it empty where the leader's log starts.

    def truncate_to(self, offset: int) -> None:
        """Drop everything at and after `offset`, at batch boundaries: a batch straddling
        `offset` goes too, and log_end_offset becomes its base offset."""
        if offset >= self.log_end_offset:
            # Nothing to drop, but an epoch starting at the log end belongs to a leader
            # that appended nothing before losing it: it goes, as in Kafka's truncateTo.
            self._epochs.truncate_from_end(self.log_end_offset)
            return
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return
        self._will_write()
        while len(self._segments) > 1 and self._bases[-1] > offset:
            self._drop_segment(len(self._segments) - 1)
        segment = self._segments[-1]
        header = segment.locate(offset)
        segment.truncate_to(segment.size if header is None else header.position)
        self.log_end_offset = segment.next_offset
        if self.log_end_offset < self.log_start_offset:
            self._start_empty_at(self.log_start_offset)
        self._epochs.truncate_from_end(self.log_end_offset)
        if self._recovery_point is None or self._recovery_point > self._segments[-1].base_offset:
            self._set_recovery_point(self._segments[-1].base_offset)
        if self._first_dirty_offset > self.log_end_offset:
            self.set_cleaner_checkpoint(self.log_end_offset, self._tombstone_deadline)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and the epoch cache; the log restarts empty at `offset`
        (log_start_offset = log_end_offset = `offset`), as a follower does when the leader's
        log starts past its own end."""
        if offset < 0:
            raise ValueError(f"invalid offset {offset}")
        self._will_write()
        self._start_empty_at(offset)
        self.log_start_offset = offset
        checkpoints.write_log_start_offset(self.directory, offset)
        self._epochs.clear()
        self._set_recovery_point(offset)

    # ================================================================== leader epochs

    def leader_epoch_start(self, epoch: int, start_offset: int) -> None:
        """Record that leader `epoch` starts at `start_offset` (persisted)."""
        self._epochs.assign(epoch, start_offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch`, its end offset) for OffsetForLeaderEpoch; (-1, -1) if
        unknown."""
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    @property
    def leader_epochs(self) -> list[tuple[int, int]]:
        """The (epoch, start offset) entries of the leader epoch cache."""
        return self._epochs.entries

    # ================================================================== information

    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    def segments(self) -> list[SegmentInfo]:
        return [segment.info() for segment in self._segments]

    @property
    def active_base_offset(self) -> int:
        """Base offset of the segment appends go to (what its index files are named by)."""
        return self._segments[-1].base_offset if self._segments else self.log_end_offset

    @property
    def unflushed_records(self) -> int:
        """Records appended since the last fsync."""
        return self._unflushed_records

    # ================================================================== durability

    def flush(self) -> None:
        """fsync what was appended; persist the recovery point when it moves.

        Call it now and then (Kafka checkpoints every 60 s) even without a flush policy:
        after a crash, segments rolled since the last flush are scanned in full.
        """
        if self._closed:
            return
        self._sync_files()
        self._flushed()

    def _sync_files(self) -> None:
        active = self._segments[-1]
        for segment in self._unsynced:
            segment.sync(indexes=True)
            if segment is not active:
                segment.close_indexes()
        self._unsynced.clear()
        active.sync(indexes=False)
        if self._dir_dirty:
            fsync_dir(self.directory)
            self._dir_dirty = False

    def _flushed(self) -> None:
        active = self._segments[-1]
        if self._recovery_point != active.base_offset:
            self._set_recovery_point(active.base_offset)
        self._unflushed_records = 0
        self._last_flush_ms = self._clock()

    def rolled_unsynced(self) -> list[Segment]:
        """Rolled segments not yet fsynced: the broker syncs them soon after each roll,
        off the event loop (``sync_segments``), then calls ``mark_synced``."""
        active = self._segments[-1]
        return [s for s in self._unsynced if s is not active]

    def mark_synced(
        self, segments: list[Segment], failures: Sequence[tuple[Segment, OSError]] = ()
    ) -> None:
        """Record that ``segments`` (from ``rolled_unsynced``) are on disk: release their
        index files and move the recovery point past them. ``failures`` (from
        ``sync_segments``) of segments still in the log take it offline instead, as a
        failed fsync on an append does: what reached the disk is unknown."""
        if self._closed:
            return
        failed = [(s, e) for s, e in failures if s in self._segments and not s.closed]
        if failed:
            segment, error = failed[0]
            self._offline = True
            raise LogOffline(f"{segment.log_path}: fsync failed: {error}") from error
        for segment in segments:
            if segment in self._unsynced:
                self._unsynced.remove(segment)
                segment.close_indexes()
        if self._dir_dirty:
            fsync_dir(self.directory)
            self._dir_dirty = False
        active = self._segments[-1]
        pending = [s.base_offset for s in self._unsynced if s is not active]
        point = min(pending, default=active.base_offset)
        if self._recovery_point is None or point > self._recovery_point:
            self._set_recovery_point(point)

    def _set_recovery_point(self, offset: int) -> None:
        """Persist that every segment below `offset` is on disk, with its digest."""
        below = (s for s in self._segments if s.base_offset < offset)
        checkpoints.write_recovery_point(self.directory, offset, below)
        self._recovery_point = offset

    def close(self) -> None:
        """fsync everything, mark the log cleanly shut down, release the files. An offline
        log is only released: its files are recovered when it is opened again; one whose
        files have not changed since a clean open keeps the marker it has."""
        if self._closed:
            return
        if self._offline or self._clean_marker:  # offline: recovered on open; unchanged
            self._close_files()                 # since a clean open: the marker holds
            return
        active = self._segments[-1]
        active.seal()
        self.flush()
        active.sync(indexes=True)
        checkpoints.write_clean_shutdown(self.directory, self._segments)
        self._close_files()

    def discard(self) -> None:
        """Release the files of a log about to be deleted: nothing is flushed and no
        clean-shutdown marker is written (a deleted topic's data need not reach the
        disk first; its directory is renamed away before anything could reopen it)."""
        if not self._closed:
            self._close_files()

    def _close_files(self) -> None:
        self._closed = True
        for segment in self._segments:
            segment.close()
        pending, self._pending_deletes = self._pending_deletes, []
        for _, paths in pending:
            for path in paths:
                path.unlink(missing_ok=True)

    @staticmethod
    def delete(directory: Path) -> None:
        """Delete a partition's log directory (close its PartitionLog first): see
        :func:`kcli.broker.log.dirs.delete_partition_dir`."""
        delete_partition_dir(directory)


def _read_ranges(ranges: list[tuple[Segment, int, int]]) -> bytes:
    """The bytes of (segment, position, size) ranges; one range is not copied again."""
    parts = [segment.pread(position, size) for segment, position, size in ranges]
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


def sync_segments(segments: list[Segment]) -> list[tuple[Segment, OSError]]:
    """fsync rolled segments and their indexes; safe to run in a worker thread. Returns
    the failures, for `mark_synced`; a segment closed meanwhile (retention deleted it, or
    the log was closed) is skipped."""
    failures: list[tuple[Segment, OSError]] = []
    for segment in segments:
        try:
            segment.sync(indexes=True)
        except ValueError:
            continue
        except OSError as error:
            if not segment.closed:
                failures.append((segment, error))
    return failures
