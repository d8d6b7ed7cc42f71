"""Transactions of a cluster, as ``kafka-transactions.sh`` and ``rpk cluster txn`` show
them: the transactional ids each coordinator knows (ListTransactions,
DescribeTransactions), the producers with state on partitions (DescribeProducers), and
the two repairs Kafka's tool makes: abort a hanging transaction on a partition
(WriteTxnMarkers, as ``Admin.abortTransaction`` does) and find the hanging ones.

confluent-kafka exposes none of these, so they go over ``wire`` connections, secured as
the cluster's client configuration says.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from kcli.client.cluster import Cluster
from kcli.client.models import Transaction
from kcli.client.wire import Connection, timestamps_as_ints
from kcli.errors import KcliError, NotFound, OperationFailed, Unreachable

FIND_KEY_TYPE_TRANSACTION = 1
DEFAULT_MAX_TIMEOUT_MS = 900_000
"""Kafka's transaction.max.timeout.ms: no transaction may run longer unless hanging."""


@dataclass(frozen=True)
class ProducerState:
    """A producer with state on one partition (DescribeProducers)."""

    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    txn_start_offset: int
    """Where its open transaction on this partition began (-1: none open)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Hanging:
    """An open transaction on a partition that its coordinator will never end."""

    producer: ProducerState
    open_ms: int
    why: str
    transactional_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**self.producer.to_dict(), "open_ms": self.open_ms, "why": self.why,
                "transactional_id": self.transactional_id}


@dataclass
class Listing:
    """The answer of every broker to ListTransactions."""

    transactions: list[Transaction] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    """Brokers that did not answer: their transactions are missing."""


def _fail(code: int, what: str) -> KcliError:
    name = ErrorCode(code).name.upper()
    if code in (ErrorCode.transactional_id_not_found, ErrorCode.unknown_topic_or_partition):
        return NotFound(f"{what}: {name}")
    if code in (ErrorCode.coordinator_not_available, ErrorCode.not_coordinator,
                ErrorCode.coordinator_load_in_progress, ErrorCode.not_leader_or_follower):
        return Unreachable(f"{what}: {name} (try again)")
    return OperationFailed(f"{what}: {name}")


class _Brokers:
    """The brokers of a cluster, by id, with one connection each on demand."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.metadata = cluster.metadata()
        self._connections: dict[int, Connection] = {}

    def __enter__(self) -> _Brokers:
        return self

    def __exit__(self, *exc: object) -> None:
        for connection in self._connections.values():
            connection.close()

    def request(self, broker_id: int, request: Any, response_cls: Any = None) -> Any:
        """One request to a broker; Unreachable when it cannot be asked."""
        broker = self.metadata.brokers.get(broker_id)
        if broker is None:
            raise Unreachable(f"broker {broker_id} is not in the cluster's metadata")
        try:
            connection = self._connections.get(broker_id)
            if connection is None:
                connection = self._connections[broker_id] = Connection(
                    broker.host, broker.port, self.cluster.timeout, self.cluster.config)
            return connection.request(request, response_cls)
        except (OSError, ValueError) as error:
            self._connections.pop(broker_id, None)
            raise Unreachable(f"broker {broker_id} ({broker.host}:{broker.port}): "
                              f"{error}") from None

    def leader(self, topic: str, partition: int) -> int:
        """The leader of a partition; NotFound when the topic or partition is not there."""
        found = self.metadata.topics.get(topic)
        if found is None or found.error is not None:
            found = self.cluster.metadata(topic).topics.get(topic)
        if found is None or found.error is not None:
            raise NotFound(f"topic {topic!r} does not exist")
        if partition not in found.partitions:
            raise NotFound(f"topic {topic!r} has no partition {partition}")
        return int(found.partitions[partition].leader)


def list_transactions(cluster: Cluster, states: Sequence[str] = (),
                      producer_ids: Sequence[int] = (), min_duration_ms: int = -1) -> Listing:
    """Every transactional id of every coordinator, filtered as ListTransactions can."""
    if min_duration_ms >= 0:
        from kio.schema.list_transactions.v1.request import ListTransactionsRequest as V1

        request: Any = V1(state_filters=tuple(states),
                          producer_id_filters=tuple(producer_ids),  # type: ignore[arg-type]
                          duration_filter=min_duration_ms)  # type: ignore[arg-type]
    else:
        from kio.schema.list_transactions.v0.request import ListTransactionsRequest

        request = ListTransactionsRequest(state_filters=tuple(states),
                                          producer_id_filters=tuple(producer_ids))  # type: ignore[arg-type]
    listing = Listing()
    with _Brokers(cluster) as brokers:
        for broker_id in sorted(brokers.metadata.brokers):
            try:
                response = brokers.request(broker_id, request)
            except Unreachable:
                listing.unreachable.append(broker_id)
                continue
            if response.error_code:
                listing.unreachable.append(broker_id)
                continue
            listing.transactions += [
                Transaction(t.transactional_id, int(t.producer_id), t.transaction_state,
                            broker_id) for t in response.transaction_states]
    if listing.unreachable and not listing.transactions and len(listing.unreachable) == len(
            brokers.metadata.brokers):
        raise Unreachable(f"no broker answered ListTransactions ({cluster.bootstrap})")
    listing.transactions.sort(key=lambda t: t.transactional_id)
    return listing


def find_coordinator(brokers: _Brokers, transactional_id: str) -> int:
    """The id of the broker coordinating a transactional id."""
    from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest

    asked = next(iter(sorted(brokers.metadata.brokers)), None)
    if asked is None:
        raise Unreachable("the cluster lists no brokers")
    response = brokers.request(asked, FindCoordinatorRequest(
        key=transactional_id, key_type=FIND_KEY_TYPE_TRANSACTION))  # type: ignore[arg-type]
    if response.error_code:
        raise _fail(response.error_code, f"coordinator of {transactional_id!r}")
    return int(response.node_id)


def describe_transaction(cluster: Cluster, transactional_id: str) -> Transaction:
    """A transactional id's state, partitions, timeout and start, from its coordinator."""
    from kio.schema.describe_transactions.v0 import response as described
    from kio.schema.describe_transactions.v0.request import DescribeTransactionsRequest

    answer_cls = timestamps_as_ints(described.DescribeTransactionsResponse, {
        "transaction_states": timestamps_as_ints(described.TransactionState)})
    with _Brokers(cluster) as brokers:
        coordinator = find_coordinator(brokers, transactional_id)
        response = brokers.request(coordinator, DescribeTransactionsRequest(
            transactional_ids=(transactional_id,)), answer_cls)  # type: ignore[arg-type]
    state = response.transaction_states[0]
    if state.error_code:
        raise _fail(state.error_code, f"transactional id {transactional_id!r}")
    start_ms = int(state.transaction_start_time)
    timeout = state.transaction_timeout
    return Transaction(
        state.transactional_id, int(state.producer_id), state.transaction_state, coordinator,
        int(state.producer_epoch),
        int(timeout.total_seconds() * 1000) if isinstance(timeout, datetime.timedelta)
        else int(timeout), start_ms,
        tuple(sorted((t.topic, int(p)) for t in state.topics for p in t.partitions)))


def describe_producers(cluster: Cluster, topic: str, partitions: Iterable[int] | None = None
                       ) -> list[ProducerState]:
    """The producers with state on a topic's partitions (all, or those given)."""
    with _Brokers(cluster) as brokers:
        return _producers(brokers, [(topic, p) for p in _partitions(brokers, topic, partitions)])


def _partitions(brokers: _Brokers, topic: str, partitions: Iterable[int] | None) -> list[int]:
    found = brokers.metadata.topics.get(topic)
    if found is None or found.error is not None:
        found = brokers.cluster.metadata(topic).topics.get(topic)
    if found is None or found.error is not None:
        raise NotFound(f"topic {topic!r} does not exist")
    wanted = sorted(found.partitions) if partitions is None else list(partitions)
    missing = [p for p in wanted if p not in found.partitions]
    if missing:
        raise NotFound(f"topic {topic!r} has no partition {missing[0]}")
    return wanted


def _producers(brokers: _Brokers, partitions: Sequence[tuple[str, int]]
               ) -> list[ProducerState]:
    from kio.schema.describe_producers.v0.request import DescribeProducersRequest, TopicRequest

    by_leader: dict[int, dict[str, list[int]]] = {}
    for topic, index in partitions:
        by_leader.setdefault(brokers.leader(topic, index), {}).setdefault(topic, []).append(index)
    out: list[ProducerState] = []
    for leader, topics in sorted(by_leader.items()):
        response = brokers.request(leader, DescribeProducersRequest(topics=tuple(
            TopicRequest(name=name, partition_indexes=tuple(indexes))  # type: ignore[arg-type]
            for name, indexes in topics.items())))
        for topic in response.topics:
            for p in topic.partitions:
                if p.error_code:
                    raise _fail(p.error_code, f"producers of {topic.name}-{p.partition_index}")
                out += [ProducerState(topic.name, int(p.partition_index), int(s.producer_id),
                                      int(s.producer_epoch), int(s.last_sequence),
                                      int(s.last_timestamp), int(s.coordinator_epoch),
                                      int(s.current_txn_start_offset))
                        for s in p.active_producers]
    return sorted(out, key=lambda s: (s.topic, s.partition, s.producer_id))


def abort_transaction(cluster: Cluster, topic: str, partition: int, *,
                      start_offset: int | None = None, producer_id: int | None = None
                      ) -> ProducerState:
    """Abort the open transaction on one partition that began at ``start_offset`` (or
    is ``producer_id``'s): an ABORT marker written by its leader with the producer's
    epoch and coordinator epoch, as ``kafka-transactions.sh abort`` does. Needs
    ClusterAction on the cluster."""
    from kio.schema.write_txn_markers.v1.request import (
        WritableTxnMarker,
        WritableTxnMarkerTopic,
        WriteTxnMarkersRequest,
    )

    with _Brokers(cluster) as brokers:
        _partitions(brokers, topic, [partition])
        open_ones = [s for s in _producers(brokers, [(topic, partition)])
                     if s.txn_start_offset >= 0]
        chosen = [s for s in open_ones
                  if (start_offset is None or s.txn_start_offset == start_offset)
                  and (producer_id is None or s.producer_id == producer_id)]
        if not chosen:
            which = (f"starting at offset {start_offset}" if start_offset is not None
                     else f"of producer {producer_id}")
            raise NotFound(f"{topic}-{partition} has no open transaction {which}"
                           + (f" (open: {', '.join(str(s.txn_start_offset) for s in open_ones)})"
                              if open_ones else ""))
        state = chosen[0]
        marker = WritableTxnMarker(
            producer_id=state.producer_id,  # type: ignore[arg-type]
            producer_epoch=state.producer_epoch,  # type: ignore[arg-type]
            transaction_result=False,
            topics=(WritableTxnMarkerTopic(name=topic,  # type: ignore[arg-type]
                                           partition_indexes=(partition,)),),  # type: ignore[arg-type]
            coordinator_epoch=max(state.coordinator_epoch, 0),  # type: ignore[arg-type]
        )
        response = brokers.request(brokers.leader(topic, partition),
                                   WriteTxnMarkersRequest(markers=(marker,)))
    for written in response.markers:
        for t in written.topics:
            for p in t.partitions:
                if p.error_code:
                    raise _fail(p.error_code, f"abort on {topic}-{partition}")
    return state


def find_hanging(cluster: Cluster, topics: Sequence[str] | None = None,
                 max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS, now_ms: int | None = None
                 ) -> list[Hanging]:
    """Open transactions on partitions that their coordinator does not know of, does
    not count the partition in, or has ended, open longer than ``max_timeout_ms``
    (``kafka-transactions.sh find-hanging``): only `txn abort` ends them."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with _Brokers(cluster) as brokers:
        names = list(topics) if topics else sorted(
            name for name, t in brokers.metadata.topics.items() if t.error is None)
        partitions = [(name, p) for name in names for p in _partitions(brokers, name, None)]
        open_ones = [s for s in _producers(brokers, partitions) if s.txn_start_offset >= 0
                     and now - s.last_timestamp > max_timeout_ms]
    if not open_ones:
        return []
    listing = list_transactions(cluster, producer_ids=sorted({s.producer_id
                                                              for s in open_ones}))
    by_producer = {t.producer_id: t for t in listing.transactions}
    hanging = []
    for state in open_ones:
        open_ms = now - state.last_timestamp
        known = by_producer.get(state.producer_id)
        if known is None:
            if listing.unreachable:
                continue  # its coordinator may be the broker that did not answer
            hanging.append(Hanging(state, open_ms, "its coordinator does not know the producer"))
            continue
        if known.state != "Ongoing":
            hanging.append(Hanging(state, open_ms, f"its transaction is {known.state}",
                                   known.transactional_id))
            continue
        described = describe_transaction(cluster, known.transactional_id)
        if (state.topic, state.partition) not in described.partitions:
            hanging.append(Hanging(state, open_ms, "the partition is not in its transaction",
                                   known.transactional_id))
    return hanging
