"""PartitionLog: one partition's log on disk, the API the broker calls.

Directory layout (Kafka's)::

    <base offset, 20 digits>.log        batches back to back, as on the wire
    <base offset>.index / .timeindex    sparse indexes
    leader-epoch-checkpoint             leader epoch cache
    log-start-offset                    the log start offset (raised by DeleteRecords)
    recovery-point-offset               segments below this base offset are fsynced
    .kcli-clean-shutdown                present only while the log is cleanly closed

Single-threaded: every call comes from the broker's event loop thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import crc32c

from kcli.broker.log._files import fsync_dir, read_int_file, read_small_file, write_atomically
from kcli.broker.log.batch import (
    ATTR_LOG_APPEND_TIME,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    stamp_batch,
    unpack_header,
)
from kcli.broker.log.epoch import LeaderEpochCache
from kcli.broker.log.errors import (
    BatchError,
    CorruptBatch,
    InvalidBatch,
    OffsetOutOfRange,
    UnsupportedMagic,
)
from kcli.broker.log.records import decode_records
from kcli.broker.log.segment import INT32_MAX, Segment, parse_segment_name, segment_name

__all__ = ["AppendInfo", "LogConfig", "PartitionLog", "SegmentInfo"]

log = logging.getLogger("kcli.broker.log")

LOG_START_OFFSET_FILE = "log-start-offset"
RECOVERY_POINT_FILE = "recovery-point-offset"
CLEAN_SHUTDOWN_FILE = ".kcli-clean-shutdown"


@dataclass(frozen=True)
class LogConfig:
    """Per-partition log settings (Kafka's topic config names in snake case)."""

    segment_bytes: int = 1073741824
    """Roll to a new segment before one would grow past this (segment.bytes)."""
    segment_ms: int = 604800000
    """Roll when a segment spans more than this (segment.ms), by its first batch's
    timestamp, or by its age when batches carry no timestamp."""
    index_interval_bytes: int = 4096
    """Bytes of log between two offset index entries (index.interval.bytes)."""
    flush_messages: int | None = None
    """fsync after this many appended records (1 = every append); None = never per append."""
    flush_ms: int | None = None
    """fsync on append if this long has passed since the last fsync; None = never."""
    # Retention and compaction settings will join here.


class AppendInfo(NamedTuple):
    """What an append assigned."""

    base_offset: int
    last_offset: int
    log_append_time: int
    """The LogAppendTime stamped on the batch, or -1 for CreateTime."""
    max_timestamp: int


class SegmentInfo(NamedTuple):
    base_offset: int
    size: int
    last_modified: int
    """File modification time, ms since the epoch."""
    max_timestamp: int
    """Largest batch maxTimestamp in the segment, -1 if none."""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


_MARKER_HEADER = "kcli-log-clean-shutdown 1"
_Digest = tuple[int, int, int, int, int]


def _manifest(segments: Iterable[Segment]) -> list[str]:
    """One line per segment: base offset, then its digest (sizes and index CRCs)."""
    return [" ".join(map(str, (s.base_offset, *s.digest()))) for s in segments]


def _parse_manifest(lines: list[str]) -> dict[int, _Digest]:
    manifest: dict[int, _Digest] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and all(f.isdigit() for f in fields):
            base, size, index_len, index_crc, time_len, time_crc = map(int, fields)
            manifest[base] = (size, index_len, index_crc, time_len, time_crc)
    return manifest


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _read_lines(path: Path) -> list[str] | None:
    data = read_small_file(path, 1 << 26)
    if data is None:
        return None
    try:
        return data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return []


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("ascii")


class PartitionLog:
    """Append-only storage of one partition's record batches. Create with `open`."""

    def __init__(self, directory: Path, config: LogConfig, clock: Callable[[], int]) -> None:
        self.directory = directory
        self.config = config
        self.log_start_offset = 0
        """First offset a consumer may read; persisted, survives restart."""
        self.log_end_offset = 0
        """Next offset to assign."""
        self._clock = clock
        self._max_segment_bytes = min(config.segment_bytes, INT32_MAX)
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._unsynced: list[Segment] = []
        self._epochs = LeaderEpochCache(directory / "leader-epoch-checkpoint")
        self._recovery_point: int | None = None
        self._dir_dirty = False
        self._unflushed_records = 0
        self._last_flush_ms = clock()
        self._closed = False

    # ================================================================== opening

    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, *, clock: Callable[[], int] | None = None
    ) -> PartitionLog:
        """Open the log in `directory`, creating it, or recovering it after an unclean stop.

        `clock` (ms since the epoch) is for tests; it drives segment_ms and flush_ms.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        partition_log = cls(directory, config, clock or _wall_clock_ms)
        try:
            partition_log._load()
        except BaseException:
            partition_log._close_files()
            raise
        return partition_log

    def _load(self) -> None:
        directory = self.directory
        marker = directory / CLEAN_SHUTDOWN_FILE
        marker_lines = _read_lines(marker)
        clean = marker_lines is not None and marker_lines[:1] == [_MARKER_HEADER]
        if marker_lines is not None and not clean:
            log.warning("%s: unreadable clean shutdown marker: recovering", directory)
        start_checkpoint = read_int_file(directory / LOG_START_OFFSET_FILE)
        recovery_lines = _read_lines(directory / RECOVERY_POINT_FILE) or []
        self._recovery_point = _parse_int(recovery_lines[0]) if recovery_lines else None
        vouching = marker_lines if clean and marker_lines is not None else recovery_lines
        manifest = _parse_manifest(vouching[1:])
        names = os.listdir(directory)
        bases: list[int] = []
        for name in names:
            base = parse_segment_name(name)
            if base is not None:
                bases.append(base)
            elif name.endswith(".tmp"):
                (directory / name).unlink(missing_ok=True)
        bases.sort()
        stems = {segment_name(base) for base in bases}
        for name in names:
            stem, _, suffix = name.partition(".")
            if suffix in ("index", "timeindex") and stem not in stems:
                (directory / name).unlink(missing_ok=True)
        self._epochs = LeaderEpochCache.load(directory)
        now = self._clock()
        for base in bases:
            self._segments.append(Segment.open(directory, base, now))
            self._bases.append(base)

        self.log_start_offset = max(start_checkpoint or 0, 0)  # provisional, for recovery
        if not self._segments:
            self._add_segment(self.log_start_offset)
            self.log_end_offset = self._bases[0]
        else:
            self._load_segments(clean, manifest)

        start = max(start_checkpoint if start_checkpoint is not None else 0, self._bases[0])
        if start > self.log_end_offset:
            log.warning(
                "%s: log ends at %d, before its start offset %d: starting empty at %d",
                directory,
                self.log_end_offset,
                start,
                start,
            )
            self._start_empty_at(start)
        self.log_start_offset = start
        self._epochs.truncate_from_end(self.log_end_offset)
        self._epochs.truncate_from_start(self.log_start_offset)
        if marker_lines is not None or marker.exists():
            marker.unlink()  # from here on, a crash must not look like a clean shutdown
            self._dir_dirty = True
        if self._unsynced or self._dir_dirty:
            self.flush()

    def _load_segments(self, clean: bool, manifest: dict[int, _Digest]) -> None:
        """Trust what the clean shutdown marker (or, after a crash, the recovery point file)
        vouches for, byte for byte; scan and rebuild everything else."""
        segments = self._segments
        if clean:
            first_recover = len(segments)
        elif self._recovery_point is None:
            first_recover = 0
        else:
            first_recover = max(bisect_right(self._bases, self._recovery_point) - 1, 0)
        interval = self.config.index_interval_bytes
        last = len(segments) - 1
        for i, segment in enumerate(segments):
            expected = manifest.get(segment.base_offset)
            recover = i >= first_recover
            if not recover:
                recover = expected is None or not segment.load_indexes(expected)
                if not recover and i == last:
                    next_offset = segment.read_next_offset()
                    time_entry = segment.time_index.last()
                    if next_offset is None or (
                        time_entry is not None
                        and time_entry[1] >= next_offset - segment.base_offset
                    ):
                        recover = True
                    else:
                        segment.next_offset = next_offset
                if recover:
                    log.info(
                        "%s: rebuilding the indexes of segment %d",
                        self.directory,
                        segment.base_offset,
                    )
            if not recover:
                continue
            cut = segment.recover(interval, self._recovered_batch)
            self._unsynced.append(segment)
            if cut is not None:
                later = segments[i + 1 :]
                dropped = cut.dropped_bytes + sum(s.size for s in later)
                for doomed in later:
                    doomed.delete()
                del segments[i + 1 :]
                del self._bases[i + 1 :]
                self._dir_dirty = True
                log.warning(
                    "%s: cut the log at offset %d (segment %d, position %d: %s), dropping %d bytes",
                    self.directory,
                    cut.offset,
                    segment.base_offset,
                    cut.position,
                    cut.reason,
                    dropped,
                )
                break
        self.log_end_offset = segments[-1].next_offset

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

    def _roll(self, base_offset: int) -> Segment:
        old = self._segments[-1]
        if old.size == 0:
            if old.base_offset == base_offset:
                return old
            self._drop_segment(len(self._segments) - 1)
        else:
            old.seal()
            if old not in self._unsynced:
                self._unsynced.append(old)
        return self._add_segment(base_offset)

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
        return waited > self.config.segment_ms

    def _recovered_batch(self, epoch: int, base_offset: int, last_offset: int) -> None:
        """Recovery saw a sound batch: make sure the epoch cache knows its epoch (the
        checkpoint may be older than the data), unless the batch is below the log start."""
        if last_offset >= self.log_start_offset and epoch > self._epochs.latest_epoch:
            self._epochs.assign(epoch, base_offset)

    def _start_empty_at(self, offset: int) -> None:
        while self._segments:
            self._drop_segment(len(self._segments) - 1)
        self._add_segment(offset)
        self.log_end_offset = offset

    def update_config(self, config: LogConfig) -> None:
        """Replace the settings; they apply from the next call on."""
        self.config = config
        self._max_segment_bytes = min(config.segment_bytes, INT32_MAX)

    # ================================================================== appending

    def append(
        self, batch: bytearray | memoryview, *, leader_epoch: int, log_append_time: int | None
    ) -> AppendInfo:
        """Append one client batch (already checked by validate_client_batch).

        Assigns offsets from log_end_offset and stamps them, the leader epoch and the
        LogAppendTime into `batch` in place; rolls first if needed; writes to the OS and
        fsyncs by the flush policy.
        """
        fields = HEADER.unpack_from(batch)
        size = fields[1] + LOG_OVERHEAD
        if size != len(batch):
            raise InvalidBatch(f"append expects exactly one batch ({size} of {len(batch)} bytes)")
        base = self.log_end_offset
        last = base + fields[6]
        max_ts = fields[8] if log_append_time is None else log_append_time
        segment = self._segments[-1]
        if self._should_roll(segment, size, last, max_ts):
            segment = self._roll(base)
        stamp_batch(batch, base, leader_epoch, log_append_time)
        segment.append(batch, last, max_ts, self.config.index_interval_bytes)
        self.log_end_offset = last + 1
        if leader_epoch > self._epochs.latest_epoch:
            self._epochs.assign(leader_epoch, base)
        self._unflushed_records += fields[12]
        self._maybe_flush()
        return AppendInfo(base, last, -1 if log_append_time is None else log_append_time, max_ts)

    def append_replicated(self, data: bytes | bytearray | memoryview) -> None:
        """Append batches that already carry offsets and epochs (a follower's fetch).

        Every whole batch is checked (magic, CRC, offsets following on from log_end_offset
        without a gap) before any is written; a partial batch at the end is ignored, as
        Kafka does. Raises CorruptBatch, UnsupportedMagic, InvalidBatch.
        """
        headers: list[BatchHeader] = []
        with memoryview(data) as view:
            n = len(view)
            position = 0
            expected = self.log_end_offset
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
                if header.last_offset_delta < 0 or header.base_offset != expected:
                    raise InvalidBatch(
                        f"batch offsets {header.base_offset}..{header.last_offset} do not "
                        f"continue from {expected}"
                    )
                headers.append(header)
                expected = header.base_offset + header.last_offset_delta + 1
                position += size
            interval = self.config.index_interval_bytes
            for header in headers:
                size = header.batch_length + LOG_OVERHEAD
                last = header.base_offset + header.last_offset_delta
                segment = self._segments[-1]
                if self._should_roll(segment, size, last, header.max_timestamp):
                    segment = self._roll(header.base_offset)
                start = header.position
                segment.append(view[start : start + size], last, header.max_timestamp, interval)
                self.log_end_offset = last + 1
                if header.partition_leader_epoch > self._epochs.latest_epoch:
                    self._epochs.assign(header.partition_leader_epoch, header.base_offset)
                self._unflushed_records += header.records_count
        if headers:
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        config = self.config
        if config.flush_messages is not None and self._unflushed_records >= config.flush_messages:
            self.flush()
        elif config.flush_ms is not None:
            now = self._clock()
            if now - self._last_flush_ms >= config.flush_ms or now < self._last_flush_ms:
                self.flush()

    def flush_if_due(self) -> None:
        """fsync when flush.ms has passed with records still unflushed (a periodic check,
        so an idle partition is flushed too, not only on its next append)."""
        config = self.config
        if (
            config.flush_ms is not None
            and self._unflushed_records
            and self._clock() - self._last_flush_ms >= config.flush_ms
        ):
            self.flush()

    # ================================================================== reading

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        """Whole batches from the one containing `offset` on, at most `max_bytes` in total
        but always the first whole batch (KIP-74); none whose base offset is >=
        `upper_bound` (the high watermark). b"" at log_end_offset; OffsetOutOfRange outside
        [log_start_offset, log_end_offset]."""
        end_offset = self.log_end_offset
        if offset < self.log_start_offset or offset > end_offset:
            raise OffsetOutOfRange(self.log_start_offset, end_offset, offset)
        if offset == end_offset:
            return b""
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
                return b""
            header = segments[i].locate(offset)
        if header.base_offset >= bound or i > bound_i:
            return b""
        position = header.position
        remaining = max(max_bytes, header.batch_length + LOG_OVERHEAD)
        parts: list[bytes] = []
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
                    parts.append(segment.pread(position, end - position))
                break
            if want > 0:
                parts.append(segment.pread(position, want))
                remaining -= want
            i += 1
            if i > bound_i or remaining < HEADER_SIZE:
                break
            position = 0
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

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
        for segment in self._segments[first:]:
            if segment.max_timestamp < timestamp:
                continue
            base = segment.base_offset
            before = segment.time_index.relative_before(timestamp)
            from_offset = max(base + before + 1 if before >= 0 else base, start)
            position = segment.offset_index.lookup(from_offset - base)
            for header in segment.scan(position):
                if header.base_offset + header.last_offset_delta < from_offset:
                    continue
                if header.max_timestamp < timestamp:
                    continue
                found = self._first_record_from(segment, header, timestamp, start)
                if found is not None:
                    return found
        return None

    def _first_record_from(
        self, segment: Segment, header: BatchHeader, timestamp: int, start: int
    ) -> tuple[int, int] | None:
        """First record of the batch with timestamp >= `timestamp` and offset >= `start`."""
        dense = header.records_count == header.last_offset_delta + 1
        if header.attributes & ATTR_LOG_APPEND_TIME and dense:
            return max(header.base_offset, start), header.max_timestamp
        try:
            records = decode_records(segment.read_batch(header), header._replace(position=0))
        except BatchError as exc:
            log.warning(
                "%s: cannot decode the batch at offset %d: %s",
                self.directory,
                header.base_offset,
                exc,
            )
            return max(header.base_offset, start), header.max_timestamp
        for record in records:
            if record.offset >= start and record.timestamp >= timestamp:
                return record.offset, record.timestamp
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record with the largest timestamp (ListOffsets
        -3), None when no record carries a timestamp."""
        best: Segment | None = None
        for segment in self._segments:
            if segment.offset_of_max_timestamp >= 0 and (
                best is None or segment.max_timestamp > best.max_timestamp
            ):
                best = segment
        if best is None:
            return None
        top = best.max_timestamp
        header = best.locate(best.offset_of_max_timestamp)
        if header is None:
            return top, best.offset_of_max_timestamp
        if header.attributes & ATTR_LOG_APPEND_TIME and (
            header.records_count == header.last_offset_delta + 1
        ):
            return top, header.base_offset
        try:
            records = decode_records(best.read_batch(header), header._replace(position=0))
        except BatchError as exc:
            log.warning(
                "%s: cannot decode the batch at offset %d: %s",
                self.directory,
                header.base_offset,
                exc,
            )
            records = []
        for record in records:
            if record.timestamp == top:
                return top, record.offset
        return top, header.base_offset + header.last_offset_delta

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
        below it; returns the new log start offset. OffsetOutOfRange past log_end_offset."""
        if offset > self.log_end_offset:
            raise OffsetOutOfRange(self.log_start_offset, self.log_end_offset, offset)
        if offset <= self.log_start_offset:
            return self.log_start_offset
        self.log_start_offset = offset
        write_atomically(self.directory / LOG_START_OFFSET_FILE, f"{offset}\n".encode("ascii"))
        while len(self._segments) > 1 and self._bases[1] <= offset:
            self._drop_segment(0)
        if offset == self.log_end_offset and self._segments[0].size:
            self._roll(offset)
            self._drop_segment(0)
        self._epochs.truncate_from_start(offset)
        return offset

    def truncate_to(self, offset: int) -> None:
        """Drop everything at and after `offset`, at batch boundaries: a batch straddling
        `offset` goes too, and log_end_offset becomes its base offset."""
        if offset >= self.log_end_offset:
            return
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return
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

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and the epoch cache; the log restarts empty at `offset`
        (log_start_offset = log_end_offset = `offset`), as a follower does when the leader's
        log starts past its own end."""
        if offset < 0:
            raise ValueError(f"invalid offset {offset}")
        self._start_empty_at(offset)
        self.log_start_offset = offset
        write_atomically(self.directory / LOG_START_OFFSET_FILE, f"{offset}\n".encode("ascii"))
        self._epochs.clear()
        self._set_recovery_point(offset)

    def _set_recovery_point(self, offset: int) -> None:
        """Persist that every segment below `offset` is on disk, with its digest."""
        lines = [str(offset), *_manifest(s for s in self._segments if s.base_offset < offset)]
        write_atomically(self.directory / RECOVERY_POINT_FILE, _text(lines))
        self._recovery_point = offset

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
        return [
            SegmentInfo(s.base_offset, s.size, s.last_modified_ms(), s.max_timestamp)
            for s in self._segments
        ]

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
        if self._recovery_point != active.base_offset:
            self._set_recovery_point(active.base_offset)
        self._unflushed_records = 0
        self._last_flush_ms = self._clock()

    def rolled_unsynced(self) -> list[Segment]:
        """Rolled segments not yet fsynced: the broker syncs them soon after each roll,
        off the event loop (``sync_segments``), then calls ``mark_synced``."""
        active = self._segments[-1]
        return [s for s in self._unsynced if s is not active]

    def mark_synced(self, segments: list[Segment]) -> None:
        """Record that ``segments`` (from ``rolled_unsynced``) are on disk: release their
        index files and move the recovery point past them."""
        if self._closed:
            return
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

    def close(self) -> None:
        """fsync everything, mark the log cleanly shut down, release the files."""
        if self._closed:
            return
        active = self._segments[-1]
        active.seal()
        self.flush()
        active.sync(indexes=True)
        marker = [_MARKER_HEADER, *_manifest(self._segments)]
        write_atomically(self.directory / CLEAN_SHUTDOWN_FILE, _text(marker))
        self._close_files()

    def _close_files(self) -> None:
        self._closed = True
        for segment in self._segments:
            segment.close()

    @staticmethod
    def delete(directory: Path) -> None:
        """Delete a partition's log directory (close its PartitionLog first).

        The directory is first renamed to `<name>.<uuid>-delete` so that a crash midway
        never leaves a half-deleted log under the partition's name.
        """
        directory = Path(directory)
        if not directory.exists():
            return
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}-delete")
        os.rename(directory, doomed)
        fsync_dir(directory.parent)
        shutil.rmtree(doomed, ignore_errors=True)


def sync_segments(segments: list[Segment]) -> None:
    """fsync rolled segments and their indexes; safe to run in a worker thread (a segment
    deleted meanwhile only makes its fsync fail, which is ignored)."""
    for segment in segments:
        try:
            segment.sync(indexes=True)
        except (OSError, ValueError):
            continue
