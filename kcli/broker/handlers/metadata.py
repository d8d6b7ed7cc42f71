"""ApiVersions and Metadata: what clients ask first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.cluster.metadata import InvalidTopicName, TopicState, check_topic_name
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.codec import supported_api_keys
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType

if TYPE_CHECKING:
    from kcli.broker.broker import Broker

UNKNOWN_OPERATIONS = -2147483648
# Without an authorizer Kafka reports every operation a resource type supports.
TOPIC_OPERATIONS = sum(1 << bit for bit in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << bit for bit in (5, 7, 8, 9, 10, 11, 12))


def api_versions_body(response_cls: Any, version_cls: Any, error_code: int) -> Any:
    """An ApiVersions response listing every API served."""
    keys = tuple(
        make(version_cls, api_key=key, min_version=low, max_version=high)
        for key, low, high in supported_api_keys()
    )
    return make(response_cls, error_code=error_code, api_keys=keys, throttle_time=0)


@handles(ApiKey.API_VERSIONS)
async def api_versions(ctx: RequestContext, request: Any) -> Any:
    """The versions of every API this broker serves."""
    return api_versions_body(ctx.response_class(), ctx.response_class("ApiVersion"), ErrorCode.none)


def _partitions(ctx: RequestContext, topic: TopicState) -> tuple[Any, ...]:
    partition_cls = ctx.response_class("MetadataResponsePartition")
    live = ctx.broker.live_broker_ids()
    result = []
    for index, p in enumerate(topic.partitions):
        leader_alive = p.leader in live
        result.append(
            make(
                partition_cls,
                error_code=ErrorCode.none if leader_alive else ErrorCode.leader_not_available,
                partition_index=index,
                leader_id=p.leader if leader_alive else -1,
                leader_epoch=p.leader_epoch,
                replica_nodes=tuple(p.replicas),
                isr_nodes=tuple(p.isr),
                offline_replicas=tuple(r for r in p.replicas if r not in live),
            )
        )
    return tuple(result)


def _unknown_topic_error(name: str) -> int:
    """What Metadata answers for a topic that does not exist (and is not created): as
    Kafka, INVALID_TOPIC_EXCEPTION when no topic could ever have that name."""
    try:
        check_topic_name(name)
    except InvalidTopicName:
        return ErrorCode.invalid_topic_exception
    return ErrorCode.unknown_topic_or_partition


def controller_id(broker: Broker) -> int:
    """The controller if it is live, else this broker: clients send admin requests to the
    controller, and every broker of ours serves them."""
    controller = broker.metadata.controller_id
    return controller if controller in broker.live_broker_ids() else broker.node_id


@handles(ApiKey.METADATA)
async def metadata(ctx: RequestContext, request: Any) -> Any:
    """Brokers, controller and topics; may auto-create requested topics."""
    broker = ctx.broker
    broker.refresh_metadata()
    version = ctx.version
    topic_cls = ctx.response_class("MetadataResponseTopic")
    include_ops = bool(getattr(request, "include_topic_authorized_operations", False))

    def describe(topic: TopicState) -> Any:
        operations = (ctx.authorized_operations(ResourceType.TOPIC, topic.name,
                                                TOPIC_OPERATIONS)
                      if include_ops else UNKNOWN_OPERATIONS)
        return make(
            topic_cls, error_code=ErrorCode.none, name=topic.name, topic_id=topic.topic_id,
            is_internal=topic.internal, partitions=_partitions(ctx, topic),
            topic_authorized_operations=operations,
        )

    def missing(name: str | None, code: int, topic_id: Any = None) -> Any:
        return make(topic_cls, error_code=code, name=name, topic_id=topic_id, is_internal=False,
                    partitions=(), topic_authorized_operations=UNKNOWN_OPERATIONS)

    requested = request.topics
    all_topics = requested is None or (version == 0 and not requested)
    topics = []
    def may(operation: Operation, name: str) -> bool:
        return ctx.allowed(operation, ResourceType.TOPIC, name)

    if all_topics:  # the topics the client may not describe are left out
        topics = [describe(t) for t in broker.metadata.topics.values()
                  if may(Operation.DESCRIBE, t.name)]
    else:
        auto_create = bool(getattr(request, "allow_auto_topic_creation", True)) and (
            broker.settings.get_bool("auto.create.topics.enable")
        )
        for wanted in requested:
            name = wanted.name
            if name is None:
                state = broker.metadata.topic_by_id(wanted.topic_id)
                if state is not None and not may(Operation.DESCRIBE, state.name):
                    topics.append(missing(None, ErrorCode.topic_authorization_failed,
                                          wanted.topic_id))
                    continue
                topics.append(describe(state) if state else
                              missing(None, ErrorCode.unknown_topic_id, wanted.topic_id))
                continue
            if not may(Operation.DESCRIBE, name):
                topics.append(missing(name, ErrorCode.topic_authorization_failed))
                continue
            state = broker.topic(name)
            if state is None and auto_create:
                if not (ctx.allowed(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
                        or may(Operation.CREATE, name)):
                    topics.append(missing(name, ErrorCode.topic_authorization_failed))
                    continue
                try:
                    state = await broker.auto_create_topic(name)
                except ControllerError as error:
                    topics.append(missing(name, error.error_code))
                    continue
            topics.append(describe(state) if state else missing(name, _unknown_topic_error(name)))
    broker_cls = ctx.response_class("MetadataResponseBroker")
    brokers = tuple(
        make(broker_cls, node_id=b.node_id, host=where[0], port=where[1], rack=b.rack)
        for b in broker.live_brokers() if (where := ctx.endpoint(b)) is not None
    )
    return make(
        ctx.response_class(),
        throttle_time=0,
        brokers=brokers,
        cluster_id=broker.metadata.cluster_id,
        controller_id=controller_id(broker),
        topics=tuple(topics),
        cluster_authorized_operations=(
            ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
            if getattr(request, "include_cluster_authorized_operations", False)
            else UNKNOWN_OPERATIONS
        ),
    )
