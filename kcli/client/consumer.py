"""Reading records in batches through confluent-kafka's Consumer.

Without a group the consumer is *assigned* the partitions at explicit offsets and
commits nothing. With a group it subscribes (or, with explicit partitions, assigns),
and offsets are committed as records are handed out and when it closes. Unless
following, reading stops once every partition reached its end (librdkafka's partition
EOF event, as ``kcat -e`` does).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kcli.client.cluster import TRANSIENT_ERRORS, Cluster, ErrorWatch
from kcli.client.offsets import TP, PositionSpec, resolve_positions, watermarks
from kcli.client.topics import topic_partitions
from kcli.errors import NotFound, Unreachable, from_kafka_error

# kcli's defaults; a profile or -X overrides any of them. librdkafka backs off fetching
# for fetch.queue.backoff.ms (default 1000) whenever its local queue is "full"
# (queued.min.messages, default 100000): a fast reader then stalls for a second at a
# time. A short backoff and a deeper queue keep the fetcher busy.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "fetch.queue.backoff.ms": 5,
    "queued.min.messages": 200_000,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "fetch.wait.max.ms": 100,
}
BATCH = 10_000
_POLL_TIMEOUT = 0.1


class RecordConsumer:
    """Batches of confluent-kafka Messages from one topic."""

    def __init__(self, cluster: Cluster, topic: str, *, group: str | None = None,
                 partitions: Sequence[int] | None = None, start: PositionSpec | None = None,
                 follow: bool = False, config: Mapping[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.topic = topic
        self.group = group
        self.follow = follow
        self.start = start
        self.watch = ErrorWatch(cluster.bootstrap)
        self._requested_partitions = list(partitions) if partitions else None
        self._extra = dict(config or {})
        self._consumer: Any = None
        self._assigned: set[TP] = set()
        self._eof: set[TP] = set()
        self._finished = False
        self._assign_deadline = float("inf")
        self.total: int | None = None
        """Records between the start positions and the ends (None when unknown)."""

    # -- setup

    def open(self) -> RecordConsumer:
        """Check the topic, work out start offsets and connect."""
        from confluent_kafka import Consumer

        all_partitions = topic_partitions(self.cluster, self.topic)
        partitions = self._requested_partitions or all_partitions
        missing = [p for p in partitions if p not in all_partitions]
        if missing:
            raise NotFound(f"topic {self.topic!r} has no partition {missing[0]} "
                           f"(it has {len(all_partitions)})")
        config: dict[str, Any] = dict(CONSUMER_DEFAULTS)
        config.update(self.cluster.config)
        config.update(self._extra)
        config["error_cb"] = self.watch
        config["enable.partition.eof"] = not self.follow
        if self.group is None:
            config["group.id"] = f"kcli-consume-{os.getpid()}"
            config["enable.auto.commit"] = False
            config["enable.auto.offset.store"] = False
        else:
            config["group.id"] = self.group
            config.setdefault("enable.auto.commit", True)
        config.pop("allow.auto.create.topics", None)

        if self.group is None or self._requested_partitions:
            tps = [(self.topic, p) for p in partitions]
            assignment = self._start_offsets(tps)
            if not self.follow:
                marks_done = [tp for tp, (offset, high) in assignment.items() if offset >= high]
                self._eof.update(marks_done)
            self._assigned = set(tps)
            if not self.follow and self._eof >= self._assigned:
                self._finished = True
                return self
            self._consumer = Consumer(config)
            from confluent_kafka import TopicPartition

            self._consumer.assign([TopicPartition(t, p, offset)
                                   for (t, p), (offset, _high) in assignment.items()])
        else:
            self._assign_deadline = time.monotonic() + self.cluster.timeout
            self._consumer = Consumer(config)
            self._consumer.subscribe([self.topic], on_assign=self._on_assign,
                                     on_revoke=self._on_revoke, on_lost=self._on_revoke)
        return self

    def _start_offsets(self, tps: list[TP]) -> dict[TP, tuple[int, int]]:
        """{tp: (start offset, high watermark)}."""
        marks = watermarks(self.cluster, tps)
        committed: dict[TP, int] = {}
        spec = self.start or PositionSpec("beginning")
        if self.start is None and self.group is not None:
            # The group's committed offsets, asked with a timeout (a consumer left to find
            # them itself would wait forever for a missing coordinator).
            from kcli.client.groups import committed_offsets

            committed = committed_offsets(self.cluster, [self.group])[self.group]
            spec = PositionSpec("committed")
        offsets = {tp: off for tp, (off, _) in resolve_positions(
            self.cluster, tps, spec, committed=committed, marks=marks).items()}
        self.total = sum(max(0, marks.high.get(tp, 0) - offsets[tp]) for tp in tps)
        return {tp: (offsets[tp], marks.high.get(tp, 0)) for tp in tps}

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self._assigned.update(tps)
        if self.start is not None:
            positions = resolve_positions(self.cluster, tps, self.start)
            for tp in partitions:
                tp.offset = positions[(tp.topic, tp.partition)][0]
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._eof.discard((tp.topic, tp.partition))
        consumer.unassign()

    # -- reading

    @property
    def finished(self) -> bool:
        """Every assigned partition reached its end (never while following)."""
        return self._finished or (not self.follow and bool(self._assigned)
                                  and self._eof >= self._assigned)

    def next_batch(self, max_messages: int = BATCH, timeout: float = _POLL_TIMEOUT,
                   ) -> list[Any] | None:
        """Up to ``max_messages`` records (maybe none yet); None once finished."""
        if self.finished or self._consumer is None:
            return None
        messages = self._consumer.consume(max_messages, timeout)
        if not messages:
            self.watch.check()
            if not self._assigned and time.monotonic() > self._assign_deadline:
                raise Unreachable(
                    f"no partitions of {self.topic} were assigned in group {self.group!r} "
                    f"within {self.cluster.timeout:g}s (is the group coordinator available?)")
            return [] if not self.finished else None
        good = [m for m in messages if m.error() is None]
        if len(good) != len(messages):
            self._handle_errors(messages)
        if good:
            self.watch.connected = True
        return good

    def _handle_errors(self, messages: list[Any]) -> None:
        for message in messages:
            error = message.error()
            if error is None:
                continue
            name = error.name()
            if name == "_PARTITION_EOF":
                self._eof.add((message.topic(), message.partition()))
                continue
            if name in TRANSIENT_ERRORS:
                self.watch.check()
                continue
            raise from_kafka_error(error, f"consume {self.topic}")

    def close(self) -> None:
        """Leave the group (committing the final offsets, with a group) and disconnect."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
