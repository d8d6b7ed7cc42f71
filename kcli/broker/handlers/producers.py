"""InitProducerId: ids for idempotent producers; DescribeProducers: who writes where."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.handlers.offsets import leader_partition
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType


@handles(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(ctx: RequestContext, request: Any) -> Any:
    """A fresh producer id at epoch 0 (as Kafka does for every non-transactional producer)."""
    if request.transactional_id is not None:
        # Transactions are not served (and not advertised); say so rather than pretend.
        return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.invalid_request,
                    producer_id=-1, producer_epoch=-1)
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


@handles(ApiKey.DESCRIBE_PRODUCERS)
async def describe_producers(ctx: RequestContext, request: Any) -> Any:
    """The producers with state on each partition this broker leads: id, epoch, last
    sequence and timestamp (kafka-transactions.sh describe-producers). No transaction
    is ever open here, so the coordinator epoch and transaction start are -1."""
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
                     last_timestamp=entry.last_timestamp, coordinator_epoch=-1,
                     current_txn_start_offset=-1)
                for producer_id, entry in sorted(partition.producers.entries.items()))
            partitions.append(make(partition_cls, partition_index=index,
                                   error_code=ErrorCode.none, error_message=None,
                                   active_producers=producers))
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(partitions)))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))
