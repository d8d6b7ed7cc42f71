"""Restore and migrate checkpoints, kept in the TARGET cluster.

They live in ``__kcli_checkpoints``, a compacted single-partition topic that kcli creates
on first use (Kafka lets clients create ``__``-prefixed topics; kcli's topic list hides
them like other internal topics). Keeping them with the data they describe means a
restore or migration resumes correctly from any machine, and a target that is wiped
loses its checkpoints with its data.

Records are keyed by a JSON object (canonical: sorted keys) naming the job and what the
record is: ``{"kind": "restore", ...}`` for a job's state, the same plus ``"chunk": N``
and ``"partition": P`` for the pieces of an offset map. Values are JSON; a later value
for a key replaces an earlier one, as compaction will.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from kcli.client.cluster import Cluster, ErrorWatch
from kcli.errors import OperationFailed, Unreachable, from_kafka_error

CHECKPOINT_TOPIC = "__kcli_checkpoints"

Key = dict[str, Any]


def key_bytes(key: Mapping[str, Any]) -> bytes:
    """The canonical serialised key."""
    return orjson.dumps(dict(key), option=orjson.OPT_SORT_KEYS)


class CheckpointStore:
    """Reads and writes checkpoint records in the target cluster."""

    def __init__(self, cluster: Cluster, client_config: Mapping[str, Any]) -> None:
        self.cluster = cluster
        self.config = dict(client_config)
        self.config.pop("allow.auto.create.topics", None)
        self._producer: Any = None
        self._errors: list[Any] = []
        self._ready = False
        self._transactional = False

    def ensure_topic(self) -> None:
        """Create the checkpoint topic if it does not exist."""
        if self._ready:
            return
        from kcli.client.topics import create_topic

        metadata = self.cluster.metadata()
        if CHECKPOINT_TOPIC not in metadata.topics:
            replication = min(3, max(1, len(metadata.brokers)))
            create_topic(self.cluster, CHECKPOINT_TOPIC, 1, replication,
                         {"cleanup.policy": "compact"}, if_not_exists=True)
            self._wait_visible()
        self._ready = True

    def _wait_visible(self) -> None:
        deadline = time.monotonic() + self.cluster.timeout
        while time.monotonic() < deadline:
            topic = self.cluster.metadata(CHECKPOINT_TOPIC).topics.get(CHECKPOINT_TOPIC)
            if topic is not None and (topic.error is None or topic.error.code() == 0) and all(
                    p.leader >= 0 for p in topic.partitions.values()):
                return
            time.sleep(0.05)
        raise Unreachable(f"{CHECKPOINT_TOPIC} was created but has no leader")

    def load(self, wanted: Callable[[Key], bool]) -> dict[bytes, tuple[Key, Any]]:
        """The latest value of every key ``wanted`` accepts: {key bytes: (key, value)}."""
        from confluent_kafka import Consumer, TopicPartition

        from kcli.client.offsets import watermarks

        if CHECKPOINT_TOPIC not in self.cluster.metadata().topics:
            return {}
        marks = watermarks(self.cluster, [(CHECKPOINT_TOPIC, 0)], stable=True)
        low = marks.low.get((CHECKPOINT_TOPIC, 0), 0)
        # the committed end: past it lie only open transactions' records (a copy in
        # transactions writes its checkpoints in them)
        high = marks.stable.get((CHECKPOINT_TOPIC, 0), marks.high.get((CHECKPOINT_TOPIC, 0), 0))
        out: dict[bytes, tuple[Key, Any]] = {}
        if high <= low:
            return out
        watch = ErrorWatch(self.cluster.bootstrap)
        consumer = Consumer({**self.config, "group.id": "kcli-checkpoints",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "auto.offset.reset": "earliest", "error_cb": watch,
                             "isolation.level": "read_committed"})
        consumer.assign([TopicPartition(CHECKPOINT_TOPIC, 0, low)])
        deadline = time.monotonic() + self.cluster.timeout
        position = low
        try:
            while position < high:
                watch.check()
                if time.monotonic() > deadline:
                    raise Unreachable(f"reading {CHECKPOINT_TOPIC} took longer than "
                                      f"{self.cluster.timeout:g}s")
                message: Any
                for message in consumer.consume(max(1, min(10_000, high - position)), 0.2):
                    error = message.error()
                    if error is not None:
                        if error.name() == "_PARTITION_EOF":
                            # the end, even when markers (not records) end the log
                            position = max(position, message.offset())
                            if position >= high or message.offset() >= high:
                                break
                            continue
                        if error.name() == "_TRANSPORT":
                            continue
                        raise from_kafka_error(error, f"read {CHECKPOINT_TOPIC}")
                    position = message.offset() + 1
                    deadline = time.monotonic() + self.cluster.timeout
                    raw_key = message.key()
                    if raw_key is None:
                        continue
                    try:
                        key = orjson.loads(raw_key)
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(key, dict) or not wanted(key):
                        continue
                    value = message.value()
                    if value is None:
                        out.pop(raw_key, None)
                        continue
                    try:
                        out[raw_key] = (key, orjson.loads(value))
                    except orjson.JSONDecodeError:
                        raise OperationFailed(f"{CHECKPOINT_TOPIC}: unreadable checkpoint "
                                              f"at offset {message.offset()}") from None
        finally:
            consumer.close()
        return out

    def share(self, producer: Any, watch: ErrorWatch, *, transactional: bool = False) -> None:
        """Write with this (idempotent, acks=all) producer instead of creating one: an
        idempotent producer waits about half a second for its producer id, so a copy
        creates one early and shares it. A ``transactional`` one has a transaction open:
        each write then commits it, with every record sent since the last write, and
        opens the next."""
        self._producer = producer
        self._watch = watch
        self._transactional = transactional

    def _producer_for(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._watch = ErrorWatch(self.cluster.bootstrap)
            self._producer = Producer({
                **self.config, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                "message.max.bytes": 4_000_000, "error_cb": self._watch})
        return self._producer

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(error)

    def write(self, records: Sequence[tuple[Key, Any]]) -> None:
        """Write records and wait until every one is acknowledged by all replicas."""
        if not records:
            return
        self.ensure_topic()
        producer = self._producer_for()
        for key, value in records:
            data = None if value is None else orjson.dumps(value)
            while True:
                try:
                    producer.produce(CHECKPOINT_TOPIC, data, key_bytes(key), 0,
                                     on_delivery=self._delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
        deadline = time.monotonic() + self.cluster.timeout
        while producer.flush(0.1):
            self._watch.check()
            if time.monotonic() > deadline:
                raise Unreachable(f"checkpoint not acknowledged within "
                                  f"{self.cluster.timeout:g}s")
        if self._errors:
            error = self._errors[0]
            self._errors.clear()
            raise from_kafka_error(error, f"write checkpoint to {CHECKPOINT_TOPIC}")
        if self._transactional:
            try:
                producer.commit_transaction(self.cluster.timeout)
                producer.begin_transaction()
            except Exception as error:  # KafkaException: fenced, timed out, ...
                raise from_kafka_error(error, "commit the copy's transaction") from None
