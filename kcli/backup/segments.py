"""The backup pipeline: records of some partitions into durable segment files.

One consumer is assigned every partition at the offset where the run (or its resumed
part) starts; this thread encodes the records of each partition into Avro blocks
(:class:`~kcli.backup.records.BlockBuilder`); blocks are compressed on a small pool of
threads (zstd and zlib release the GIL), appended in order to the partition's open
segment by a writer thread (which also computes the sha256), and a committer thread
fsyncs and renames each finished segment, updates the partition's durable entry and
calls ``on_durable`` (which writes a checkpoint), so a slow fsync holds up neither the
reading nor the writing of the next segment. A segment is only ever renamed to its
final name once complete, and recorded only once renamed and fsynced.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.backup.events import Events
from kcli.backup.manifest import PartitionEntry, SegmentEntry, merge_gaps, segment_path
from kcli.backup.records import BlockBuilder, SegmentFile, compress_block
from kcli.backup.schemas import collect_ids
from kcli.client.cluster import TRANSIENT_ERRORS, Cluster, ErrorWatch
from kcli.errors import OperationFailed, from_kafka_error

BLOCK_BYTES = 4 << 20
"""Uncompressed size of an Avro block (the unit of compression). Large blocks mean few
hand-overs between the reading thread and the compressing and writing threads, each of
which waits for the GIL."""
SEGMENT_BYTES = 64 << 20
"""Default uncompressed size after which a segment is closed and a new one started."""
_QUEUE_BLOCKS = 12
_BATCH = 10_000
_POLL_TIMEOUT = 0.1
SWITCH_INTERVAL = 0.001
"""While copying, the reading thread holds the GIL almost all the time; a compressing or
writing thread that finished its C call waits for it up to the switch interval (5 ms by
default), which made the writers, not the reader, the bottleneck."""
GC_THRESHOLD = 50_000
"""Every batch of 10,000 Messages is 10,000 new objects the cycle collector tracks; with
its default threshold (700) it ran a collection every few hundred records, about 5% of
a backup's CPU. The copy makes almost no cycles."""
COMPRESSION_THREADS = max(2, min(4, os.cpu_count() or 2))
"""Blocks are compressed in parallel (zstd and zlib release the GIL) and written in
order by the writer thread; with one compressing thread, compression is what a backup
waits for."""


class _Writer(threading.Thread):
    """Runs file jobs in order on its own thread; the first failure stops it and is
    raised to the main thread on its next call. A backup has two: the writer appends
    compressed blocks to segment files; the committer fsyncs and renames finished
    segments and writes the checkpoint, so a slow fsync does not hold up the writing of
    the next segment."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(_QUEUE_BLOCKS)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self.error is None:
                try:
                    job()
                except BaseException as error:
                    self.error = error

    def check(self) -> None:
        """Raise the thread's failure, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            if isinstance(error, OSError):
                raise OperationFailed(f"cannot write the archive: {error}") from None
            raise error

    def put(self, job: Callable[[], None]) -> None:
        """Queue a job (waits while the queue is full)."""
        self.check()
        self._jobs.put(job)

    def close(self) -> None:
        """Run every queued job, stop, and raise the first failure."""
        self._jobs.put(None)
        self.join()
        self.check()


class _Slot:
    """The open segment file of a partition (touched only by the writer thread)."""

    __slots__ = ("file",)

    def __init__(self) -> None:
        self.file: SegmentFile | None = None


@dataclass
class _Part:
    """A partition being copied (main thread)."""

    topic: str
    partition: int
    entry: PartitionEntry
    """This run's durable progress (owned by the writer thread once copying starts)."""
    target: int
    builder: BlockBuilder
    slot: _Slot
    seg_start: int
    seg_raw: int = 0
    done: bool = False


class SegmentPipeline:
    """Copies partitions ``(topic, durable entry, target)`` into segments of ``root``.
    The entries are updated (on the committer thread) as segments become durable."""

    def __init__(self, cluster: Cluster, root: Path,
                 partitions: Sequence[tuple[str, PartitionEntry, int]], *, codec: str,
                 level: int | None, segment_bytes: int, run_number: int, archive_id: str,
                 consumer_config: dict[str, Any], on_durable: Callable[[], None],
                 events: Events, schema_ids: set[int] | None = None) -> None:
        self.cluster = cluster
        self.root = root
        self.partitions = list(partitions)
        self.codec = codec
        self.level = level
        self.segment_bytes = segment_bytes
        self.run_number = run_number
        self.archive_id = archive_id
        self.consumer_config = consumer_config
        self.on_durable = on_durable
        self.events = events
        self.schema_ids = schema_ids
        """Where the schema ids of framed keys and values go, when they are wanted."""
        self.watch = ErrorWatch(cluster.bootstrap)
        self._writer: _Writer | None = None
        self._committer: _Writer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._parts: dict[tuple[str, int], _Part] = {}

    def run(self) -> None:
        """Copy every partition up to its target; returns once all of it is durable."""
        parts: list[_Part] = []
        for topic, entry, target in self.partitions:
            if entry.next_offset >= target:
                continue
            builder = BlockBuilder(topic, entry.partition, entry.next_offset, target,
                                   list(entry.gaps))
            parts.append(_Part(topic, entry.partition, entry, target, builder, _Slot(),
                               entry.next_offset))
        if not parts:
            return
        self._parts = {(p.topic, p.partition): p for p in parts}
        writer = self._writer = _Writer("kcli-backup-writer")
        writer.start()
        committer = self._committer = _Writer("kcli-backup-committer")
        committer.start()
        self._pool = ThreadPoolExecutor(COMPRESSION_THREADS, "kcli-backup-compress")
        consumer = self._consumer(parts)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        thresholds = gc.get_threshold()
        gc.freeze()  # what exists now is not garbage: no collection walks it again
        gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
        try:
            self._read(consumer)
            writer.close()
            committer.close()
        except BaseException:
            self._abort_writer()
            raise
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            sys.setswitchinterval(interval)
            consumer.close()
            self._pool.shutdown(cancel_futures=True)

    def _consumer(self, parts: Sequence[_Part]) -> Any:
        from confluent_kafka import Consumer, TopicPartition

        from kcli.client.consumer import CONSUMER_DEFAULTS

        config: dict[str, Any] = dict(CONSUMER_DEFAULTS)
        config.update(self.consumer_config)
        config.update({
            "group.id": f"kcli-backup-{os.getpid()}", "enable.auto.commit": False,
            "enable.auto.offset.store": False, "enable.partition.eof": True,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
        })
        config.pop("allow.auto.create.topics", None)
        config["error_cb"] = self.watch
        from kcli.client.offsets import watermarks

        lows = watermarks(self.cluster, [(p.topic, p.partition) for p in parts]).low
        consumer = Consumer(config)
        consumer.assign([
            TopicPartition(p.topic, p.partition,
                           max(p.entry.next_offset, lows.get((p.topic, p.partition), 0)))
            for p in parts])
        return consumer

    def _read(self, consumer: Any) -> None:
        from confluent_kafka import TopicPartition

        parts = self._parts
        remaining = len(parts)
        writer = self._writer
        assert writer is not None
        block_bytes = min(BLOCK_BYTES, self.segment_bytes)
        segment_bytes = self.segment_bytes
        events = self.events
        check_topic = len({p.topic for p in parts.values()}) > 1
        schema_ids = self.schema_ids
        current: _Part | None = None
        while remaining:
            # What is queued, without waiting: consume(n, timeout) waits for n messages
            # until the timeout, which cost 100 ms at the start and at the end of each run
            messages = consumer.consume(_BATCH, 0)
            if not messages:
                messages = consumer.consume(1, _POLL_TIMEOUT)  # returns on the first
            if not messages:
                self.watch.check()
                writer.check()
                if self._committer is not None:
                    self._committer.check()
                continue
            i = 0
            n = len(messages)
            taken = 0
            while i < n:
                m = messages[i]
                error = m.error()
                if error is not None:
                    i += 1
                    part = parts.get((m.topic(), m.partition()))
                    if error.name() == "_PARTITION_EOF":
                        if part is not None and not part.done:
                            remaining -= self._at_end(part, m.offset(), consumer,
                                                      TopicPartition)
                        continue
                    if error.name() in TRANSIENT_ERRORS:
                        self.watch.check()
                        continue
                    raise from_kafka_error(error, f"read {m.topic()}[{m.partition()}]")
                if current is None or current.partition != m.partition() or (
                        current.topic != m.topic()):
                    current = parts.get((m.topic(), m.partition()))
                    if current is None:
                        i += 1
                        continue
                part = current
                if part.done:
                    i += 1
                    continue
                builder = part.builder
                try:
                    j = builder.add(messages, i, block_bytes, check_topic)
                except ValueError as problem:
                    raise OperationFailed(f"{part.topic}: {problem}") from None
                taken += j - i
                if schema_ids is not None:
                    for k in range(i, j):
                        collect_ids(schema_ids, messages[k].key(), messages[k].value())
                if j == i:  # a record at or past the snapshot target
                    if m.offset() < part.target:
                        raise AssertionError(f"{part.topic}[{part.partition}]: record "
                                             f"{m.offset()} not taken")
                    remaining -= self._finish(part, consumer, TopicPartition)
                    i += 1
                    continue
                i = j
                if builder.size >= block_bytes:
                    self._ship(part)
                    if part.seg_raw >= segment_bytes:
                        self._close_segment(part, builder.expected)
            if taken:
                events.advance(taken)

    def _ship(self, part: _Part) -> None:
        """Hand the builder's block to a compression thread, and its writing to the
        writer thread (opening the segment first)."""
        parts, count, size = part.builder.take()
        if not count:
            return
        assert self._pool is not None
        body = b"".join(parts)
        compressed = self._pool.submit(compress_block, self.codec, self.level, body, count)
        assert self._writer is not None
        slot = part.slot
        if part.seg_raw == 0:
            path = self.root / segment_path(part.topic, part.partition, part.seg_start)
            codec, level = self.codec, self.level
            meta = {"kcli.topic": part.topic, "kcli.partition": str(part.partition),
                    "kcli.start_offset": str(part.seg_start), "kcli.run": str(self.run_number),
                    "kcli.archive_id": self.archive_id}

            def open_file() -> None:
                slot.file = SegmentFile(path, codec, level, meta)

            self._writer.put(open_file)
        part.seg_raw += size

        raw = len(body)

        def write() -> None:
            assert slot.file is not None
            slot.file.append_block(compressed.result(), raw, count)

        self._writer.put(write)

    def _close_segment(self, part: _Part, next_offset: int) -> None:
        """Finish the open segment at ``next_offset``; the writer makes it durable,
        records it and writes the checkpoint."""
        self._ship(part)
        builder = part.builder
        assert self._writer is not None
        gaps = merge_gaps(builder.gaps)
        if builder.records:
            entry = SegmentEntry(
                path=segment_path(part.topic, part.partition, part.seg_start),
                run=self.run_number, start_offset=part.seg_start,
                next_offset=next_offset, first_offset=builder.first_offset,
                last_offset=builder.last_offset, record_count=builder.records,
                min_ts=builder.min_ts, max_ts=builder.max_ts, bytes=0, raw_bytes=0,
                codec=self.codec, sha256="")
        else:
            entry = None
        slot = part.slot
        log_append, biggest = builder.log_append, builder.max_record
        durable = part.entry

        def finalize() -> None:  # on the writer thread: hand the file to the committer
            segment = slot.file
            slot.file = None
            assert self._committer is not None
            self._committer.put(lambda: commit(segment))

        def commit(segment: SegmentFile | None) -> None:  # on the committer thread
            if entry is not None:
                assert segment is not None
                segment.commit()
                entry.bytes = segment.bytes
                entry.raw_bytes = segment.raw_bytes
                entry.sha256 = segment.sha256
                durable.segments.append(entry)
                durable.record_count += entry.record_count
                if durable.first_offset is None:
                    durable.first_offset = entry.first_offset
                durable.last_offset = entry.last_offset
            durable.next_offset = next_offset
            durable.gaps = gaps
            durable.log_append_time_records += log_append
            durable.max_record_bytes = max(durable.max_record_bytes, biggest)
            self.on_durable()

        self._writer.put(finalize)
        part.builder = BlockBuilder(part.topic, part.partition, builder.expected,
                                    part.target, builder.gaps)
        part.seg_start = next_offset
        part.seg_raw = 0

    def _at_end(self, part: _Part, end: int, consumer: Any, topic_partition: Any) -> int:
        """The partition's end was reached at ``end``: done if that is the target; if the
        log now ends before the target, it was truncated (or the topic recreated)."""
        if end >= part.target:
            return self._finish(part, consumer, topic_partition)
        if part.builder.expected >= end:
            self.events.warn(f"{part.topic}[{part.partition}]: the log now ends at {end}, "
                             f"before the snapshot's {part.target} (truncated or "
                             "recreated?); the rest is recorded as a gap")
            return self._finish(part, consumer, topic_partition)
        return 0

    def _finish(self, part: _Part, consumer: Any, topic_partition: Any) -> int:
        """The partition reached its snapshot target."""
        builder = part.builder
        if part.target > builder.expected:
            builder.gaps.append((builder.expected, part.target))
            builder.expected = part.target
        self._close_segment(part, part.target)
        part.done = True
        consumer.pause([topic_partition(part.topic, part.partition)])
        return 1

    def _abort_writer(self) -> None:
        for thread in (self._writer, self._committer):
            if thread is not None:
                with contextlib.suppress(BaseException):  # the original failure matters
                    thread.close()
        for part in self._parts.values():
            if part.slot.file is not None:
                part.slot.file.abort()

