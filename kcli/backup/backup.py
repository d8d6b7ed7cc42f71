"""A backup run: a consistent cut of some topics into an archive, resumable, incremental.

A run is planned once: the topics, their layouts and configs, every group's committed
offsets on them, and per partition where the run starts (the log start, or where the
previous run stopped) and where it stops (the last stable offset seen at the start, or
the first offset at ``--until``). The plan and the cluster files are written before any
record, then ``checkpoint.json`` records each segment once it is durable. Records are
read by one consumer assigned to every partition, encoded into Avro blocks on this
thread, and compressed, hashed, written and fsynced on a writer thread (zstd, sha256
and file writes release the GIL, so the two overlap). A segment is written to a
``.tmp`` file and renamed once complete, so an interrupted run leaves at most a temp
file, which the resumed run deletes; it restarts each partition at its last durable
segment's next offset. ``manifest.json`` is written last and then the checkpoint is
removed: the archive is only ever what a committed manifest names.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.backup import capture
from kcli.backup.archive import Archive, GroupOffset, TopicLayout
from kcli.backup.events import Events
from kcli.backup.manifest import (
    CHECKPOINT,
    MANIFEST,
    Checkpoint,
    FileEntry,
    Manifest,
    PartitionEntry,
    RunEntry,
    SegmentEntry,
    TopicEntry,
    TopicPlan,
    load_json,
    merge_gaps,
    segment_path,
    write_json_atomic,
)
from kcli.backup.records import (
    GROUP_SCHEMA,
    BlockBuilder,
    SegmentFile,
    compress_block,
    fsync_dir,
    write_container,
)
from kcli.client.cluster import Cluster, ErrorWatch
from kcli.errors import BadInput, KcliError, NotFound, OperationFailed, from_kafka_error

BLOCK_BYTES = 4 << 20
"""Uncompressed size of an Avro block (the unit of compression). Large blocks mean few
hand-overs between the reading thread and the compressing and writing threads, each of
which waits for the GIL."""
SEGMENT_BYTES = 64 << 20
"""Default uncompressed size after which a segment is closed and a new one started."""
_QUEUE_BLOCKS = 12
SWITCH_INTERVAL = 0.001
"""While copying, the reading thread holds the GIL almost all the time; a compressing or
writing thread that finished its C call waits for it up to the switch interval (5 ms by
default), which made the writers, not the reader, the bottleneck."""
COMPRESSION_THREADS = max(2, min(4, os.cpu_count() or 2))
"""Blocks are compressed in parallel (zstd and zlib release the GIL) and written in
order by the writer thread; with one compressing thread, compression is what a backup
waits for."""
_TRANSIENT = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE",
                        "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION",
                        "_MSG_TIMED_OUT"})


@dataclass(frozen=True)
class BackupRequest:
    """What ``kcli backup`` was asked to do."""

    root: Path
    patterns: tuple[str, ...] = ()
    all_topics: bool = False
    codec: str = "zstandard"
    level: int | None = None
    until_ms: int | None = None
    incremental: bool = False
    segment_bytes: int = SEGMENT_BYTES

    def fingerprint(self) -> dict[str, Any]:
        """The parts a resumed run must agree with."""
        return {"patterns": list(self.patterns), "all": self.all_topics,
                "until": self.until_ms, "incremental": self.incremental}


@dataclass
class BackupResult:
    """What a run did."""

    manifest: Manifest
    run: int
    resumed: bool
    records: int
    bytes: int
    """Bytes written to the archive by this run (compressed)."""
    raw_bytes: int
    """Uncompressed Avro size of the records written by this run."""
    seconds: float
    topics: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------ the writer thread

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


# ------------------------------------------------------------------------ the run

class BackupRun:
    """One ``kcli backup``: plan (or resume), copy, commit."""

    def __init__(self, cluster: Cluster, request: BackupRequest, events: Events,
                 consumer_config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.request = request
        self.events = events
        self.consumer_config = consumer_config
        self.root = request.root
        self.previous: Archive | None = None
        self.checkpoint: Checkpoint | None = None
        self._writer: _Writer | None = None
        self._committer: _Writer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._parts: dict[tuple[str, int], _Part] = {}

    # -- entry point

    def run(self) -> BackupResult:
        """Do the whole run; returns what was written."""
        started = time.monotonic()
        resumed = self._load_state()
        if self.checkpoint is None:
            self.checkpoint = self._plan()
        checkpoint = self.checkpoint
        if resumed:
            done = sum(p.record_count for t in checkpoint.topics for p in t.partitions)
            self.events.info(f"resuming run {checkpoint.run} of {self.root} "
                             f"({done} records already written)")
        self._clean_leftovers()
        self._copy()
        manifest = self._commit()
        run_records = sum(p.record_count for t in checkpoint.topics for p in t.partitions)
        run_bytes = manifest.runs[-1].bytes
        raw = sum(s.raw_bytes for t in checkpoint.topics for p in t.partitions
                  for s in p.segments)
        return BackupResult(manifest, checkpoint.run, resumed, run_records, run_bytes, raw,
                            time.monotonic() - started, [t.name for t in checkpoint.topics])

    # -- state on disk

    def _load_state(self) -> bool:
        """Open what DIR holds; returns True when resuming an unfinished run."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise BadInput(f"{root} is not a directory")
        manifest_path = root / MANIFEST
        checkpoint_path = root / CHECKPOINT
        if manifest_path.exists():
            self.previous = Archive.open(root)
        if checkpoint_path.exists():
            checkpoint = Checkpoint.parse(load_json(checkpoint_path), str(checkpoint_path))
            if self.previous is not None and any(
                    r.id == checkpoint.run_id for r in self.previous.manifest.runs):
                checkpoint_path.unlink()  # that run was committed; the checkpoint is stale
                fsync_dir(root)
            else:
                if checkpoint.request != self.request.fingerprint():
                    raise BadInput(
                        f"{root} holds an unfinished backup run started with other "
                        f"arguments ({_describe_request(checkpoint.request)})",
                        hint="rerun it with the same arguments to finish it, or delete "
                             f"{checkpoint_path} to abandon it")
                if self.previous is not None and (
                        checkpoint.parent_sha256 != self.previous.manifest_sha256):
                    raise OperationFailed(f"{checkpoint_path} does not continue the "
                                          f"archive's manifest", hint="delete it to abandon "
                                          "the unfinished run")
                self.checkpoint = checkpoint
                return True
        if self.previous is not None and not self.request.incremental:
            raise BadInput(f"{root} already holds a backup",
                           hint="add --incremental to continue it, or choose an empty "
                                "directory")
        if self.previous is None and root.exists() and any(root.iterdir()):
            raise BadInput(f"{root} is not empty and holds no kcli archive",
                           hint="choose an empty or new directory")
        return False

    def _plan(self) -> Checkpoint:
        """Capture the cluster and write the run's plan (cluster files, checkpoint)."""
        request = self.request
        cluster = self.cluster
        previous = self.previous.manifest if self.previous else None
        names = self._topics(previous)
        run = (previous.run if previous else 0) + 1
        started = capture.now_ms()
        layouts = capture.layouts(cluster, names)
        tps = [(name, p) for name in names for p in range(layouts[name].partitions)]
        with ThreadPoolExecutor(2) as pool:  # two independent sets of round trips
            groups_future = pool.submit(capture.group_commits, cluster, names)
            cuts = capture.cuts(cluster, tps, request.until_ms)
            commits = groups_future.result()
        source_id = capture.cluster_id(cluster)
        if previous is not None and previous.cluster_id and source_id and (
                previous.cluster_id != source_id):
            raise BadInput(f"{self.root} is a backup of cluster {previous.cluster_id}, "
                           f"not of {source_id}", hint="use another directory")

        # the cluster files: layouts and groups of every archived topic, updated
        all_layouts: dict[str, TopicLayout] = {}
        old_commits: list[GroupOffset] = []
        if self.previous is not None:
            all_layouts.update(self.previous.layouts())
            old_commits = [g for g in self.previous.group_offsets() if g.topic not in layouts]
        all_layouts.update(layouts)
        group_rows = sorted(old_commits + commits, key=lambda g: (g.group, g.topic, g.partition))
        folder = "cluster" if run == 1 else f"cluster/run-{run}"
        self.root.mkdir(parents=True, exist_ok=True)
        topics_path = self.root / folder / "topics.json"
        text = write_json_atomic(topics_path, {
            "topics": [all_layouts[n].to_dict() for n in sorted(all_layouts)]})
        import hashlib

        topics_file = FileEntry(f"{folder}/topics.json", len(text),
                                hashlib.sha256(text).hexdigest())
        groups_path = self.root / folder / "groups.avro"
        written = write_container(groups_path, [g.to_record() for g in group_rows],
                                  codec="null", schema=GROUP_SCHEMA,
                                  metadata={"kcli.content": "group-offsets"})
        groups_file = FileEntry(f"{folder}/groups.avro", written.bytes, written.sha256)

        plans = []
        for name in names:
            old = previous.topic(name) if previous else None
            old_parts = {p.partition: p for p in old.partitions} if old else {}
            entries = []
            targets = {}
            for p in range(layouts[name].partitions):
                cut = cuts[(name, p)]
                start = old_parts[p].next_offset if p in old_parts else cut.low
                target = max(cut.target, start)
                entries.append(PartitionEntry(
                    partition=p, start_offset=start, next_offset=start,
                    log_start_offset=cut.low, high_watermark=cut.high,
                    last_stable_offset=cut.stable, snapshot_target=target))
                targets[p] = target
                if p in old_parts and cut.low > start:
                    self.events.warn(f"{name}[{p}]: offsets {start}..{cut.low - 1} were "
                                     "deleted by retention since the last run; recorded "
                                     "as a gap")
            plans.append(TopicPlan(name, entries, targets))
        checkpoint = Checkpoint(
            run=run, run_id=uuid.uuid4().hex,
            archive_id=previous.archive_id if previous else uuid.uuid4().hex,
            started_at=started, request=request.fingerprint(), cluster_id=source_id,
            bootstrap=cluster.bootstrap,
            parent_sha256=self.previous.manifest_sha256 if self.previous else None,
            topics_file=topics_file, groups_file=groups_file,
            group_count=len({g.group for g in group_rows}), topics=plans)
        self._save_checkpoint(checkpoint)
        return checkpoint

    def _topics(self, previous: Manifest | None) -> list[str]:
        from kcli.client.topics import list_topics, resolve_patterns

        request = self.request
        if request.all_topics:
            names = [t.name for t in list_topics(self.cluster, with_size=False)]
            if not names:
                raise NotFound("the cluster has no topics to back up")
            return names
        if request.patterns:
            return resolve_patterns(self.cluster, list(request.patterns))
        if previous is not None:
            existing = set(self.cluster.metadata().topics)
            names = []
            for topic in previous.topics:
                if topic.name in existing:
                    names.append(topic.name)
                else:
                    self.events.warn(f"topic {topic.name} no longer exists; the archive "
                                     "keeps what it has of it")
            if names:
                return names
        raise BadInput("name the topics to back up (names or globs), or give --all")

    def _save_checkpoint(self, checkpoint: Checkpoint) -> None:
        write_json_atomic(self.root / CHECKPOINT, checkpoint.to_dict())

    def _clean_leftovers(self) -> None:
        """Delete temp files of an interrupted run, and segments it renamed but never
        recorded (they are written again)."""
        assert self.checkpoint is not None
        keep = set()
        if self.previous is not None:
            keep = {name for name, _, _ in self.previous.manifest.files()}
        for topic in self.checkpoint.topics:
            for part in topic.partitions:
                keep.update(s.path for s in part.segments)
        for path in self.root.rglob("*.tmp"):
            path.unlink()
        base = self.root / "topics"
        for plan in self.checkpoint.topics:
            folder = base / plan.name
            if not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                if path.is_file() and str(path.relative_to(self.root)) not in keep:
                    path.unlink()

    # -- copying

    def _copy(self) -> None:
        assert self.checkpoint is not None
        checkpoint = self.checkpoint
        request = self.request
        parts: list[_Part] = []
        for plan in checkpoint.topics:
            for entry in plan.partitions:
                target = plan.targets[entry.partition]
                if entry.next_offset >= target:
                    continue
                builder = BlockBuilder(plan.name, entry.partition, entry.next_offset,
                                       target, list(entry.gaps))
                parts.append(_Part(plan.name, entry.partition, entry, target, builder,
                                   _Slot(), entry.next_offset))
        total = sum(p.target - p.entry.next_offset for p in parts)
        self.events.start(f"backing up to {self.root}", total)
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
        try:
            self._read(consumer, request)
            writer.close()
            committer.close()
        except BaseException:
            self._abort_writer()
            raise
        finally:
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
        self.watch = ErrorWatch(self.cluster.bootstrap)
        config["error_cb"] = self.watch
        from kcli.client.offsets import watermarks

        lows = watermarks(self.cluster, [(p.topic, p.partition) for p in parts]).low
        consumer = Consumer(config)
        consumer.assign([
            TopicPartition(p.topic, p.partition,
                           max(p.entry.next_offset, lows.get((p.topic, p.partition), 0)))
            for p in parts])
        return consumer

    def _read(self, consumer: Any, request: BackupRequest) -> None:
        from confluent_kafka import TopicPartition

        parts = self._parts
        remaining = len(parts)
        writer = self._writer
        assert writer is not None
        block_bytes = min(BLOCK_BYTES, request.segment_bytes)
        segment_bytes = request.segment_bytes
        events = self.events
        check_topic = len({p.topic for p in parts.values()}) > 1
        current: _Part | None = None
        while remaining:
            messages = consumer.consume(10_000, 0.1)
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
                    if error.name() in _TRANSIENT:
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
        compressed = self._pool.submit(compress_block, self.request.codec, self.request.level,
                                       body, count)
        assert self._writer is not None
        slot = part.slot
        if part.seg_raw == 0:
            path = self.root / segment_path(part.topic, part.partition, part.seg_start)
            codec, level = self.request.codec, self.request.level
            assert self.checkpoint is not None
            meta = {"kcli.topic": part.topic, "kcli.partition": str(part.partition),
                    "kcli.start_offset": str(part.seg_start),
                    "kcli.run": str(self.checkpoint.run),
                    "kcli.archive_id": self.checkpoint.archive_id}

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
        assert self.checkpoint is not None
        gaps = merge_gaps(builder.gaps)
        if builder.records:
            entry = SegmentEntry(
                path=segment_path(part.topic, part.partition, part.seg_start),
                run=self.checkpoint.run, start_offset=part.seg_start,
                next_offset=next_offset, first_offset=builder.first_offset,
                last_offset=builder.last_offset, record_count=builder.records,
                min_ts=builder.min_ts, max_ts=builder.max_ts, bytes=0, raw_bytes=0,
                codec=self.request.codec, sha256="")
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
            assert self.checkpoint is not None
            self._save_checkpoint(self.checkpoint)

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

    # -- commit

    def _commit(self) -> Manifest:
        assert self.checkpoint is not None
        checkpoint = self.checkpoint
        previous = self.previous.manifest if self.previous else None
        topics: dict[str, TopicEntry] = {}
        order: list[str] = []
        if previous is not None:
            for topic in previous.topics:
                topics[topic.name] = topic
                order.append(topic.name)
        for plan in checkpoint.topics:
            old = topics.get(plan.name)
            old_parts = {p.partition: p for p in old.partitions} if old else {}
            merged = []
            for entry in plan.partitions:
                prior = old_parts.get(entry.partition)
                merged.append(prior.extended(entry) if prior else entry)
            if old is None:
                order.append(plan.name)
            topics[plan.name] = TopicEntry(plan.name, merged)
        run_bytes = sum(s.bytes for t in checkpoint.topics for p in t.partitions
                        for s in p.segments)
        run_bytes += checkpoint.topics_file.bytes + checkpoint.groups_file.bytes
        finished = capture.now_ms()
        run = RunEntry(
            run=checkpoint.run, id=checkpoint.run_id, started_at=checkpoint.started_at,
            finished_at=finished, codec=self.request.codec,
            topics=[t.name for t in checkpoint.topics], until=self.request.until_ms,
            records=sum(p.record_count for t in checkpoint.topics for p in t.partitions),
            bytes=run_bytes, parent_sha256=checkpoint.parent_sha256,
            cluster_files={"topics": checkpoint.topics_file.path,
                           "groups": checkpoint.groups_file.path})
        manifest = Manifest(
            archive_id=checkpoint.archive_id,
            cluster_id=checkpoint.cluster_id or (previous.cluster_id if previous else None),
            bootstrap=checkpoint.bootstrap,
            created_at=previous.created_at if previous else checkpoint.started_at,
            updated_at=finished, topics_file=checkpoint.topics_file,
            groups_file=checkpoint.groups_file, group_count=checkpoint.group_count,
            topics=[topics[name] for name in order],
            runs=(previous.runs if previous else []) + [run])
        for name, size, _sha in manifest.files():  # never name a missing or short file
            try:
                actual = (self.root / name).stat().st_size
            except FileNotFoundError:
                actual = -1
            if actual != size:
                raise OperationFailed(f"{self.root / name} changed while the backup ran")
        write_json_atomic(self.root / MANIFEST, manifest.to_dict())
        (self.root / CHECKPOINT).unlink()
        fsync_dir(self.root)
        return manifest


def _describe_request(fingerprint: dict[str, Any]) -> str:
    what = "--all" if fingerprint.get("all") else " ".join(fingerprint.get("patterns") or [])
    extra = []
    if fingerprint.get("incremental"):
        extra.append("--incremental")
    if fingerprint.get("until") is not None:
        extra.append(f"--until {fingerprint['until']}")
    return " ".join([what or "(the archive's topics)", *extra])


def run_backup(cluster: Cluster, request: BackupRequest, events: Events,
               consumer_config: dict[str, Any]) -> BackupResult:
    """Back up (or resume, or continue incrementally) as ``request`` says."""
    try:
        return BackupRun(cluster, request, events, consumer_config).run()
    except KcliError:
        raise
    except OSError as error:
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        raise OperationFailed(f"cannot write the archive{where}: "
                              f"{error.strerror or error}") from None
