"""CreateTopics, DeleteTopics and CreatePartitions."""

from __future__ import annotations

from typing import Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.handlers.configs import topic_config_entries
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType


@handles(ApiKey.CREATE_TOPICS)
async def create_topics(ctx: RequestContext, request: Any) -> Any:
    """Create topics with partition counts, replication, assignments and configs."""
    broker = ctx.broker
    result_cls = ctx.response_class("CreatableTopicResult")
    config_cls = ctx.response_class("CreatableTopicConfigs") if ctx.version >= 5 else None
    validate_only = bool(getattr(request, "validate_only", False))
    results = []
    seen: set[str] = set()
    cluster_create = ctx.allowed(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
    for topic in request.topics:
        fields: dict[str, Any] = {"name": topic.name, "topic_id": None, "configs": (),
                                  "num_partitions": -1, "replication_factor": -1}
        if topic.name in seen:
            results.append(make(result_cls, error_code=ErrorCode.invalid_request,
                                error_message=f"topic {topic.name!r} is listed twice", **fields))
            continue
        seen.add(topic.name)
        if not (cluster_create or ctx.allowed(Operation.CREATE, ResourceType.TOPIC, topic.name)):
            results.append(make(result_cls, error_code=ErrorCode.topic_authorization_failed,
                                error_message="Authorization failed.", **fields))
            continue
        assignment = [list(a.broker_ids) for a in
                      sorted(topic.assignments, key=lambda a: a.partition_index)]
        configs = {c.name: c.value for c in topic.configs}
        try:
            state = await broker.create_topic(
                topic.name, int(topic.num_partitions), int(topic.replication_factor), configs,
                assignment or None, validate_only=validate_only,
            )
        except ControllerError as error:
            results.append(make(result_cls, error_code=error.error_code,
                                error_message=error.message, **fields))
            continue
        fields.update(
            topic_id=state.topic_id, num_partitions=len(state.partitions),
            replication_factor=len(state.partitions[0].replicas),
        )
        if config_cls is not None:
            fields["configs"] = tuple(
                make(config_cls, name=e.name, value=e.value, read_only=e.definition.read_only,
                     config_source=int(e.source), is_sensitive=False)
                for e in topic_config_entries(broker, state.configs)
            )
        results.append(make(result_cls, error_code=ErrorCode.none, error_message=None, **fields))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(results))


@handles(ApiKey.DELETE_TOPICS)
async def delete_topics(ctx: RequestContext, request: Any) -> Any:
    """Delete topics by name (or by id from v6)."""
    broker = ctx.broker
    result_cls = ctx.response_class("DeletableTopicResult")
    if ctx.version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for wanted_name, wanted_id in wanted:
        name, topic_id = wanted_name, wanted_id
        error_code: int = ErrorCode.none
        message: str | None = None
        if name is None and topic_id is not None:
            state = broker.metadata.topic_by_id(topic_id)
            name = state.name if state else None
            if state is None:
                error_code, message = ErrorCode.unknown_topic_id, f"no topic with id {topic_id}"
        elif name is not None:
            state = broker.topic(name)
            topic_id = state.topic_id if state else topic_id
        if error_code == ErrorCode.none and name is not None and not ctx.allowed(
                Operation.DELETE, ResourceType.TOPIC, name):
            error_code, message = ErrorCode.topic_authorization_failed, "Authorization failed."
        if error_code == ErrorCode.none and name is not None:
            try:
                await broker.delete_topic(name)
            except ControllerError as error:
                error_code, message = error.error_code, error.message
        results.append(make(result_cls, name=name, topic_id=topic_id, error_code=error_code,
                            error_message=message))
    return make(ctx.response_class(), throttle_time=0, responses=tuple(results))


@handles(ApiKey.CREATE_PARTITIONS)
async def create_partitions(ctx: RequestContext, request: Any) -> Any:
    """Grow topics to a larger partition count."""
    result_cls = ctx.response_class("CreatePartitionsTopicResult")
    results = []
    for topic in request.topics:
        assignment = [list(a.broker_ids) for a in topic.assignments or ()]
        error_code: int = ErrorCode.none
        message: str | None = None
        if not ctx.allowed(Operation.ALTER, ResourceType.TOPIC, topic.name):
            results.append(make(result_cls, name=topic.name,
                                error_code=ErrorCode.topic_authorization_failed,
                                error_message="Authorization failed."))
            continue
        try:
            await ctx.broker.create_partitions(
                topic.name, int(topic.count), assignment or None,
                validate_only=bool(request.validate_only),
            )
        except ControllerError as error:
            error_code, message = error.error_code, error.message
        results.append(make(result_cls, name=topic.name, error_code=error_code,
                            error_message=message))
    return make(ctx.response_class(), throttle_time=0, results=tuple(results))
