"""ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions about a log's offsets."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.log.errors import LogError
from kcli.broker.partition import Partition
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.replicas import PartitionUnavailable
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5


def leader_partition(
    ctx: RequestContext, topic: str, index: int, current_leader_epoch: int = -1
) -> tuple[Partition | None, int]:
    """The partition if this broker leads it at the epoch the client knows; else an error."""
    try:
        partition = ctx.broker.replicas.leader_partition(
            topic, index, current_leader_epoch=current_leader_epoch
        )
    except PartitionUnavailable as unavailable:
        return None, unavailable.error_code
    return partition, ErrorCode.none


def _lookup(partition: Partition, timestamp: int, read_committed: bool = False
            ) -> tuple[int, int]:
    """(offset, timestamp) for a ListOffsets query; (-1, -1) when there is none. A
    read_committed asker sees the log end at the last stable offset (Kafka's
    ``lastFetchableOffset``), others at the high watermark."""
    log = partition.log
    end = partition.last_stable_offset if read_committed else partition.high_watermark
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return log.log_start_offset, -1
    if timestamp == LATEST:
        return end, -1
    if timestamp == LATEST_TIERED:
        return -1, -1
    if timestamp == MAX_TIMESTAMP:
        found = log.max_timestamp()
        if found is None or found[1] >= end:
            return -1, -1
        return found[1], found[0]
    if timestamp < 0:
        raise ValueError(timestamp)
    hit = log.offset_for_timestamp(timestamp)
    if hit is None or hit[0] >= end:
        return -1, -1
    return hit


@handles(ApiKey.LIST_OFFSETS)
async def list_offsets(ctx: RequestContext, request: Any) -> Any:
    """Offsets by earliest, latest, max timestamp or timestamp."""
    partition_cls = ctx.response_class("ListOffsetsPartitionResponse")
    topic_cls = ctx.response_class("ListOffsetsTopicResponse")
    read_committed = int(getattr(request, "isolation_level", 0)) == 1
    topics = []
    for topic in request.topics:
        results = []
        allowed = ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            partition, error = leader_partition(
                ctx, topic.name, p.partition_index, int(getattr(p, "current_leader_epoch", -1))
            ) if allowed else (None, ErrorCode.topic_authorization_failed)
            offset = timestamp = -1
            epoch = -1
            if partition is not None and (
                partition.high_watermark < partition.leader_epoch_start_offset
            ):
                # A new leader whose high watermark has not yet reached the start of its
                # epoch would answer an end that moves back: retriable, as Kafka does.
                partition, error = None, ErrorCode.offset_not_available
            if partition is not None:
                try:
                    offset, timestamp = _lookup(partition, int(p.timestamp), read_committed)
                    epoch = partition.leader_epoch if offset >= 0 else -1
                except ValueError:
                    error = ErrorCode.invalid_request
            results.append(
                make(partition_cls, partition_index=p.partition_index, error_code=error,
                     timestamp=timestamp, offset=offset, leader_epoch=epoch)
            )
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(results)))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def offset_for_leader_epoch(ctx: RequestContext, request: Any) -> Any:
    """End offset of a leader epoch: how clients and followers detect truncation."""
    result_cls = ctx.response_class("EpochEndOffset")
    topic_cls = ctx.response_class("OffsetForLeaderTopicResult")
    topics = []
    follower = int(getattr(request, "replica_id", -1)) >= 0
    cluster_action = follower and ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER,
                                              CLUSTER_NAME)
    for topic in request.topics:
        results = []
        allowed = cluster_action if follower else ctx.allowed(
            Operation.DESCRIBE, ResourceType.TOPIC, topic.topic)
        for p in topic.partitions:
            partition, error = leader_partition(
                ctx, topic.topic, p.partition, int(p.current_leader_epoch)
            ) if allowed else (None, ErrorCode.topic_authorization_failed)
            epoch, end_offset = -1, -1
            if partition is not None:
                epoch, end_offset = partition.log.end_offset_for_epoch(int(p.leader_epoch))
            results.append(make(result_cls, error_code=error, partition=p.partition,
                                leader_epoch=epoch, end_offset=end_offset))
        topics.append(make(topic_cls, topic=topic.topic, partitions=tuple(results)))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))


@handles(ApiKey.DELETE_RECORDS)
async def delete_records(ctx: RequestContext, request: Any) -> Any:
    """Advance log start offsets; -1 means up to the high watermark."""
    result_cls = ctx.response_class("DeleteRecordsPartitionResult")
    topic_cls = ctx.response_class("DeleteRecordsTopicResult")
    topics = []
    for topic in request.topics:
        results = []
        allowed = ctx.allowed(Operation.DELETE, ResourceType.TOPIC, topic.name)
        for p in topic.partitions:
            partition, error = leader_partition(ctx, topic.name, p.partition_index) \
                if allowed else (None, ErrorCode.topic_authorization_failed)
            low = -1
            if partition is not None:
                offset = int(p.offset)
                if offset == -1:
                    offset = partition.high_watermark
                if offset < 0 or offset > partition.high_watermark:
                    error = ErrorCode.offset_out_of_range
                else:
                    try:
                        low = partition.delete_records_before(offset)
                    except LogError as failure:  # a full disk: KAFKA_STORAGE_ERROR
                        error = failure.error_code
            results.append(make(result_cls, partition_index=p.partition_index,
                                low_watermark=low, error_code=error))
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(results)))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))
