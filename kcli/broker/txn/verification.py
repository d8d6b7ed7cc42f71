"""Partition verification (KIP-890 part 1, on by default in Kafka 3.6+): before a
producer's first transactional write to a partition, its leader asks the transaction
coordinator whether the partition is in the producer's open transaction.

Without it, a transactional batch that reaches a partition its coordinator does not
know of (a late retry after an abort, a client bug) opens a transaction there that no
marker will ever end: the partition's last stable offset stops, and read_committed
consumers with it, until `kcli txn abort`. The leader asks the coordinator itself when
it is one, else sends AddPartitionsToTxn v4 with VerifyOnly, as Kafka's
``AddPartitionsToTxnManager`` does. A refused batch gets INVALID_TXN_STATE (Produce
below v11) or TRANSACTION_ABORTABLE; a coordinator that cannot be asked gets
NOT_ENOUGH_REPLICAS, which clients retry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kio.schema.add_partitions_to_txn.v4.request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)

from kcli.broker.cluster.client import BrokerClients, BrokerConnectionError
from kcli.broker.errors import ErrorCode
from kcli.broker.txn.coordinator import TxnError
from kcli.broker.txn.metadata import TopicPartition

if TYPE_CHECKING:
    from kcli.broker.broker import Broker

log = logging.getLogger("kcli.broker.txn")

REQUEST_TIMEOUT_S = 5.0
_UNVERIFIABLE = ErrorCode.not_enough_replicas


class PartitionVerifier:
    """Asks transaction coordinators whether partitions are in open transactions."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._clients = BrokerClients(f"kcli-txn-verify-{broker.node_id}",
                                      lambda: broker.inter_broker_login)

    def close(self) -> None:
        """Close the connections to other brokers."""
        self._clients.close()

    async def verify(self, transactional_id: str, producer_id: int, epoch: int,
                     partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """An error code per partition: NONE when it is in the producer's open
        transaction, INVALID_TXN_STATE when not, NOT_ENOUGH_REPLICAS when the coordinator
        could not say."""
        coordinator = self.broker.transactions
        try:
            info = coordinator.find_coordinator(transactional_id)
        except TxnError:
            return dict.fromkeys(partitions, int(_UNVERIFIABLE))
        if info.node_id == self.broker.node_id:
            return coordinator.verify(transactional_id, producer_id, epoch, partitions)
        client = self._clients.get(info.node_id, info.host, info.port)
        by_topic: dict[str, list[int]] = {}
        for topic, index in partitions:
            by_topic.setdefault(topic, []).append(index)
        request = AddPartitionsToTxnRequest(transactions=(AddPartitionsToTxnTransaction(
            transactional_id=transactional_id,  # type: ignore[arg-type]
            producer_id=producer_id,  # type: ignore[arg-type]
            producer_epoch=epoch,  # type: ignore[arg-type]
            verify_only=True,
            topics=tuple(AddPartitionsToTxnTopic(
                name=topic, partitions=tuple(indexes))  # type: ignore[arg-type]
                for topic, indexes in by_topic.items()),
        ),))
        try:
            response = await client.request(request, REQUEST_TIMEOUT_S)
        except BrokerConnectionError as error:
            log.info("verifying %s with broker %d: %s", transactional_id, info.node_id, error)
            return dict.fromkeys(partitions, int(_UNVERIFIABLE))
        if response.error_code:
            return dict.fromkeys(partitions, int(_UNVERIFIABLE))
        found: dict[TopicPartition, int] = {}
        for result in response.results_by_transaction:
            for topic in result.topic_results:
                for p in topic.results_by_partition:
                    found[(topic.name, int(p.partition_index))] = int(p.partition_error_code)
        return {tp: found.get(tp, int(_UNVERIFIABLE)) for tp in partitions}
