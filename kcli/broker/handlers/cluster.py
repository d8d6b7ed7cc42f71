"""DescribeCluster and DescribeLogDirs."""

from __future__ import annotations

import shutil
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.handlers.metadata import CLUSTER_OPERATIONS, UNKNOWN_OPERATIONS, controller_id
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType


@handles(ApiKey.DESCRIBE_CLUSTER)
async def describe_cluster(ctx: RequestContext, request: Any) -> Any:
    """Cluster id, controller and live brokers."""
    broker = ctx.broker
    broker.refresh_metadata()
    broker_cls = ctx.response_class("DescribeClusterBroker")
    brokers = tuple(
        make(broker_cls, broker_id=b.node_id, host=where[0], port=where[1], rack=b.rack)
        for b in broker.live_brokers() if (where := ctx.endpoint(b)) is not None
    )
    endpoint_type = int(getattr(request, "endpoint_type", 1))
    if endpoint_type != 1:  # 1 = brokers; 2 = controllers, which only KRaft controllers serve
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.mismatched_endpoint_type,
                    error_message="only broker endpoints are served", endpoint_type=endpoint_type,
                    cluster_id=broker.metadata.cluster_id, controller_id=-1, brokers=(),
                    cluster_authorized_operations=UNKNOWN_OPERATIONS)
    return make(
        ctx.response_class(),
        throttle_time=0,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.metadata.cluster_id,
        controller_id=controller_id(broker),
        brokers=brokers,
        cluster_authorized_operations=(
            ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
            if request.include_cluster_authorized_operations else UNKNOWN_OPERATIONS
        ),
    )


@handles(ApiKey.DESCRIBE_LOG_DIRS)
async def describe_log_dirs(ctx: RequestContext, request: Any) -> Any:
    """Sizes of the partitions in this broker's one log directory."""
    broker = ctx.broker
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed, results=())
    partition_cls = ctx.response_class("DescribeLogDirsPartition")
    topic_cls = ctx.response_class("DescribeLogDirsTopic")
    wanted: dict[str, set[int] | None] | None = None
    if request.topics is not None:
        wanted = {t.topic: set(t.partitions) for t in request.topics}
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), partition in sorted(broker.partitions.items()):
        if wanted is not None:
            indexes = wanted.get(topic)
            if indexes is None or index not in indexes:
                continue
        lag = max(0, partition.high_watermark - partition.log.log_end_offset)
        by_topic.setdefault(topic, []).append(
            make(partition_cls, partition_index=index, partition_size=partition.log.size_bytes(),
                 offset_lag=lag, is_future_key=False)
        )
    topics = tuple(make(topic_cls, name=name, partitions=tuple(parts))
                   for name, parts in by_topic.items())
    usage = shutil.disk_usage(broker.data_dir)
    result = make(
        ctx.response_class("DescribeLogDirsResult"), error_code=ErrorCode.none,
        log_dir=str(broker.data_dir.resolve()), topics=topics,
        total_bytes=usage.total, usable_bytes=usage.free,
    )
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none, results=(result,))
