"""Produce: validate each partition's batch, append it, answer with its offsets."""

from __future__ import annotations

from typing import Any

from kcli.broker.handlers import errors
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.partition import AppendResult
from kcli.broker.protocol.versions import ApiKey


def _append(ctx: RequestContext, topic: str, index: int, records: bytes | None, acks: int
            ) -> AppendResult:
    broker = ctx.broker
    state = broker.topic(topic)
    if state is None or not 0 <= index < len(state.partitions):
        return AppendResult(errors.UNKNOWN_TOPIC_OR_PARTITION)
    if state.internal:
        return AppendResult(errors.INVALID_TOPIC_EXCEPTION,
                            message=f"{topic} is internal; only the broker writes to it")
    partition = broker.partition(topic, index)
    if partition is None or not partition.is_leader:
        broker.refresh_metadata()  # maybe we lead it since the last poll
        partition = broker.partition(topic, index)
        if partition is None or not partition.is_leader:
            return AppendResult(errors.NOT_LEADER_OR_FOLLOWER)
    if acks not in (0, 1, -1):
        return AppendResult(errors.INVALID_REQUIRED_ACKS)
    return partition.append_client_batch(records, acks, allow_zstd=ctx.version >= 7)


@handles(ApiKey.PRODUCE)
async def produce(ctx: RequestContext, request: Any) -> Any:
    """Append record batches; acks=0 gets no response at all."""
    acks = request.acks
    results: list[tuple[str, list[tuple[int, AppendResult]]]] = []
    for topic_data in request.topic_data:
        partitions = [
            (p.index, _append(ctx, topic_data.name, p.index, p.records, acks))
            for p in topic_data.partition_data
        ]
        results.append((topic_data.name, partitions))
    if acks == -1:
        results = await ctx.broker.await_replication(results, millis(request.timeout))
    if acks == 0:
        return None
    response = ctx.response_class()
    topic_cls = ctx.response_class("TopicProduceResponse")
    partition_cls = ctx.response_class("PartitionProduceResponse")
    leader_cls = ctx.response_class("LeaderIdAndEpoch") if ctx.version >= 10 else None
    topics = []
    for name, partitions in results:
        entries = []
        for index, result in partitions:
            extra: dict[str, Any] = {}
            if leader_cls is not None and result.error_code == errors.NOT_LEADER_OR_FOLLOWER:
                extra["current_leader"] = _current_leader(ctx, leader_cls, name, index)
            entries.append(
                make(
                    partition_cls,
                    index=index,
                    error_code=result.error_code,
                    base_offset=result.base_offset,
                    log_append_time=result.log_append_time,
                    log_start_offset=result.log_start_offset,
                    record_errors=(),
                    error_message=result.message,
                    **extra,
                )
            )
        topics.append(make(topic_cls, name=name, partition_responses=tuple(entries)))
    return make(response, responses=tuple(topics), throttle_time=0)


def _current_leader(ctx: RequestContext, leader_cls: type, topic: str, index: int) -> Any:
    state = ctx.broker.topic(topic)
    if state is None or not 0 <= index < len(state.partitions):
        return make(leader_cls, leader_id=-1, leader_epoch=-1)
    p = state.partitions[index]
    return make(leader_cls, leader_id=p.leader, leader_epoch=p.leader_epoch)
