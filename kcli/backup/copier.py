r"""Writing records to a target cluster exactly once, with an exact offset map.

Shared by restore (records from an archive) and migrate (records from a live cluster),
which hand it :class:`~kcli.backup.jobs.Job`\ s (one source topic into one target
topic, with its progress kept as a checkpoint in the target cluster).

Exactly once without transactions: records go out through an idempotent producer
(acks=all), so what reaches a target partition is always a prefix, in order, of what
was sent to it. A checkpoint is written only after a flush (every record before it is
acknowledged); the job's first checkpoint is written before any record. After a crash
the target may hold records past the checkpoint: on resume they are read back (the
"tail") and each is compared with the source record the copy would send next; a match
is taken as already copied (its offset goes into the map), a difference stops the job
(someone else wrote to the topic). So a rerun never duplicates and never skips.

The map comes from delivery reports: librdkafka reports an idempotent producer's
records in order per partition, so a FIFO of source offsets per target partition pairs
each report with its source record.

With a ``transactional_id`` (``migrate --exactly-once``) the copy runs in transactions
instead: the records sent since the last checkpoint and the checkpoint itself are one
transaction, committed together, so a crash at any point leaves the target's committed
records exactly those the checkpoint accounts for; what was sent after it is aborted
(when the next run starts with the same id, which also fences a copy still running) and
read_committed consumers never see it. A resumed run still reads back the committed
tail and matches it, in case something else wrote to the topic.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kcli.backup.checkpoints import CheckpointStore, Key
from kcli.backup.events import Events
from kcli.backup.jobs import Job, TargetState
from kcli.backup.offsetmap import OffsetMap
from kcli.backup.partitioner import partition_for
from kcli.backup.records import TIMESTAMP_TYPES
from kcli.client.cluster import Cluster, ErrorWatch
from kcli.client.producer import PRODUCER_DEFAULTS
from kcli.errors import KcliError, OperationFailed, Unreachable, from_kafka_error

_TS_TYPES = {name: code for code, name in enumerate(TIMESTAMP_TYPES)}


@dataclass
class _TailRecord:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    ts_type: int
    timestamp: int


def topic_id(cluster: Cluster, name: str) -> str | None:
    """The topic's id (None if the cluster does not tell)."""
    try:
        from confluent_kafka import TopicCollection

        futures = cluster.admin.describe_topics(TopicCollection([name]),
                                                request_timeout=cluster.timeout)
        description = cluster.wait(futures[name], f"describe topic {name}")
    except (KcliError, ImportError, AttributeError, KeyError):
        return None
    value = getattr(description, "topic_id", None)
    return str(value) if value is not None else None


class Copier:
    """Sends source records to their target partitions; keeps the maps and checkpoints."""

    def __init__(self, target: Cluster, client_config: Mapping[str, Any],
                 store: CheckpointStore, events: Events, *, max_record_bytes: int = 0,
                 checkpoint_records: int = 200_000, checkpoint_bytes: int = 64 << 20,
                 checkpoint_seconds: float = 10.0, transactional_id: str | None = None
                 ) -> None:
        self.target = target
        self.client_config = {k: v for k, v in client_config.items()
                              if k != "allow.auto.create.topics"}
        self.store = store
        self.events = events
        self.jobs: list[Job] = []
        self._states: dict[tuple[str, int], TargetState] = {}
        self._tails: dict[tuple[str, int], deque[_TailRecord]] = {}
        self._errors: list[tuple[Any, Any]] = []
        self._failed = 0
        self._single: list[TargetState] | None = None
        self._producer: Any = None
        self.watch = ErrorWatch(target.bootstrap)
        self.max_record_bytes = max_record_bytes
        self.checkpoint_records = checkpoint_records
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_seconds = checkpoint_seconds
        self._since_records = 0
        self._since_bytes = 0
        self._last_checkpoint = time.monotonic()
        self.sent = 0
        self.matched = 0
        self.rewrite: Callable[[bytes | None], bytes | None] | None = None
        """Applied to every key and value before it is sent (schema id translation)."""
        self.transactional_id = transactional_id
        # started now: it needs time to get its id
        store.share(self.producer(), self.watch, transactional=transactional_id is not None)

    # -- jobs

    def load(self, jobs: Sequence[Job]) -> None:
        """Read the jobs' checkpoints from the target (jobs without one stay new)."""
        self.jobs = list(jobs)
        if not jobs:
            return
        records = self.store.load(lambda key: any(job.matches(key) for job in jobs))
        for job in jobs:
            value = None
            chunks: dict[tuple[int, int], Any] = {}
            for key, data in records.values():
                if not job.matches(key):
                    continue
                if "chunk" in key:
                    chunks[(int(key["partition"]), int(key["chunk"]))] = data.get("runs", [])
                elif key == job.key:
                    value = data
            if value is not None:
                job.restore_state(value, chunks)

    def start(self, jobs: Sequence[Job]) -> None:
        """Check every job against the target topic as it is now, write the first
        checkpoint of new jobs, and read back the tails of resumed ones."""
        from kcli.client.offsets import watermarks

        tps = [(job.target_topic, p) for job in jobs for p in range(job.target_partitions)]
        committed_only = self.transactional_id is not None
        # in transactions, the committed end: aborted records and markers lie above it
        marks = watermarks(self.target, tps, stable=committed_only)
        new_state: list[tuple[Key, Any]] = []
        tails: dict[tuple[str, int], tuple[int, int]] = {}
        for job in jobs:
            current_id = topic_id(self.target, job.target_topic)
            if job.resumed and job.topic_id and current_id and job.topic_id != current_id:
                self.events.warn(f"{job.target_topic} was recreated since the last "
                                 f"{job.kind}; starting over")
                job.reset()
            job.topic_id = current_id
            for p in range(job.target_partitions):
                low = marks.low.get((job.target_topic, p), 0)
                high = marks.high.get((job.target_topic, p), 0)
                end = marks.stable.get((job.target_topic, p), high) if committed_only else high
                state = job.targets.get(p)
                if state is None:
                    if high > low and not job.resumed:
                        raise OperationFailed(
                            f"{job.target_topic}[{p}] already holds {high - low} records and "
                            f"there is no checkpoint of this {job.kind}: writing would mix "
                            "them with the copy",
                            hint="copy into a new or empty topic (restore --topic OLD=NEW, "
                                 "migrate --rename OLD=NEW)")
                    if high > low:
                        raise OperationFailed(
                            f"{job.target_topic} has gained partition {p} with records "
                            f"since the last {job.kind}")
                    state = TargetState(p, high, high)
                    if not job.repartition:
                        source = job.sources.get(p)
                        start = source.start if source else high
                        state.omap = OffsetMap(start, start, high, high)
                    job.targets[p] = state
                elif end < state.next:
                    raise OperationFailed(
                        f"{job.target_topic}[{p}] ends at offset {end}, before the "
                        f"checkpoint of the last {job.kind} ({state.next}): records were "
                        "deleted", hint="delete the target topic to copy it again from the "
                                        "start")
                elif end > state.next:
                    tails[(job.target_topic, p)] = (state.next, end)
                self._states[(job.target_topic, p)] = state
            new_state.append((job.key, job.state()))
        self.store.write(new_state)
        if tails:
            self._read_tails(tails)
        if len(jobs) == 1:
            self.activate(jobs[0])

    def _read_tails(self, tails: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Target records written after the last checkpoint, to match against."""
        from confluent_kafka import Consumer, TopicPartition

        total = sum(high - start for start, high in tails.values())
        self.events.info(f"checking {total} records written after the last checkpoint")
        watch = ErrorWatch(self.target.bootstrap)
        committed_only = self.transactional_id is not None
        consumer = Consumer({**self.client_config, "group.id": "kcli-copy-check",
                             "enable.auto.commit": False, "enable.partition.eof": committed_only,
                             "auto.offset.reset": "error", "error_cb": watch,
                             "isolation.level": "read_committed" if committed_only
                             else "read_uncommitted"})
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _h) in tails.items()])
        wanting = dict(tails)
        deadline = time.monotonic() + self.target.timeout
        try:
            while wanting:
                watch.check()
                if time.monotonic() > deadline:
                    raise Unreachable("reading back the records after the checkpoint took "
                                      f"longer than {self.target.timeout:g}s")
                m: Any
                want = sum(high - start for start, high in wanting.values())
                for m in consumer.consume(max(1, min(10_000, want)), 0.2):
                    error = m.error()
                    if error is not None:
                        if error.name() == "_PARTITION_EOF":
                            # committed records end before the markers that end the range
                            wanting.pop((m.topic(), m.partition()), None)
                            continue
                        if error.name() == "_TRANSPORT":
                            continue
                        raise from_kafka_error(error, "read back the target")
                    tp = (m.topic(), m.partition())
                    if tp not in wanting or m.offset() >= wanting[tp][1]:
                        continue
                    deadline = time.monotonic() + self.target.timeout
                    ts_type, ts = m.timestamp()
                    self._tails.setdefault(tp, deque()).append(_TailRecord(
                        m.offset(), m.key(), m.value(), list(m.headers() or ()), ts_type, ts))
                    if m.offset() >= wanting[tp][1] - 1:
                        del wanting[tp]
        finally:
            consumer.close()

    # -- sending

    def producer(self) -> Any:
        """The idempotent producer (created on first use)."""
        if self._producer is None:
            from confluent_kafka import Producer

            config: dict[str, Any] = dict(PRODUCER_DEFAULTS)
            config.update(self.client_config)
            config.update({"enable.idempotence": True, "acks": "all",
                           "delivery.report.only.error": False,
                           "error_cb": self.watch, "on_delivery": self._delivered})
            if self.max_record_bytes > 900_000:
                size = self.max_record_bytes + 65_536
                config["message.max.bytes"] = max(size, int(config.get("message.max.bytes",
                                                                       0) or 0))
            if self.transactional_id is not None:
                config["transactional.id"] = self.transactional_id
            producer = Producer(config)
            if self.transactional_id is not None:
                try:  # fences an earlier run with this id and aborts what it left open
                    producer.init_transactions(self.target.timeout)
                    producer.begin_transaction()
                except Exception as error:  # KafkaException
                    raise from_kafka_error(error, "start the copy's transactions") from None
            self._producer = producer
        return self._producer

    def activate(self, job: Job | None) -> None:
        """Deliveries will only be of ``job``'s records (until the next call): look its
        partitions up by number alone. Flushes first. None: any job's."""
        self.flush()
        self._single = None
        if job is not None:
            self._single = [job.targets[p] for p in range(job.target_partitions)]

    def _delivered(self, error: Any, message: Any) -> None:
        # called once per record: keep it lean
        single = self._single
        if single is not None:
            state = single[message.partition()]
        else:
            state = self._states[(message.topic(), message.partition())]
        source = state.pending.popleft()
        if error is not None:
            self._failed += 1
            if len(self._errors) < 3:
                self._errors.append((error, message))
            return
        offset = message.offset()
        length = state.run_len
        if length and source == state.run_src + length and offset == state.run_tgt + length:
            state.run_len = length + 1
        else:
            state.close_run()
            state.run_src = source
            state.run_tgt = offset
            state.run_len = 1
        state.next = offset + 1
        state.records += 1

    def route(self, job: Job, source_partition: int, key: bytes | None) -> int:
        """Target partition of a record: the same, or by key hash when repartitioning
        (a null key keeps source partition modulo the target count)."""
        if not job.repartition:
            return source_partition
        if key is None:
            return source_partition % job.target_partitions
        return partition_for(key, job.target_partitions)

    def send(self, job: Job, source_partition: int, offset: int, key: bytes | None,
             value: bytes | None, headers: list[tuple[str, bytes | None]] | None,
             ts_type: int, timestamp: int) -> None:
        """Copy one record (or match it against the tail already in the target)."""
        if self.rewrite is not None:
            key, value = self.rewrite(key), self.rewrite(value)
        partition = self.route(job, source_partition, key) if job.repartition else (
            source_partition)
        if self._tails and self._match(job, partition, source_partition, offset, key, value,
                                       headers, timestamp):
            job.sources[source_partition].next = offset + 1
            return
        state = self._states[(job.target_topic, partition)]
        state.pending.append(offset)
        produce = self._producer.produce if self._producer is not None else (
            self.producer().produce)
        while True:
            try:
                produce(job.target_topic, value, key, partition,
                        timestamp=timestamp if timestamp > 0 else 0, headers=headers)
                break
            except BufferError:
                self._serve(0.05)
            except Exception as error:
                state.pending.pop()
                raise from_kafka_error(error, f"write to {job.target_topic}") from None
        if ts_type == 2:
            job.log_append_time += 1
        job.sources[source_partition].next = offset + 1
        job.sent += 1
        self.sent += 1
        self._since_records += 1
        self._since_bytes += (len(value) if value else 0) + (len(key) if key else 0)
        if self._since_records & 0x3FF == 0:
            self._serve(0)
            if (self._since_records >= self.checkpoint_records
                    or self._since_bytes >= self.checkpoint_bytes
                    or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds):
                self.checkpoint()

    def send_records(self, job: Job, source_partition: int, records: Iterable[Mapping[str, Any]],
                     advance: Callable[[int], None]) -> None:
        """Copy archive records (dicts of the record schema) of one source partition: the
        hot path of a restore. Same effect as :meth:`send` for each."""
        if job.repartition or self.rewrite is not None:
            for r in records:
                self._send_dict(job, source_partition, r)
            return
        topic = job.target_topic
        state = self._states[(topic, source_partition)]
        source = job.sources[source_partition]
        pending = state.pending.append
        produce = self.producer().produce
        tails = self._tails
        count = 0
        size = 0
        offset = source.next - 1
        for r in records:
            if tails and (topic, source_partition) in tails:
                self._send_dict(job, source_partition, r)
                continue
            offset = r["offset"]
            value = r["value"]
            headers = r["headers"]
            timestamp = r["timestamp"]
            pending(offset)
            try:
                produce(topic, value, r["key"], source_partition,
                        timestamp=timestamp if timestamp > 0 else 0,
                        headers=[(h["key"], h["value"]) for h in headers] if headers else None)
            except BufferError:
                state.pending.pop()
                self._send_dict(job, source_partition, r)
                continue
            except Exception as error:
                state.pending.pop()
                raise from_kafka_error(error, f"write to {topic}") from None
            count += 1
            if value:
                size += len(value)
            if count & 0x3FF == 0:
                source.next = offset + 1
                job.sent += 1024
                self.sent += 1024
                advance(1024)
                self._since_records += 1024
                self._since_bytes += size
                size = 0
                self._serve(0)
                if (self._since_records >= self.checkpoint_records
                        or self._since_bytes >= self.checkpoint_bytes
                        or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds):
                    self.checkpoint()
        rest = count & 0x3FF
        source.next = max(source.next, offset + 1)
        job.sent += rest
        self.sent += rest
        self._since_records += rest
        self._since_bytes += size
        advance(rest)

    def _send_dict(self, job: Job, source_partition: int, r: Mapping[str, Any]) -> None:
        headers = r["headers"]
        self.send(job, source_partition, r["offset"], r["key"], r["value"],
                  [(h["key"], h["value"]) for h in headers] if headers else None,
                  _TS_TYPES[r["timestamp_type"]], r["timestamp"])

    def _match(self, job: Job, partition: int, source_partition: int, offset: int,
               key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes | None]] | None, timestamp: int) -> bool:
        tail = self._tails.get((job.target_topic, partition))
        if not tail:
            return False
        record = tail.popleft()
        if not tail:
            del self._tails[(job.target_topic, partition)]
        same = (record.key == key and record.value == value
                and record.headers == list(headers or ()))
        if same and record.ts_type == 1 and timestamp > 0 and record.timestamp != timestamp:
            same = False
        if not same:
            raise OperationFailed(
                f"{job.target_topic}[{partition}] offset {record.offset} is not the record "
                f"this {job.kind} would write there (source {job.source_topic}"
                f"[{source_partition}] offset {offset}): something else wrote to the topic "
                "after the last checkpoint", hint="copy into a new topic")
        state = self._states[(job.target_topic, partition)]
        state.close_run()
        if state.omap is not None:
            state.omap.add(offset, record.offset)
        state.next = record.offset + 1
        state.records += 1
        job.matched += 1
        self.matched += 1
        return True

    def idle(self) -> None:
        """Nothing to send right now: serve delivery reports, and checkpoint if records
        went out since the last checkpoint and it is time."""
        self._serve(0)
        if self._since_records and (
                time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds):
            self.checkpoint()

    def source_done(self, job: Job, source_partition: int, next_offset: int) -> None:
        """Everything of a source partition before ``next_offset`` was handled (the
        offsets after the last record were gaps)."""
        source = job.sources[source_partition]
        source.next = max(source.next, next_offset)

    def _serve(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.poll(timeout)
        self.watch.check()
        if self._failed:
            self._raise_failure()

    def _raise_failure(self) -> None:
        count = self._failed
        if not self._errors:
            raise OperationFailed(f"{count} records could not be written")
        error, message = self._errors[0]
        where = f"{message.topic()}[{message.partition()}]"
        raise from_kafka_error(error, f"{count} record(s) to {where} failed")

    def flush(self) -> None:
        """Wait until every record sent is acknowledged (or failed)."""
        if self._producer is None:
            return
        deadline = time.monotonic() + self.target.timeout
        last = -1
        while True:
            remaining = self._producer.flush(0.1)
            self.watch.check()
            if self._failed:
                self._raise_failure()
            if remaining == 0:
                return
            if remaining != last:
                last = remaining
                deadline = time.monotonic() + self.target.timeout
            elif time.monotonic() > deadline:
                raise Unreachable(f"{remaining} records were not acknowledged within "
                                  f"{self.target.timeout:g}s")

    def checkpoint(self, final: bool = False) -> None:
        """Flush, then store each job's map pieces and state."""
        self.flush()
        records: list[tuple[Key, Any]] = []
        for job in self.jobs:
            if final:
                job.done = all(s.end is not None and s.next >= s.end
                               for s in job.sources.values())
            records.extend(job.new_chunks())
            records.append((job.key, job.state()))
        self.store.write(records)
        self._since_records = 0
        self._since_bytes = 0
        self._last_checkpoint = time.monotonic()

    def finish(self) -> None:
        """After the last record: the target must not hold more than was copied."""
        for (topic, partition), tail in self._tails.items():
            if tail:
                raise OperationFailed(
                    f"{topic}[{partition}] holds {len(tail)} records after offset "
                    f"{tail[0].offset} that this copy did not write", hint="copy into a "
                                                                           "new topic")
        self.checkpoint(final=True)

    def close(self) -> None:
        """Drop the producer (records not flushed are not waited for; in transactions,
        what was sent after the last checkpoint is aborted)."""
        if self._producer is not None:
            if self.transactional_id is not None:
                with contextlib.suppress(Exception):  # fenced or unreachable: it aborts anyway
                    self._producer.abort_transaction(min(self.target.timeout, 10.0))
            self._producer.purge()
            self._producer.flush(0)
            self._producer = None


# ------------------------------------------------------------------------ timestamp configs

TIMESTAMP_CONFIGS = frozenset({
    "message.timestamp.type", "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
})
"""Topic configs that make a broker restamp (LogAppendTime) or refuse (bounds) the
timestamps being copied."""


def _interferes(configs: Mapping[str, str]) -> bool:
    return configs.get("message.timestamp.type") == "LogAppendTime" or any(
        k in configs for k in TIMESTAMP_CONFIGS - {"message.timestamp.type"})


def hold_timestamp_configs(cluster: Cluster, jobs: Sequence[Job],
                           created: Mapping[str, Mapping[str, str]]) -> None:
    """Decide, per job, which timestamp configs the target topic must get back at the
    end (``created``: the source's, for topics this run creates without them; else the
    topic's own). Call before :meth:`Copier.start`, which stores the decision in the
    checkpoint, then :func:`relax_timestamp_configs`. A run interrupted in between
    leaves the decision in the checkpoint, so the next run still puts them back."""
    from kcli.client.topics import describe_topic

    for job in jobs:
        if job.held_configs is not None:
            continue
        if job.target_topic in created:
            job.held_configs = dict(created[job.target_topic])
            continue
        detail = describe_topic(cluster, job.target_topic)
        job.held_configs = {c.name: c.value for c in detail.configs
                            if c.name in TIMESTAMP_CONFIGS and c.value is not None}


def relax_timestamp_configs(cluster: Cluster, jobs: Sequence[Job], events: Events) -> None:
    """While records are copied, let the target keep their timestamps: CreateTime and
    no timestamp bounds on topics whose held configs would interfere."""
    from kcli.client.topics import alter_configs

    for job in jobs:
        held = job.held_configs or {}
        if not _interferes(held):
            continue
        bounds = [k for k in held if k != "message.timestamp.type"]
        if held.get("message.timestamp.type") == "LogAppendTime":
            events.info(f"{job.target_topic}: CreateTime while copying (LogAppendTime would "
                        "restamp the records); put back at the end")
        alter_configs(cluster, job.target_topic, {"message.timestamp.type": "CreateTime"},
                      delete=bounds)


def release_timestamp_configs(cluster: Cluster, jobs: Sequence[Job],
                              store: CheckpointStore) -> None:
    """Put the held configs back and forget them (in the checkpoint too)."""
    from kcli.client.topics import alter_configs

    changed = []
    for job in jobs:
        held = job.held_configs
        if held is None:
            continue
        if held:
            alter_configs(cluster, job.target_topic, held)
        job.held_configs = None
        changed.append((job.key, job.state()))
    store.write(changed)
