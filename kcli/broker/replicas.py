"""The replica manager: the partitions this broker hosts, and the one way requests reach
them (Kafka's ``ReplicaManager``).

Handlers never look partitions up in the broker themselves. They ask here for "the
partition I lead, or say who leads": ``leader_partition`` resolves a topic and index
against the metadata, rereads the metadata once when this broker may have become the
leader (or the asker may have seen a newer leader epoch) since the last poll, and
otherwise raises ``PartitionUnavailable`` with the error Kafka answers and the leader
as this broker knows it. Reads (``read``, Kafka's ``readFromLocalLog``: the lookup, then
``Partition.read``), appends (``append_to_leader``) and acks=all waits
(``await_replication``) go through here too.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from kcli.broker.cluster.metadata import TopicState
from kcli.broker.errors import ErrorCode
from kcli.broker.partition import READ_UNCOMMITTED, AppendResult, Partition, PartitionRead

PartitionKey = tuple[str, int]
ProduceResults = list[tuple[str, list[tuple[int, AppendResult]]]]
"""Per topic, per partition index, the outcome of a Produce request's appends."""


class MetadataView(Protocol):
    """The cluster metadata as the replica manager needs it."""

    def topic(self, name: str) -> TopicState | None:
        """A topic's metadata by name."""

    def refresh_metadata(self) -> None:
        """Apply the shared metadata if it changed since the last poll."""


class PartitionUnavailable(Exception):
    """This broker cannot serve the partition; ``error_code`` is Kafka's answer."""

    def __init__(self, error_code: int, message: str | None = None,
                 leader: tuple[int, int] | None = None) -> None:
        super().__init__(message or f"error {error_code}")
        self.error_code = error_code
        self.message = message
        self.leader = leader
        """(leader id, leader epoch) from the metadata, for the client to move to."""


class ReplicaManager:
    """The partitions hosted by this broker, keyed by (topic, index)."""

    def __init__(self, metadata: MetadataView) -> None:
        self.partitions: dict[PartitionKey, Partition] = {}
        self._metadata = metadata

    def get(self, topic: str, index: int) -> Partition | None:
        """The local replica of a partition, if this broker hosts it."""
        return self.partitions.get((topic, index))

    def current_leader(self, topic: str, index: int) -> tuple[int, int]:
        """(leader id, leader epoch) of a partition from the metadata; (-1, -1) unknown."""
        state = self._metadata.topic(topic)
        if state is None or not 0 <= index < len(state.partitions):
            return -1, -1
        p = state.partitions[index]
        return p.leader, p.leader_epoch

    def leader_partition(self, topic: str, index: int, *, current_leader_epoch: int = -1,
                         refresh: bool = True, writable: bool = False) -> Partition:
        """The partition if this broker leads it at the epoch the asker knows.

        Raises PartitionUnavailable: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
        FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH; KAFKA_STORAGE_ERROR when the local
        log is offline (Kafka's ``HostedPartition.Offline``); with ``writable``, also
        INVALID_TOPIC_EXCEPTION for an internal topic (only the broker writes those).
        ``refresh`` rereads the metadata once before answering NOT_LEADER_OR_FOLLOWER or
        UNKNOWN_LEADER_EPOCH (a long poll's re-reads pass False: one reread a request).
        """
        partition = self.partitions.get((topic, index))
        if partition is not None and partition.log.offline:
            raise PartitionUnavailable(ErrorCode.kafka_storage_error,
                                       f"{topic}-{index} is in an offline log directory")
        if (partition is not None and partition.is_leader and not writable
                and current_leader_epoch < 0):
            return partition  # the common case: hosted (so the topic exists) and led here
        state = self._metadata.topic(topic)
        if state is None or not 0 <= index < len(state.partitions):
            raise PartitionUnavailable(ErrorCode.unknown_topic_or_partition)
        if writable and state.internal:
            raise PartitionUnavailable(ErrorCode.invalid_topic_exception,
                                       f"{topic} is internal; only the broker writes to it")
        if (partition is None or not partition.is_leader) and refresh:
            self._metadata.refresh_metadata()  # maybe we lead it since the last poll
            refresh = False
            partition = self.partitions.get((topic, index))
        if partition is None or not partition.is_leader:
            raise PartitionUnavailable(ErrorCode.not_leader_or_follower,
                                       leader=self.current_leader(topic, index))
        error = partition.check_leader_epoch(current_leader_epoch)
        if error == ErrorCode.unknown_leader_epoch and refresh:
            self._metadata.refresh_metadata()  # the asker may have seen a newer epoch first
            return self.leader_partition(topic, index, current_leader_epoch=current_leader_epoch,
                                         refresh=False, writable=writable)
        if error:
            raise PartitionUnavailable(error, leader=self.current_leader(topic, index))
        return partition

    def read(self, topic: str, index: int, offset: int, max_bytes: int, *,
             current_leader_epoch: int = -1, last_fetched_epoch: int = -1, replica_id: int = -1,
             isolation_level: int = READ_UNCOMMITTED, min_one_message: bool = True,
             refresh: bool = True, zero_copy: bool = False,
             ) -> tuple[Partition | None, PartitionRead]:
        """Serve one partition of a Fetch: the partition (None when this broker does not
        lead it) and its part of the answer, from ``Partition.read``.

        ``refresh`` (a request's first pass, not a long poll's re-reads) rereads the
        metadata once when this broker may have become the leader, or the asker may have
        seen a newer leader epoch first; it also has a follower's fetch noted.
        """
        try:
            partition = self.leader_partition(topic, index, refresh=refresh)
        except PartitionUnavailable as unavailable:
            return None, PartitionRead(unavailable.error_code, leader=unavailable.leader)
        result = partition.read(
            offset, max_bytes, current_leader_epoch=current_leader_epoch,
            last_fetched_epoch=last_fetched_epoch, replica_id=replica_id,
            isolation_level=isolation_level, min_one_message=min_one_message,
            record_fetch=refresh, zero_copy=zero_copy,
        )
        if result.error_code == ErrorCode.unknown_leader_epoch and refresh:
            self._metadata.refresh_metadata()  # the asker may have seen a newer epoch first
            return self.read(topic, index, offset, max_bytes,
                             current_leader_epoch=current_leader_epoch,
                             last_fetched_epoch=last_fetched_epoch, replica_id=replica_id,
                             isolation_level=isolation_level,
                             min_one_message=min_one_message, refresh=False,
                             zero_copy=zero_copy)
        return partition, result

    def append_to_leader(self, topic: str, index: int, records: bytes | None, acks: int, *,
                         allow_zstd: bool = True) -> AppendResult:
        """Validate and append a producer's batch to a partition this broker leads."""
        try:
            partition = self.leader_partition(topic, index, writable=True)
        except PartitionUnavailable as unavailable:
            return AppendResult(unavailable.error_code, message=unavailable.message)
        if acks not in (0, 1, -1):
            return AppendResult(ErrorCode.invalid_required_acks)
        return partition.append_client_batch(records, acks, allow_zstd=allow_zstd)

    async def await_replication(self, results: ProduceResults, timeout_ms: int
                                ) -> ProduceResults:
        """Wait until every acks=all append is below its partition's high watermark (all
        in-sync replicas have it), at most ``timeout_ms``; returns the results to answer.

        Kafka's rules: REQUEST_TIMED_OUT when the time runs out first,
        NOT_LEADER_OR_FOLLOWER when leadership moves meanwhile, and
        NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below min.insync.replicas by the
        time the high watermark passes the batch.
        """
        final: dict[PartitionKey, AppendResult] = {}
        pending: list[tuple[PartitionKey, Partition, AppendResult]] = []
        for topic, partitions in results:
            for index, result in partitions:
                if result.error_code != ErrorCode.none:
                    continue
                partition = self.partitions.get((topic, index))
                if partition is None:  # gone since the append
                    final[(topic, index)] = _failed(result, ErrorCode.not_leader_or_follower)
                else:
                    pending.append(((topic, index), partition, result))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while pending:
            waiting = []
            for key, partition, result in pending:
                if partition.high_watermark > result.last_offset:
                    if len(partition.state.isr) < partition.settings.min_insync_replicas:
                        final[key] = _failed(result, ErrorCode.not_enough_replicas_after_append)
                elif self.partitions.get(key) is not partition or not partition.is_leader:
                    final[key] = _failed(result, ErrorCode.not_leader_or_follower)
                else:
                    waiting.append((key, partition, result))
            pending = waiting
            remaining = deadline - loop.time()
            if not pending:
                break
            if remaining <= 0:
                for key, _partition, result in pending:
                    final[key] = _failed(result, ErrorCode.request_timed_out)
                break
            waiter: asyncio.Future[None] = loop.create_future()
            for _key, partition, _result in pending:
                partition.add_waiter(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)
        if not final:
            return results
        return [(topic, [(index, final.get((topic, index), result))
                         for index, result in partitions])
                for topic, partitions in results]


async def wait_for_data(partitions: list[Partition], seconds: float, *, follower: bool
                        ) -> None:
    """Sleep until one of ``partitions`` gets data, or ``seconds`` pass: for a consumer
    when the high watermark moves, for a follower on any append."""
    if not partitions:
        await asyncio.sleep(seconds)
        return
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for partition in partitions:
        partition.add_waiter(waiter, on_append=follower)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter, seconds)


def _failed(result: AppendResult, error_code: int) -> AppendResult:
    return AppendResult(error_code, log_start_offset=result.log_start_offset)
