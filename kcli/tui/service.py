"""The dashboard's data service: every cluster call the screens need, through the client
layer. No textual here: the app calls these methods from worker threads and posts the
results as messages; widgets hold the service, never a Kafka client.

One refresh sends a bounded number of requests, whatever the number of topics:

- one Metadata request (every topic and partition);
- one ListOffsets request per leader broker for the earliest offsets, one for the
  latest and one for the last stable offsets (read_committed), for all partitions at once;
- one ListGroups request per broker, then one DescribeGroups and one OffsetFetch per
  group (librdkafka sends one per group; at most ``MAX_IN_FLIGHT`` groups at a time),
  and no further ListOffsets: group lag reuses the end offsets fetched above;
- one ListTransactions request per broker, for the open transactions;
- every ``SIZE_EVERY`` refreshes, one DescribeLogDirs request per broker for sizes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kcli.client.cluster import Cluster
from kcli.client.models import GroupDetail, OffsetChange, Transaction
from kcli.errors import BadInput, KcliError, Unreachable, from_kafka_error, is_kafka_exception
from kcli.formats.envelope import Record
from kcli.tui.model import ClusterSnapshot, Sample, SnapshotBuilder

MAX_IN_FLIGHT = 50
"""Groups whose DescribeGroups/OffsetFetch requests may be in flight at once."""
SIZE_EVERY = 5
"""Topic sizes (DescribeLogDirs) are measured on every SIZE_EVERY-th refresh."""
TAIL_LAST = 10
"""Records per partition a tail starts with."""
OPEN_STATES = ("Ongoing", "PrepareCommit", "PrepareAbort")
"""Transaction states the cluster screen lists: not yet ended."""
TAIL_BATCH = 500
# A tail keeps only what it shows; a small prefetch queue keeps librdkafka from filling memory.
TAIL_CONFIG: dict[str, Any] = {"queued.min.messages": 1000, "queued.max.messages.kbytes": 8192}


@dataclass(frozen=True)
class ResetPlan:
    """A dry run of a group offset reset."""

    group: str
    to: str
    state: str
    members: int
    changes: tuple[OffsetChange, ...]

    @property
    def blocked(self) -> str | None:
        """Why executing would be refused, if it would."""
        from kcli.client.groups import INACTIVE_STATES

        if self.members or self.state not in INACTIVE_STATES:
            return (f"group {self.group!r} is {self.state} with {self.members} member(s); "
                    "stop its consumers before resetting offsets")
        return None


class Tail(Protocol):
    """Records of one topic as they arrive."""

    def read(self, timeout: float) -> list[Record]:
        """The records that arrived (maybe none) within ``timeout`` seconds."""

    def close(self) -> None:
        """Disconnect."""


class DataService(Protocol):
    """What the app needs from a cluster (the snapshot tests stub this)."""

    bootstrap: str

    def refresh(self) -> ClusterSnapshot:
        """Poll the cluster once (blocking; a worker thread calls it)."""

    def create_topic(self, name: str, partitions: int | None, replication: int | None) -> None:
        """Create a topic."""

    def delete_topic(self, name: str) -> None:
        """Delete a topic."""

    def plan_reset(self, group: str, to: str, topics: Sequence[str]) -> ResetPlan:
        """A dry run of moving the group's committed offsets."""

    def apply_reset(self, plan: ResetPlan) -> None:
        """Commit the planned offsets (refused while the group has members)."""

    def open_tail(self, topic: str) -> Tail:
        """Start reading the newest records of a topic."""

    def close(self) -> None:
        """Stop every wait in progress; the app is quitting."""


class ConsumerTail:
    """A tail through the client layer's RecordConsumer (assigned, no group, no commits).
    With a Schema Registry, registry-framed keys and values are shown decoded (as JSON);
    what does not decode is shown as it is."""

    def __init__(self, consumer: Any, decoder: Any = None) -> None:
        self._consumer = consumer
        self._decoder = decoder

    def read(self, timeout: float) -> list[Record]:
        """Up to TAIL_BATCH records."""
        from kcli.formats.envelope import from_message

        messages = self._consumer.next_batch(TAIL_BATCH, timeout)
        records = [from_message(m) for m in messages or ()]
        if self._decoder is not None:
            records = [self._decoded(r) for r in records]
        return records

    def _decoded(self, record: Record) -> Record:
        from dataclasses import replace

        try:
            key = self._decoder.decode(record.key, key=True)
            value = self._decoder.decode(record.value, key=True)  # unframed: as it is
        except KcliError:
            return record
        return replace(record, key=key, value=value)

    def close(self) -> None:
        """Disconnect."""
        self._consumer.close()
        if self._decoder is not None:
            self._decoder.close()


class KafkaService:
    """The real service: one shared :class:`Cluster`, replaced after the cluster was
    unreachable (a fresh client notices a dead cluster in milliseconds, and reconnects
    when it is back)."""

    def __init__(self, config: Mapping[str, Any], *, timeout: float, interval: float,
                 clock: Callable[[], float] = time.time,
                 expected_brokers: Mapping[int, tuple[str, int]] | None = None,
                 registry: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config)
        self.registry = dict(registry) if registry is not None else None
        """Schema Registry client settings: the record tail decodes framed records."""
        self.expected_brokers = dict(expected_brokers or {})
        self.timeout = timeout
        self.bootstrap = str(self.config.get("bootstrap.servers", ""))
        self.builder = SnapshotBuilder(bootstrap=self.bootstrap, interval=interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._closed = False
        self._refreshes = 0

    def cluster(self) -> Cluster:
        """The shared Cluster (a new one after a failure)."""
        with self._lock:
            if self._cluster is None:
                self._cluster = Cluster(self.config, timeout=self.timeout)
                if self._closed:
                    self._cluster.abort()
            return self._cluster

    def _failed(self, cluster: Cluster) -> None:
        with self._lock:
            if self._cluster is cluster:
                self._cluster = None

    def _call(self, work: Callable[[Cluster], Any]) -> Any:
        cluster = self.cluster()
        try:
            return work(cluster)
        except Unreachable:
            self._failed(cluster)
            raise

    def sample(self, cluster: Cluster) -> Sample:
        """Fetch what one refresh needs (see the module docstring for the requests)."""
        from kcli.client.groups import describe_groups, list_group_ids
        from kcli.client.logdirs import topic_sizes
        from kcli.client.offsets import watermarks
        from kcli.client.overview import cluster_layout

        started = self._clock()
        began = time.monotonic()
        metadata = cluster.metadata()
        layout = cluster_layout(cluster, metadata)
        marks = watermarks(cluster, [(name, p.partition) for name, partitions
                                     in layout.topics.items() for p in partitions], stable=True)
        group_ids = [group for group, _state, _kind in list_group_ids(cluster)]
        groups = describe_groups(cluster, group_ids, ends=marks.high, missing_ok=True,
                                 max_in_flight=MAX_IN_FLIGHT)
        sizes = None
        if self._refreshes % SIZE_EVERY == 0:
            sizes = topic_sizes(cluster, metadata, layout.topics)
        self._refreshes += 1
        return Sample(t=started, took=time.monotonic() - began, layout=layout, marks=marks,
                      groups=groups, sizes=sizes, expected_brokers=self.expected_brokers,
                      transactions=open_transactions(cluster))

    def refresh(self) -> ClusterSnapshot:
        """Poll the cluster once and fold the result into the history."""
        sample = self._call(self.sample)
        return self.builder.add(sample)

    def create_topic(self, name: str, partitions: int | None, replication: int | None) -> None:
        """Create a topic (cluster defaults for what is None)."""
        from kcli.client.topics import create_topic

        self._call(lambda c: create_topic(c, name, partitions, replication, {}))

    def delete_topic(self, name: str) -> None:
        """Delete one topic."""
        from kcli.client.topics import delete_topics

        error = self._call(lambda c: delete_topics(c, [name])).get(name)
        if error is not None:
            raise error

    def plan_reset(self, group: str, to: str, topics: Sequence[str]) -> ResetPlan:
        """The group reset plan, exactly as `kcli group reset` (without --execute) makes it."""
        from kcli.client.groups import plan_reset
        from kcli.client.offsets import parse_position

        spec = parse_position(to, allow_shift=True, option="to")
        detail, changes = self._call(lambda c: plan_reset(c, group, list(topics) or None, spec))
        return _plan(group, to, detail, changes)

    def apply_reset(self, plan: ResetPlan) -> None:
        """Apply a plan with `kcli group reset --execute`'s function (which refuses while
        the group has members)."""
        from kcli.client.groups import apply_reset

        self._call(lambda c: apply_reset(c, plan.group, plan.changes))

    def open_tail(self, topic: str) -> Tail:
        """A consumer assigned every partition, starting TAIL_LAST records before the end."""
        from kcli.client.consumer import RecordConsumer
        from kcli.client.offsets import PositionSpec

        def start(cluster: Cluster) -> Tail:
            consumer = RecordConsumer(cluster, topic, start=PositionSpec("last", TAIL_LAST),
                                      follow=True, config=TAIL_CONFIG)
            decoder = None
            if self.registry is not None:
                from kcli.client.schema_fetch import schema_source
                from kcli.client.serdes import RegistryDecoder

                decoder = RegistryDecoder(schema_source(self.registry), topic)
            return ConsumerTail(consumer.open(), decoder)

        tail: Tail = self._call(start)
        return tail

    def close(self) -> None:
        """End every wait in progress (and refuse new ones): the app is quitting."""
        with self._lock:
            self._closed = True
            if self._cluster is not None:
                self._cluster.abort()


def _plan(group: str, to: str, detail: GroupDetail, changes: Sequence[OffsetChange],
          ) -> ResetPlan:
    return ResetPlan(group=group, to=to, state=detail.state, members=len(detail.members),
                     changes=tuple(changes))


def open_transactions(cluster: Cluster) -> list[Transaction] | None:
    """Transactions not yet ended, from every coordinator; None when the cluster cannot
    say (a broker before Kafka 3.0, or one that did not answer)."""
    from kcli.client.transactions import list_transactions

    try:
        listing = list_transactions(cluster, OPEN_STATES)
    except KcliError:
        return None
    return None if listing.unreachable else listing.transactions


def parse_count(text: str, what: str) -> int | None:
    """A positive whole number typed in a dialog, or None when left empty."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"{what} must be a positive whole number")
    return int(text)


def describe_error(error: BaseException) -> str:
    """One line for the status bar or a dialog."""
    if isinstance(error, KcliError):
        return error.one_line()
    if is_kafka_exception(error):
        return from_kafka_error(error).one_line()
    return f"internal error: {type(error).__name__}: {error}"
