"""Produce: validate each partition's batch, append it, answer with its offsets."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.log import BatchError, read_header
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
    if transactional_id is None and _has_transactional_batch(request):
        txn_allowed = False  # as Kafka: transactional records need the request's id
    refused: dict[tuple[str, int], AppendResult] = {}
    if transactional_id is not None and txn_allowed:
        refused = await _unverified(ctx, transactional_id, request)
    for topic_data in request.topic_data:
        name = topic_data.name
        if not txn_allowed:
            results.append((name, [(p.index, _TXN_DENIED) for p in topic_data.partition_data]))
            continue
        if not ctx.allowed(Operation.WRITE, ResourceType.TOPIC, name):
            results.append((name, [(p.index, _DENIED) for p in topic_data.partition_data]))
            continue
        partitions = [
            (p.index, refused.get((name, int(p.index))) or replicas.append_to_leader(
                name, p.index, p.records, acks, allow_zstd=allow_zstd))
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


def _has_transactional_batch(request: Any) -> bool:
    for topic_data in request.topic_data:
        for p in topic_data.partition_data:
            if p.records is None:
                continue
            try:
                if read_header(p.records).is_transactional:
                    return True
            except BatchError:
                continue
    return False


async def _unverified(ctx: RequestContext, transactional_id: str, request: Any
                      ) -> dict[tuple[str, int], AppendResult]:
    """The partitions whose transactional batch starts the producer's transaction there
    but that its coordinator does not count in it (KIP-890 verification), each with the
    answer to give instead of appending."""
    broker = ctx.broker
    if not broker.settings.get_bool("transaction.partition.verification.enable"):
        return {}
    asked: list[tuple[str, int]] = []
    producer: tuple[int, int] | None = None
    for topic_data in request.topic_data:
        for p in topic_data.partition_data:
            if p.records is None:
                continue
            try:
                header = read_header(p.records)
            except BatchError:
                continue  # the append refuses it
            if not header.is_transactional or header.is_control:
                continue
            partition = broker.partition(topic_data.name, int(p.index))
            if (partition is None or not partition.is_leader
                    or header.producer_id in partition.txns.open):
                continue
            producer = (header.producer_id, header.producer_epoch)
            asked.append((topic_data.name, int(p.index)))
    if producer is None:
        return {}
    errors = await broker.txn_verifier.verify(transactional_id, *producer, asked)
    refused: dict[tuple[str, int], AppendResult] = {}
    for tp, error in errors.items():
        if error == ErrorCode.none:
            continue
        if error == ErrorCode.not_enough_replicas:
            refused[tp] = AppendResult(error, message="the transaction coordinator could not "
                                       "be asked whether the partition is in the transaction")
            continue
        refused[tp] = AppendResult(
            ErrorCode.transaction_abortable if ctx.version >= 11 else error,
            message=f"{tp[0]}-{tp[1]} is not in transaction {transactional_id!r}")
    return refused
