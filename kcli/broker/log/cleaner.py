"""The log cleaner: Kafka's compaction (LogCleaner), one round at a time, as steps.

A compacted log has a clean part (deduplicated by an earlier round) and a dirty part
after it, from `first_dirty_offset` on. One round:

1. `cleanable_range` finds the closed segments that may be cleaned: never the active
   segment, nothing at or past the high watermark or the recovery point (only segments
   already on disk), and no dirty segment holding a record younger than
   min.compaction.lag.ms. `Cleanable.worth_cleaning` says whether a round is due: dirty
   ratio >= min.cleanable.dirty.ratio, a dirty record older than max.compaction.lag.ms,
   or a kept tombstone whose time is up (the broker cleans the filthiest log first).
2. Map: key -> offset of its latest record over the dirty part (bounded by the dedupe
   budget; when it fills, the round stops there and the rest stays dirty).
3. Rewrite, segment group by segment group (consecutive segments up to segment.bytes
   together), from the log start: a record survives if it is the latest of its key (or
   past the map), has a key, and is not a tombstone whose delete horizon has passed.
   Survivors keep their offsets; a batch keeps its base offset, last offset delta, leader
   epoch, producer id, epoch and base sequence, codec and timestamp type. A batch whose
   records all survive is copied byte for byte; one that lost records is rebuilt from the
   surviving records' own bytes. A batch left empty is dropped, unless it is the last
   batch of a producer the partition still tracks: it stays as an empty batch, as
   Kafka's cleaner keeps it, so idempotent producer state survives.
   Transactions (KIP-98's cleaner rules): the cleanable range ends at the last stable
   offset, so no open transaction is cleaned; the records of aborted transactions never
   enter the map and are all removed, whatever their keys. Markers (control batches) are
   kept as they are: a read_committed consumer needs an ABORT marker while any record of
   its transaction is left, and keeping them is always safe.
4. Tombstones (null values) follow KIP-534: the first round that keeps a tombstone sets
   the batch's delete horizon (attribute bit 6, baseTimestamp = now +
   delete.retention.ms, record timestamp deltas rebased); a later round after the horizon
   removes them. The earliest horizon kept is checkpointed, so the log is cleaned again
   when it passes even if nothing else is dirty.
5. Each group is written as `<base>.log.cleaned` (+ indexes) and fsynced, then swapped in
   by `PartitionLog.replace_segments` (crash-safe: `.cleaned` -> `.swap` -> plain names).

Where it runs: `clean_steps` is a generator. Everything that reads or changes the
PartitionLog's state (checking that the segments are still there and duplicating their
file descriptors, each swap, the checkpoint) is yielded as a `LoopJob`, to run on the
event loop thread; the rest (reading, decompressing, parsing, re-encoding, writing and
fsyncing the cleaned files) needs nothing from the loop. `kcli.broker.log.background`
runs the generator in a worker thread and hands it the loop jobs; `run_steps` runs it all
in one thread (tests, benchmarks). The worker reads the old segments through duplicated
file descriptors, so retention, truncation or close may drop them at any time: the swap
then finds them gone and the round is abandoned.

Why a thread and not small steps on the loop: measured with bench/cleaner_bench.py --loop,
a request that takes a few loop iterations waits behind a step at each of them, so 4 ms
steps cut an echo's round trips from ~31,000/s to ~2,700/s (p99 9.5 ms); the same clean in
a thread leaves ~5,600/s (p99 2.5 ms) and takes no longer, and the parts in C
(decompression, compression, CRC, file I/O) release the GIL and use the second core. The
loop jobs are short: a swap is a few renames and fsyncs.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, cast

import crc32c

from kcli.broker.log.batch import (
    ATTR_CONTROL,
    ATTR_TRANSACTIONAL,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    iter_batches,
)
from kcli.broker.log.errors import CorruptBatch
from kcli.broker.log.log import PartitionLog
from kcli.broker.log.records import (
    RecordSpan,
    compress,
    record_spans,
    records_section,
    write_varint,
)
from kcli.broker.log.segment import CLEANED_SUFFIX, INT32_MAX, Segment

__all__ = [
    "CleanAborted",
    "CleanStats",
    "Cleanable",
    "LoopJob",
    "ThreadJob",
    "clean_steps",
    "cleanable_range",
    "filter_batch",
    "run_steps",
]

log = logging.getLogger("kcli.broker.log")

ATTR_DELETE_HORIZON = 0x40
"""Batch attribute bit 6 (KIP-534): baseTimestamp holds the delete horizon."""
MAP_ENTRY_BYTES = 120
"""What one offset map entry costs in CPython beyond its key's bytes (measured)."""
MAP_SHARDS = 64
"""The offset map is this many dicts, picked by the key's hash: growing one dict rehashes
all of it at once, and at millions of keys that would hold the loop for tens of ms."""

OffsetMap = list[dict[bytes, int]]
"""key -> offset of its latest record, sharded by `hash(key) % MAP_SHARDS`."""


def new_offset_map() -> OffsetMap:
    return [{} for _ in range(MAP_SHARDS)]
STEP_SECONDS = 0.004
"""Work done between two yields (where the driver may throttle, or stop the round)."""
_READ_CHUNK = 256 * 1024
_WRITE_CHUNK = 1 << 20
_U32 = struct.Struct(">I")

T = TypeVar("T")


class ThreadJob(NamedTuple):
    """A blocking call (fsync) for the driver to run in a worker thread."""

    run: Callable[[], None]


class CleanAborted(Exception):
    """The log changed under the cleaner (retention, truncation, close): try later."""


@dataclass
class CleanStats:
    """What one round did."""

    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    batches_removed: int = 0
    segments_before: int = 0
    segments_after: int = 0
    map_entries: int = 0
    max_step_seconds: float = 0.0
    """The longest one step held its thread: for the broker's driver, the longest loop
    job (how long the cleaner held the event loop)."""
    first_dirty_after: int = -1
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class Cleanable:
    """A log's cleanable part now: segments [start, end) of its closed segments, of which
    [dirty, end) hold offsets at or after the first dirty offset."""

    segments: list[Segment] = field(repr=False)
    """The closed segments from the one holding the log start on."""
    dirty: int
    end: int
    first_dirty_offset: int
    clean_bytes: int
    dirty_bytes: int
    max_lag_passed: bool
    tombstones_due: bool

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0

    def worth_cleaning(self, min_ratio: float) -> bool:
        """Kafka's rule: dirty enough, a dirty record too old, or tombstones due."""
        if self.dirty_bytes and (self.dirty_ratio >= min_ratio or self.max_lag_passed):
            return True
        return self.tombstones_due and self.end > 0


def _largest_timestamp(segment: Segment) -> int:
    return segment.max_timestamp if segment.max_timestamp >= 0 else segment.last_modified_ms()


def cleanable_range(log: PartitionLog, now_ms: int, high_watermark: int) -> Cleanable:
    """What of `log` a round may clean now (see the module docstring for the rules)."""
    config = log.config
    closed = log.closed_segments()
    start = 0
    while start + 1 < len(closed) and closed[start + 1].base_offset <= log.log_start_offset:
        start += 1
    segments = closed[start:]
    bases = [s.base_offset for s in segments]
    active = log.segment_after(segments[-1]) if segments else None
    next_bases = [*bases[1:], active.base_offset if active is not None else log.log_end_offset]
    bound = min(high_watermark, log.recovery_point, log.log_end_offset)
    first_dirty = log.first_dirty_offset
    end = 0
    while end < len(segments) and next_bases[end] <= bound:
        end += 1
    dirty = 0
    while dirty < end and next_bases[dirty] <= first_dirty:
        dirty += 1
    if config.min_compaction_lag_ms > 0:
        horizon = now_ms - config.min_compaction_lag_ms
        for i in range(dirty, end):
            if _largest_timestamp(segments[i]) > horizon:
                end = i
                break
    max_lag_passed = False
    if dirty < end and config.max_compaction_lag_ms < (1 << 63) - 1:
        first = segments[dirty].rolling_timestamp()
        if first < 0:
            first = segments[dirty].last_modified_ms()
        max_lag_passed = now_ms - first > config.max_compaction_lag_ms
    deadline = log.tombstone_deadline
    return Cleanable(
        segments=segments,
        dirty=min(dirty, end),
        end=end,
        first_dirty_offset=first_dirty,
        clean_bytes=sum(s.size for s in segments[: min(dirty, end)]),
        dirty_bytes=sum(s.size for s in segments[dirty:end]),
        max_lag_passed=max_lag_passed,
        tombstones_due=0 <= deadline <= now_ms,
    )


# --------------------------------------------------------------------------- batches


class Filtered(NamedTuple):
    """What became of one batch."""

    data: bytes | None
    """The batch to write (the original bytes when nothing changed), None to drop it."""
    removed: int
    """Records removed."""
    horizon: int
    """Delete horizon of the tombstones it keeps, -1 if it keeps none."""


def _empty_batch(header: BatchHeader) -> bytes:
    """The batch's header alone: no records, no codec, its offsets and producer kept
    (Kafka's DefaultRecordBatch.writeEmptyHeader)."""
    attributes = header.attributes & ~0x07 & ~ATTR_DELETE_HORIZON
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out, 0, header.base_offset, MIN_BATCH_LENGTH, header.partition_leader_epoch, 2, 0,
        attributes, header.last_offset_delta, header.max_timestamp, header.max_timestamp,
        header.producer_id, header.producer_epoch, header.base_sequence, 0,
    )
    _U32.pack_into(out, 17, crc32c.crc32c(memoryview(out)[21:]))
    return bytes(out)


def _rebuild(
    header: BatchHeader,
    records: bytes,
    kept: list[RecordSpan],
    horizon: int | None,
) -> bytes:
    """A batch of the `kept` records with the original header fields; rebased on
    `horizon` (the delete horizon) when given."""
    body = bytearray()
    base_ts = header.base_timestamp
    if horizon is None:
        for span in kept:
            body += records[span.start : span.end]
    else:
        record = bytearray()
        for span in kept:
            record.clear()
            record.append(records[span.body])
            write_varint(record, base_ts + span.timestamp_delta - horizon)
            record += records[span.tail : span.end]
            write_varint(body, len(record))
            body += record
    codec = header.attributes & 0x07
    payload = compress(codec, bytes(body))
    attributes = header.attributes
    if horizon is not None:
        attributes |= ATTR_DELETE_HORIZON
    if header.timestamp_type:
        max_ts = header.max_timestamp
    else:
        max_ts = base_ts + max(span.timestamp_delta for span in kept)
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out, 0, header.base_offset, HEADER_SIZE - LOG_OVERHEAD + len(payload),
        header.partition_leader_epoch, 2, 0, attributes, header.last_offset_delta,
        base_ts if horizon is None else horizon, max_ts, header.producer_id,
        header.producer_epoch, header.base_sequence, len(kept),
    )
    out += payload
    _U32.pack_into(out, 17, crc32c.crc32c(memoryview(out)[21:]))
    return bytes(out)


class AbortedIndex:
    """Which transactional batches belong to aborted transactions."""

    def __init__(self, ranges: Mapping[int, Sequence[tuple[int, int]]]) -> None:
        self._ranges = {pid: sorted(spans) for pid, spans in ranges.items() if spans}

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def aborted(self, header: BatchHeader) -> bool:
        """Whether a (non-control, transactional) batch's transaction was aborted."""
        if not header.attributes & ATTR_TRANSACTIONAL or header.attributes & ATTR_CONTROL:
            return False
        spans = self._ranges.get(header.producer_id)
        if not spans:
            return False
        i = bisect_right(spans, (header.base_offset, INT64_MAX)) - 1
        return i >= 0 and spans[i][0] <= header.base_offset <= spans[i][1]


NO_ABORTS = AbortedIndex({})
INT64_MAX = (1 << 63) - 1


def filter_batch(
    buf: bytes,
    header: BatchHeader,
    *,
    offset_map: OffsetMap,
    map_end: int,
    now_ms: int,
    delete_retention_ms: int,
    keep_if_empty: bool,
    aborted: bool = False,
) -> Filtered:
    """Apply compaction to the batch `header` describes in `buf` (see the module
    docstring). `offset_map` holds the latest offset of each key seen below `map_end`;
    records at or past `map_end` are kept as they are. An `aborted` transaction's batch
    loses every record."""
    if header.attributes & ATTR_CONTROL:
        return Filtered(buf[header.position : header.position + header.size], 0, -1)
    if aborted:
        count = header.records_count
        return Filtered(_empty_batch(header) if keep_if_empty else None, count, -1)
    records = records_section(buf, header)
    spans = record_spans(records, header.records_count)
    base = header.base_offset
    horizon = (
        header.base_timestamp if header.attributes & ATTR_DELETE_HORIZON else None
    )
    kept: list[RecordSpan] = []
    tombstones = False
    for span in spans:
        offset = base + span.offset_delta
        if offset < map_end:
            if span.key is None:
                continue  # Kafka's cleaner drops keyless records
            latest = offset_map[hash(span.key) % MAP_SHARDS].get(span.key)
            if latest is not None and offset < latest:
                continue
            if not span.has_value and horizon is not None and now_ms >= horizon:
                continue
        if not span.has_value:
            tombstones = True
        kept.append(span)
    removed = len(spans) - len(kept)
    set_horizon = tombstones and horizon is None
    new_horizon = now_ms + delete_retention_ms if set_horizon else None
    kept_horizon = -1
    if tombstones:
        kept_horizon = new_horizon if new_horizon is not None else (horizon or 0)
    if not removed and not set_horizon:
        return Filtered(buf[header.position : header.position + header.size], 0, kept_horizon)
    if not kept:
        return Filtered(_empty_batch(header) if keep_if_empty else None, removed, -1)
    return Filtered(_rebuild(header, records, kept, new_horizon), removed, kept_horizon)


class _Source(NamedTuple):
    """A segment to read in the worker: a duplicate of its descriptor, its size then."""

    fd: int
    size: int
    name: str


def _read_batches(source: _Source, stats: CleanStats) -> Iterator[tuple[bytes, BatchHeader]]:
    """(buffer, header) of each batch of `source`, reading a chunk of batches at a time."""
    position = 0
    size = source.size
    while position < size:
        chunk = os.pread(source.fd, min(_READ_CHUNK, size - position), position)
        stats.bytes_read += len(chunk)
        used = 0
        for header in iter_batches(chunk):
            used = header.position + header.size
            yield chunk, header
        if used == 0:  # one batch larger than the chunk
            if len(chunk) < HEADER_SIZE:
                raise CorruptBatch(f"{source.name}: torn batch at {position}")
            length = int.from_bytes(chunk[8:12], "big") + LOG_OVERHEAD
            whole = os.pread(source.fd, length, position)
            stats.bytes_read += len(whole) - len(chunk)
            headers = list(iter_batches(whole))
            if not headers:
                raise CorruptBatch(f"{source.name}: torn batch at {position}")
            used = headers[0].size
            yield whole, headers[0]
        position += used


# --------------------------------------------------------------------------- a round


def _groups(segments: list[Segment], next_bases: list[int], max_bytes: int) -> list[list[Segment]]:
    """Consecutive segments whose sizes add up to at most `max_bytes` (and whose offsets
    fit one segment's int32 range), as Kafka's groupSegmentsBySize."""
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    size = 0
    for segment, next_base in zip(segments, next_bases, strict=True):
        if current and (
            size + segment.size > max_bytes or next_base - 1 - current[0].base_offset > INT32_MAX
        ):
            groups.append(current)
            current, size = [], 0
        current.append(segment)
        size += segment.size
    if current:
        groups.append(current)
    return groups


class LoopJob(NamedTuple):
    """A call to run on the event loop thread (it reads or changes the log's state); its
    result is sent back into the generator."""

    run: Callable[[], object]


Step = ThreadJob | LoopJob | None


def clean_steps(
    partition_log: PartitionLog,
    cleanable: Cleanable,
    *,
    now_ms: int,
    producer_offsets: Mapping[int, int],
    map_budget_bytes: int,
    aborted: Mapping[int, Sequence[tuple[int, int]]] | None = None,
    step_seconds: float = STEP_SECONDS,
    stats: CleanStats | None = None,
) -> Generator[Step, object, CleanStats]:
    """One cleaning round over `cleanable` (from `cleanable_range`), as steps.

    `producer_offsets` maps each producer id the partition tracks to the last offset of
    its last batch; `aborted` each producer id to the [first, last] offsets of its
    aborted transactions; `stats` (returned at the end) is updated as the round goes. Raises
    CleanAborted when the log changed under it (nothing is lost: the cleaned files are
    removed), CorruptBatch or OSError when it cannot go on.
    """
    started = time.perf_counter()
    stats = stats if stats is not None else CleanStats()
    aborted_index = AbortedIndex(aborted) if aborted else NO_ABORTS
    config = partition_log.config
    segments = cleanable.segments[: cleanable.end]
    sizes = [s.size for s in segments]
    if not segments:
        return stats
    sources: list[_Source] = []
    clock = time.perf_counter
    slice_start = clock()
    slice_bytes = 0

    def pause() -> bool:
        """Whether this slice of work is done: `step_seconds` spent, or a chunk read (so
        the driver's I/O throttle sees every read)."""
        nonlocal slice_start, slice_bytes
        now = clock()
        if now - slice_start < step_seconds and stats.bytes_read - slice_bytes < _READ_CHUNK:
            return False
        slice_start, slice_bytes = now, stats.bytes_read
        return True

    def prepare() -> tuple[list[_Source], int, int]:
        """On the loop: check the segments are all there, duplicate their descriptors;
        returns them, the segment count and the base offset after the last one."""
        if not partition_log.holds_closed_run(segments, sizes):
            raise CleanAborted(f"{partition_log.directory}: the log changed before cleaning")
        after = partition_log.segment_after(segments[-1]) if segments else None
        dups: list[_Source] = []
        try:
            for segment in segments:
                dups.append(_Source(os.dup(segment.fd), segment.size, str(segment.log_path)))
        except OSError:
            for source in dups:
                os.close(source.fd)
            raise
        return dups, partition_log.segment_count, (
            after.base_offset if after is not None else partition_log.log_end_offset)

    try:
        prepared = cast(tuple[list[_Source], int, int], (yield LoopJob(prepare)))
        sources, stats.segments_before, end_offset = prepared

        # ---- map the dirty part
        first_dirty = cleanable.first_dirty_offset
        offset_map = new_offset_map()
        cost = 0
        map_end = first_dirty
        mapped = cleanable.dirty  # segments [0, mapped) get rewritten
        full = False
        for i in range(cleanable.dirty, cleanable.end):
            for buf, header in _read_batches(sources[i], stats):
                if header.base_offset + header.last_offset_delta >= first_dirty and not (
                    header.attributes & ATTR_CONTROL
                ) and not aborted_index.aborted(header):
                    base = header.base_offset
                    records = records_section(buf, header)
                    for span in record_spans(records, header.records_count):
                        key = span.key
                        if key is None or base + span.offset_delta < first_dirty:
                            continue
                        shard = offset_map[hash(key) % MAP_SHARDS]
                        if key not in shard:
                            cost += len(key) + MAP_ENTRY_BYTES
                        shard[key] = base + span.offset_delta
                    stats.records_read += header.records_count
                map_end = max(map_end, header.base_offset + header.last_offset_delta + 1)
                if cost >= map_budget_bytes:
                    full = True
                    break
                if pause():
                    yield None
            mapped = i + 1
            if full:
                break
        stats.map_entries = sum(map(len, offset_map))
        if not full and cleanable.end > cleanable.dirty:
            map_end = max(map_end, end_offset)
        rewrite = mapped if mapped > cleanable.dirty else cleanable.dirty
        if not rewrite:
            return stats

        # ---- rewrite, group by group
        next_bases = [s.base_offset for s in segments[1:rewrite]]
        next_bases.append(segments[rewrite].base_offset if rewrite < len(segments) else end_offset)
        max_bytes = min(config.segment_bytes, INT32_MAX // 2)
        horizons: list[int] = []
        delete_retention = config.delete_retention_ms
        interval = config.index_interval_bytes
        position = 0
        for group in _groups(segments[:rewrite], next_bases, max_bytes):
            group_sources = sources[position : position + len(group)]
            group_sizes = sizes[position : position + len(group)]
            position += len(group)
            cleaned = Segment.create(  # own descriptors: the worker thread writes it
                partition_log.directory, group[0].base_offset, now_ms, CLEANED_SUFFIX,
                cache=None,
            )
            try:
                out = bytearray()
                written: list[tuple[int, int, int]] = []
                for source in group_sources:
                    for buf, header in _read_batches(source, stats):
                        last = header.base_offset + header.last_offset_delta
                        result = filter_batch(
                            buf, header, offset_map=offset_map, map_end=map_end,
                            now_ms=now_ms, delete_retention_ms=delete_retention,
                            keep_if_empty=header.producer_id >= 0
                            and producer_offsets.get(header.producer_id) == last,
                            aborted=aborted_index.aborted(header),
                        )
                        stats.records_removed += result.removed
                        if result.horizon >= 0:
                            horizons.append(result.horizon)
                        if result.data is None:
                            stats.batches_removed += 1
                        else:
                            out += result.data
                            max_ts = int.from_bytes(result.data[35:43], "big", signed=True)
                            written.append((len(result.data), last, max_ts))
                            if len(out) >= _WRITE_CHUNK:
                                cleaned.append_batches(out, written, interval)
                                out, written = bytearray(), []
                        if pause():
                            yield None
                cleaned.append_batches(out, written, interval)
                cleaned.seal()
                stats.bytes_written += cleaned.size
                yield ThreadJob(cleaned.sync_all)
            except BaseException:
                cleaned.delete()
                raise

            def swap(group: list[Segment] = group, group_sizes: list[int] = group_sizes,
                     cleaned: Segment = cleaned) -> None:
                """On the loop: the swap, if the group is still what was cleaned."""
                if not partition_log.holds_closed_run(group, group_sizes):
                    cleaned.delete()
                    raise CleanAborted(
                        f"{partition_log.directory}: the log changed while cleaning")
                if cleaned.size == 0 and partition_log.closed_segments()[0] is not group[0]:
                    cleaned.delete()  # nothing kept, and the log does not start there
                    partition_log.replace_segments(group, None)
                else:
                    partition_log.replace_segments(group, cleaned)

            yield LoopJob(swap)

        # ---- done
        first_dirty_after = map_end if mapped > cleanable.dirty else first_dirty
        deadline = min(horizons, default=-1)

        def finish() -> int:
            partition_log.set_cleaner_checkpoint(first_dirty_after, deadline)
            return partition_log.segment_count

        stats.segments_after = cast(int, (yield LoopJob(finish)))
        stats.first_dirty_after = first_dirty_after
        stats.elapsed_seconds = time.perf_counter() - started
        return stats
    finally:
        for source in sources:
            os.close(source.fd)


def run_steps(steps: Generator[Step, object, T], stats: CleanStats | None = None) -> T:
    """Drive `steps` to the end in this thread (tests, benchmarks): jobs run inline, their
    results or exceptions go back into the generator; the longest step goes to
    `stats.max_step_seconds`."""
    value: object = None
    error: BaseException | None = None
    while True:
        started = time.perf_counter()
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as done:
            return done.value
        finally:
            if stats is not None:
                elapsed = time.perf_counter() - started
                stats.max_step_seconds = max(stats.max_step_seconds, elapsed)
        value, error = None, None
        if step is not None:
            try:
                value = step.run()
            except Exception as exc:  # handed back to the generator, which re-raises it
                error = exc
