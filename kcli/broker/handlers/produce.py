"""Produce: validate each partition's batch, append it, answer with its offsets."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.partition import AppendResult
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.replicas import ProduceResults
from kcli.broker.security.acls import Operation, ResourceType

_DENIED = AppendResult(ErrorCode.topic_authorization_failed)
_TXN_DENIED = AppendResult(ErrorCode.transactional_id_authorization_failed)


@handles(ApiKey.PRODUCE)
async def produce(ctx: RequestContext, request: Any) -> Any:
    """Append record batches; acks=0 gets no response at all."""
    acks = request.acks
    replicas = ctx.broker.replicas
    allow_zstd = ctx.version >= 7  # zstd came with Produce v7
    results: ProduceResults = []
    transactional_id = getattr(request, "transactional_id", None)
    txn_allowed = transactional_id is None or ctx.allowed(
        Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)
    for topic_data in request.topic_data:
        name = topic_data.name
        if not txn_allowed:
            results.append((name, [(p.index, _TXN_DENIED) for p in topic_data.partition_data]))
            continue
        if not ctx.allowed(Operation.WRITE, ResourceType.TOPIC, name):
            results.append((name, [(p.index, _DENIED) for p in topic_data.partition_data]))
            continue
        partitions = [
            (p.index, replicas.append_to_leader(name, p.index, p.records, acks,
                                                allow_zstd=allow_zstd))
            for p in topic_data.partition_data
        ]
        results.append((name, partitions))
    if acks == -1:
        results = await replicas.await_replication(results, millis(request.timeout))
    if acks == 0:
        return None
    response = ctx.response_class()
    topic_cls = ctx.response_class("TopicProduceResponse")
    partition_cls = ctx.response_class("PartitionProduceResponse")
    leader_cls = ctx.response_class("LeaderIdAndEpoch") if ctx.version >= 10 else None
    error_cls = ctx.response_class("BatchIndexAndErrorMessage") if ctx.version >= 8 else None
    topics = []
    for name, partitions in results:
        entries = []
        for index, result in partitions:
            extra: dict[str, Any] = {}
            if leader_cls is not None and result.error_code == ErrorCode.not_leader_or_follower:
                leader_id, leader_epoch = replicas.current_leader(name, index)
                extra["current_leader"] = make(leader_cls, leader_id=leader_id,
                                               leader_epoch=leader_epoch)
            entries.append(
                make(
                    partition_cls,
                    index=index,
                    error_code=result.error_code,
                    base_offset=result.base_offset,
                    log_append_time=result.log_append_time,
                    log_start_offset=result.log_start_offset,
                    record_errors=tuple(
                        make(error_cls, batch_index=index, batch_index_error_message=why)
                        for index, why in result.record_errors
                    ) if error_cls is not None else (),
                    error_message=result.message,
                    **extra,
                )
            )
        topics.append(make(topic_cls, name=name, partition_responses=tuple(entries)))
    return make(response, responses=tuple(topics), throttle_time=0)
