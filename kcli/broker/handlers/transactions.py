"""The transaction APIs (KIP-98): AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
TxnOffsetCommit, WriteTxnMarkers, DescribeTransactions and ListTransactions.
InitProducerId with a transactional id is in ``producers``.

Authorization is Kafka's (``KafkaApis``): WRITE on the transactional id for the
producer's calls, WRITE on each topic added, READ on the group whose offsets are
committed, DESCRIBE on an id to see it, CLUSTER_ACTION for markers (a broker's call).
Clients that negotiated an old version get INVALID_PRODUCER_EPOCH where newer ones get
PRODUCER_FENCED, as Kafka downgrades it.
"""

from __future__ import annotations

import datetime
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.models import OffsetCommitEntry
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType
from kcli.broker.txn.coordinator import TxnError, now_ms
from kcli.broker.txn.marker_writer import write_local_markers
from kcli.broker.txn.metadata import TopicPartition, TxnState

MARKER_TIMEOUT_MS = 10_000


def producer_error(error: int, fenced_from: int, version: int) -> int:
    """PRODUCER_FENCED for clients at ``fenced_from`` or later, else
    INVALID_PRODUCER_EPOCH (which older clients know)."""
    if error == ErrorCode.producer_fenced and version < fenced_from:
        return ErrorCode.invalid_producer_epoch
    return error


def _may_write_txn(ctx: RequestContext, transactional_id: str) -> bool:
    return ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)


# ====================================================================== AddPartitionsToTxn

async def _add_partitions(ctx: RequestContext, transactional_id: str, producer_id: int,
                          epoch: int, topics: Any, verify_only: bool = False
                          ) -> dict[TopicPartition, int]:
    """One transaction's AddPartitionsToTxn: an error per partition. When one partition
    cannot be added, the others get OPERATION_NOT_ATTEMPTED, as in Kafka. A broker's
    verification (v4+, ClusterAction already checked) asks only."""
    wanted = [(t.name, int(p)) for t in topics for p in t.partitions]
    if verify_only:
        return ctx.broker.transactions.verify(transactional_id, producer_id, epoch, wanted)
    if not _may_write_txn(ctx, transactional_id):
        return dict.fromkeys(wanted, int(ErrorCode.transactional_id_authorization_failed))
    refused: dict[TopicPartition, int] = {}
    for topic, index in wanted:
        state = ctx.broker.topic(topic)
        if not ctx.allowed(Operation.WRITE, ResourceType.TOPIC, topic):
            refused[(topic, index)] = ErrorCode.topic_authorization_failed
        elif state is None or not 0 <= index < len(state.partitions):
            refused[(topic, index)] = ErrorCode.unknown_topic_or_partition
    if refused:
        return {tp: refused.get(tp, int(ErrorCode.operation_not_attempted)) for tp in wanted}
    coordinator = ctx.broker.transactions
    try:
        await coordinator.add_partitions(transactional_id, producer_id, epoch, set(wanted))
    except TxnError as error:
        code = producer_error(error.error_code, 2, ctx.version)
        return dict.fromkeys(wanted, code)
    return dict.fromkeys(wanted, int(ErrorCode.none))


def _partition_results(ctx: RequestContext, results: dict[TopicPartition, int]) -> Any:
    topic_cls = ctx.response_class("AddPartitionsToTxnTopicResult")
    partition_cls = ctx.response_class("AddPartitionsToTxnPartitionResult")
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), error in results.items():
        by_topic.setdefault(topic, []).append(
            make(partition_cls, partition_index=index, partition_error_code=error))
    return tuple(make(topic_cls, name=topic, results_by_partition=tuple(parts))
                 for topic, parts in by_topic.items())


@handles(ApiKey.ADD_PARTITIONS_TO_TXN)
async def add_partitions_to_txn(ctx: RequestContext, request: Any) -> Any:
    """Add partitions to a producer's transaction (v0-3), or to several transactions
    at once, or verify they are in them (v4+, between brokers)."""
    if ctx.version < 4:
        results = await _add_partitions(
            ctx, request.v3_and_below_transactional_id, int(request.v3_and_below_producer_id),
            int(request.v3_and_below_producer_epoch), request.v3_and_below_topics)
        return make(ctx.response_class(), throttle_time=0,
                    results_by_transaction=(),
                    results_by_topic_v3_and_below=_partition_results(ctx, results))
    if not ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed, results_by_transaction=())
    result_cls = ctx.response_class("AddPartitionsToTxnResult")
    answers = []
    for txn in request.transactions:
        results = await _add_partitions(ctx, txn.transactional_id, int(txn.producer_id),
                                        int(txn.producer_epoch), txn.topics,
                                        verify_only=bool(txn.verify_only))
        answers.append(make(result_cls, transactional_id=txn.transactional_id,
                            topic_results=_partition_results(ctx, results)))
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                results_by_transaction=tuple(answers))


# ====================================================================== AddOffsetsToTxn, EndTxn

@handles(ApiKey.ADD_OFFSETS_TO_TXN)
async def add_offsets_to_txn(ctx: RequestContext, request: Any) -> Any:
    """Add a group's ``__consumer_offsets`` partition to the transaction, so that its
    TxnOffsetCommit is ended by the transaction's marker."""
    error: int = ErrorCode.none
    if not _may_write_txn(ctx, request.transactional_id):
        error = ErrorCode.transactional_id_authorization_failed
    elif not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        error = ErrorCode.group_authorization_failed
    else:
        coordinator = ctx.broker.transactions
        try:
            partition = coordinator.offsets_partition(request.group_id)
            await coordinator.add_partitions(request.transactional_id, int(request.producer_id),
                                             int(request.producer_epoch), {partition})
        except TxnError as failure:
            error = producer_error(failure.error_code, 2, ctx.version)
        except CoordinatorError as failure:  # the offsets topic could not be created
            error = failure.error_code
    return make(ctx.response_class(), throttle_time=0, error_code=error)


@handles(ApiKey.END_TXN)
async def end_txn(ctx: RequestContext, request: Any) -> Any:
    """Commit or abort the producer's transaction."""
    error: int = ErrorCode.none
    if not _may_write_txn(ctx, request.transactional_id):
        error = ErrorCode.transactional_id_authorization_failed
    else:
        try:
            await ctx.broker.transactions.end_txn(
                request.transactional_id, int(request.producer_id),
                int(request.producer_epoch), bool(request.committed))
        except TxnError as failure:
            error = producer_error(failure.error_code, 2, ctx.version)
    return make(ctx.response_class(), throttle_time=0, error_code=error)


# ====================================================================== TxnOffsetCommit

@handles(ApiKey.TXN_OFFSET_COMMIT)
async def txn_offset_commit(ctx: RequestContext, request: Any) -> Any:
    """Offsets committed inside a transaction: held until its marker."""
    topic_cls = ctx.response_class("TxnOffsetCommitResponseTopic")
    partition_cls = ctx.response_class("TxnOffsetCommitResponsePartition")
    refused: int = ErrorCode.none
    if not _may_write_txn(ctx, request.transactional_id):
        refused = ErrorCode.transactional_id_authorization_failed
    elif not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        refused = ErrorCode.group_authorization_failed
    entries: list[OffsetCommitEntry] = []
    slots: list[tuple[str, list[tuple[int, int | None, int]]]] = []
    for topic in request.topics:
        topic_refused = refused or (
            ErrorCode.none if ctx.allowed(Operation.READ, ResourceType.TOPIC, topic.name)
            else ErrorCode.topic_authorization_failed)
        parts: list[tuple[int, int | None, int]] = []
        for p in topic.partitions:
            if topic_refused:
                parts.append((int(p.partition_index), None, topic_refused))
                continue
            parts.append((int(p.partition_index), len(entries), ErrorCode.none))
            entries.append(OffsetCommitEntry(
                topic.name, int(p.partition_index), int(p.committed_offset),
                int(getattr(p, "committed_leader_epoch", -1)), p.committed_metadata))
        slots.append((topic.name, parts))
    codes = [] if not entries else await ctx.broker.groups.txn_commit_offsets(
        group_id=request.group_id, producer_id=int(request.producer_id),
        producer_epoch=int(request.producer_epoch),
        generation_id=int(getattr(request, "generation_id", -1)),
        member_id=getattr(request, "member_id", "") or "",
        group_instance_id=getattr(request, "group_instance_id", None), entries=entries)
    topics = tuple(
        make(topic_cls, name=name, partitions=tuple(
            make(partition_cls, partition_index=index,
                 error_code=codes[entry] if entry is not None else error)
            for index, entry, error in parts))
        for name, parts in slots)
    return make(ctx.response_class(), throttle_time=0, topics=topics)


# ====================================================================== WriteTxnMarkers

@handles(ApiKey.WRITE_TXN_MARKERS)
async def write_txn_markers(ctx: RequestContext, request: Any) -> Any:
    """A coordinator's markers for partitions this broker leads."""
    result_cls = ctx.response_class("WritableTxnMarkerResult")
    topic_cls = ctx.response_class("WritableTxnMarkerTopicResult")
    partition_cls = ctx.response_class("WritableTxnMarkerPartitionResult")
    allowed = ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
    answers = []
    for marker in request.markers:
        wanted = [(t.name, int(p)) for t in marker.topics for p in t.partition_indexes]
        if allowed:
            errors = await write_local_markers(
                ctx.broker, int(marker.producer_id), int(marker.producer_epoch),
                bool(marker.transaction_result), int(marker.coordinator_epoch), wanted,
                MARKER_TIMEOUT_MS)
        else:
            errors = dict.fromkeys(wanted, int(ErrorCode.cluster_authorization_failed))
        by_topic: dict[str, list[Any]] = {}
        for (topic, index) in wanted:
            by_topic.setdefault(topic, []).append(
                make(partition_cls, partition_index=index, error_code=errors[(topic, index)]))
        answers.append(make(result_cls, producer_id=marker.producer_id, topics=tuple(
            make(topic_cls, name=topic, partitions=tuple(parts))
            for topic, parts in by_topic.items())))
    return make(ctx.response_class(), markers=tuple(answers))


# ====================================================================== describing

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(ms: int) -> datetime.datetime:
    """A non-nullable timestamp field, -1 included (kio writes a datetime's ms)."""
    return _EPOCH + datetime.timedelta(milliseconds=ms)


@handles(ApiKey.DESCRIBE_TRANSACTIONS)
async def describe_transactions(ctx: RequestContext, request: Any) -> Any:
    """State, partitions, timeout and start of each transactional id asked."""
    state_cls = ctx.response_class("TransactionState")
    topic_cls = ctx.response_class("TopicData")
    answers = []
    for transactional_id in request.transactional_ids:
        fields: dict[str, Any] = {
            "transactional_id": transactional_id, "transaction_state": "",
            "transaction_timeout": 0, "transaction_start_time": _timestamp(-1), "producer_id": -1,
            "producer_epoch": -1, "topics": ()}
        if not ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID,
                           transactional_id):
            answers.append(make(
                state_cls, error_code=ErrorCode.transactional_id_authorization_failed, **fields))
            continue
        try:
            meta = ctx.broker.transactions.describe(transactional_id)
        except TxnError as error:
            answers.append(make(state_cls, error_code=error.error_code, **fields))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(meta.partitions):
            if ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic):
                by_topic.setdefault(topic, []).append(index)
        fields.update(
            transaction_state=meta.state.display, transaction_timeout=meta.timeout_ms,
            transaction_start_time=_timestamp(meta.start_ms), producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            topics=tuple(make(topic_cls, topic=topic, partitions=tuple(indexes))
                         for topic, indexes in by_topic.items()))
        answers.append(make(state_cls, error_code=ErrorCode.none, **fields))
    return make(ctx.response_class(), throttle_time=0, transaction_states=tuple(answers))


@handles(ApiKey.LIST_TRANSACTIONS)
async def list_transactions(ctx: RequestContext, request: Any) -> Any:
    """The transactional ids this broker coordinates, filtered by state, producer id
    and (v1+) how long their transaction has been open."""
    state_cls = ctx.response_class("TransactionState")
    states = set()
    unknown = []
    for name in request.state_filters:
        state = TxnState.by_name(name)
        if state is None:
            unknown.append(name)
        else:
            states.add(state)
    producer_ids = {int(p) for p in request.producer_id_filters}
    duration = int(getattr(request, "duration_filter", -1))
    now = now_ms()
    listed = []
    for meta in ctx.broker.transactions.transactions():
        if states and meta.state not in states:
            continue
        if producer_ids and meta.producer_id not in producer_ids:
            continue
        if duration >= 0 and (meta.state is not TxnState.ONGOING
                              or now - meta.start_ms < duration):
            continue
        if not ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID,
                           meta.transactional_id):
            continue
        listed.append(make(state_cls, transactional_id=meta.transactional_id,
                           producer_id=meta.producer_id, transaction_state=meta.state.display))
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                unknown_state_filters=tuple(unknown), transaction_states=tuple(listed))
