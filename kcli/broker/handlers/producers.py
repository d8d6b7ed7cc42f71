"""InitProducerId: ids for idempotent and transactional producers; DescribeProducers: who
writes where."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.handlers.offsets import leader_partition
from kcli.broker.handlers.transactions import producer_error
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType
from kcli.broker.txn.coordinator import TxnError


@handles(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(ctx: RequestContext, request: Any) -> Any:
    """A fresh producer id at epoch 0 for an idempotent producer; for a transactional
    one, its id's producer id at a bumped epoch, from the transaction coordinator."""
    if request.transactional_id is not None:
        return await _init_transactional(ctx, request)
    # idempotence needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679)
    authorizer = ctx.broker.authorizer
    if authorizer is not None and not ctx.allowed(
            Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME
    ) and not authorizer.authorize_any(ctx.session.principal, ctx.host,
                                       Operation.WRITE, ResourceType.TOPIC):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed,
                    producer_id=-1, producer_epoch=-1)
    producer_id = ctx.broker.allocate_producer_id()
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                producer_id=producer_id, producer_epoch=0)


async def _init_transactional(ctx: RequestContext, request: Any) -> Any:
    transactional_id = request.transactional_id
    if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.transactional_id_authorization_failed,
                    producer_id=-1, producer_epoch=-1)
    try:
        producer_id, epoch = await ctx.broker.transactions.init_producer_id(
            transactional_id, millis(request.transaction_timeout),
            int(getattr(request, "producer_id", -1)), int(getattr(request, "producer_epoch", -1)))
    except TxnError as error:
        return make(ctx.response_class(), throttle_time=0,
                    error_code=producer_error(error.error_code, 4, ctx.version),
                    producer_id=-1, producer_epoch=-1)
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                producer_id=producer_id, producer_epoch=epoch)


@handles(ApiKey.DESCRIBE_PRODUCERS)
async def describe_producers(ctx: RequestContext, request: Any) -> Any:
    """The producers with state on each partition this broker leads: id, epoch, last
    sequence and timestamp, the coordinator epoch of its last marker and where its open
    transaction began (-1: none open) (kafka-transactions.sh describe-producers)."""
    topic_cls = ctx.response_class("TopicResponse")
    partition_cls = ctx.response_class("PartitionResponse")
    state_cls = ctx.response_class("ProducerState")
    topics = []
    for topic in request.topics:
        partitions = []
        allowed = ctx.allowed(Operation.READ, ResourceType.TOPIC, topic.name)
        for index in topic.partition_indexes:
            partition, error_code = leader_partition(ctx, topic.name, int(index)) \
                if allowed else (None, ErrorCode.topic_authorization_failed)
            if partition is None:
                partitions.append(make(partition_cls, partition_index=index,
                                       error_code=error_code, error_message=None,
                                       active_producers=()))
                continue
            producers = tuple(
                make(state_cls, producer_id=producer_id, producer_epoch=entry.epoch,
                     last_sequence=entry.batches[-1].last_seq if entry.batches else -1,
                     last_timestamp=entry.last_timestamp,
                     coordinator_epoch=partition.txns.coordinator_epochs.get(producer_id, -1),
                     current_txn_start_offset=partition.txns.open.get(producer_id, -1))
                for producer_id, entry in sorted(partition.producers.entries.items()))
            partitions.append(make(partition_cls, partition_index=index,
                                   error_code=ErrorCode.none, error_message=None,
                                   active_producers=producers))
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(partitions)))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))
