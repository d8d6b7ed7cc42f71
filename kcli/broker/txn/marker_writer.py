"""Writing transaction markers to every partition of a transaction, wherever it is led.

The coordinator hands ``MarkerWriter.write`` a decided transaction. Partitions this
broker leads get their marker appended here; the others get a WriteTxnMarkers v1 request
to their leader (Kafka's ``TransactionMarkerChannelManager``). Each marker waits for the
partition's in-sync replicas, as Kafka appends markers with acks=all. Failures are
retried with a growing pause until every marker is written, the partition's topic is
gone, or this coordinator is no longer current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kio.schema.write_txn_markers.v1.request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)

from kcli.broker.cluster.client import BrokerClients, BrokerConnectionError
from kcli.broker.errors import ErrorCode
from kcli.broker.group.runtime import OFFSETS_TOPIC
from kcli.broker.partition import AppendResult
from kcli.broker.txn.metadata import TopicPartition

if TYPE_CHECKING:
    from kcli.broker.broker import Broker

log = logging.getLogger("kcli.broker.txn")

REQUEST_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 1.0
_ABANDON = frozenset({ErrorCode.transaction_coordinator_fenced,
                      ErrorCode.invalid_producer_epoch})
"""A newer coordinator or producer epoch already wrote there: this one is stale."""


async def write_local_markers(broker: Broker, producer_id: int, producer_epoch: int,
                              commit: bool, coordinator_epoch: int,
                              partitions: Iterable[TopicPartition], timeout_ms: int
                              ) -> dict[TopicPartition, int]:
    """Append one transaction's markers to partitions this broker leads and wait for
    their replication; the error code of each. A marker on ``__consumer_offsets`` also
    applies (or drops) the transaction's pending offsets there."""
    by_topic: dict[str, list[int]] = {}
    for topic, index in partitions:
        by_topic.setdefault(topic, []).append(index)
    errors: dict[TopicPartition, int] = {}
    appended: list[tuple[str, list[tuple[int, AppendResult]]]] = []
    for topic, indexes in by_topic.items():
        state = broker.topic(topic)
        results = []
        for index in indexes:
            partition = broker.partition(topic, index)
            if state is None or not 0 <= index < len(state.partitions):
                errors[(topic, index)] = ErrorCode.unknown_topic_or_partition
                continue
            if partition is None or not partition.is_leader:
                errors[(topic, index)] = ErrorCode.not_leader_or_follower
                continue
            result = partition.append_marker(producer_id, producer_epoch, commit=commit,
                                             coordinator_epoch=coordinator_epoch)
            if result.error_code == ErrorCode.none and topic == OFFSETS_TOPIC:
                broker.groups.complete_transaction(index, producer_id, commit)
            results.append((index, result))
        appended.append((topic, results))
    for topic, results in await broker.replicas.await_replication(appended, timeout_ms):
        for index, result in results:
            errors[(topic, index)] = result.error_code
    return errors


class MarkerWriter:
    """Sends markers for the transaction coordinator, to local and remote leaders."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._clients = BrokerClients(f"kcli-txn-markers-{broker.node_id}",
                                      lambda: broker.inter_broker_login)

    def close(self) -> None:
        """Close the connections to other brokers."""
        self._clients.close()

    async def write(self, producer_id: int, producer_epoch: int, commit: bool,
                    coordinator_epoch: int, partitions: Iterable[TopicPartition],
                    still_current: Callable[[], bool]) -> bool:
        """Write the markers; True once every partition has its marker (or no longer
        exists), False when abandoned (``still_current`` turned False, or a newer
        coordinator or producer epoch refused them)."""
        remaining = set(partitions)
        backoff = 0.02
        while remaining:
            if not still_current():
                return False
            self.broker.refresh_metadata()
            by_leader: dict[int, list[TopicPartition]] = {}
            for topic, index in list(remaining):
                state = self.broker.topic(topic)
                if state is None or not 0 <= index < len(state.partitions):
                    remaining.discard((topic, index))  # deleted: nothing to mark
                    continue
                by_leader.setdefault(state.partitions[index].leader, []).append((topic, index))
            attempts = [self._send(leader, producer_id, producer_epoch, commit,
                                   coordinator_epoch, tps) for leader, tps in by_leader.items()]
            for outcome in await asyncio.gather(*attempts):
                for tp, error in outcome.items():
                    gone = (error == ErrorCode.unknown_topic_or_partition
                            and self.broker.topic(tp[0]) is None)
                    if error == ErrorCode.none or gone:
                        remaining.discard(tp)
                    elif error in _ABANDON:
                        log.warning("markers of producer %d: %s-%d refused them (%s); a newer "
                                    "coordinator owns the transaction", producer_id, tp[0],
                                    tp[1], ErrorCode(error).name)
                        return False
            if remaining:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        return True

    async def _send(self, leader: int, producer_id: int, producer_epoch: int, commit: bool,
                    coordinator_epoch: int, partitions: list[TopicPartition]
                    ) -> dict[TopicPartition, int]:
        timeout_ms = int(REQUEST_TIMEOUT_S * 1000)
        if leader == self.broker.node_id:
            return await write_local_markers(self.broker, producer_id, producer_epoch, commit,
                                             coordinator_epoch, partitions, timeout_ms)
        unavailable = dict.fromkeys(partitions, int(ErrorCode.not_leader_or_follower))
        info = self.broker.broker_endpoint(leader)
        if leader < 0 or info is None:
            return unavailable
        client = self._clients.get(leader, info.host, info.port)
        by_topic: dict[str, list[int]] = {}
        for topic, index in partitions:
            by_topic.setdefault(topic, []).append(index)
        request = WriteTxnMarkersRequest(markers=(WritableTxnMarker(
            producer_id=producer_id,  # type: ignore[arg-type]
            producer_epoch=producer_epoch,  # type: ignore[arg-type]
            transaction_result=commit,
            topics=tuple(WritableTxnMarkerTopic(
                name=topic,  # type: ignore[arg-type]
                partition_indexes=tuple(indexes),  # type: ignore[arg-type]
            ) for topic, indexes in by_topic.items()),
            coordinator_epoch=coordinator_epoch,  # type: ignore[arg-type]
        ),))
        try:
            response = await client.request(request, REQUEST_TIMEOUT_S + 1)
        except BrokerConnectionError as error:
            log.info("markers to broker %d: %s", leader, error)
            return unavailable
        errors: dict[TopicPartition, int] = {}
        for marker in response.markers:
            for topic in marker.topics:
                for p in topic.partitions:
                    errors[(topic.name, int(p.partition_index))] = int(p.error_code)
        return errors
