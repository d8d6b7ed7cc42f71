"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and brokers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.configs import BROKER_SETTINGS, TOPIC_CONFIGS, ConfigType, ResolvedConfig
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType

if TYPE_CHECKING:
    from kcli.broker.broker import Broker

TOPIC = 2
BROKER = 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def topic_config_entries(broker: Broker, overrides: dict[str, str]) -> list[ResolvedConfig]:
    """Every topic config with its effective value and source."""
    return [broker.settings.resolve_topic(overrides, name) for name in sorted(TOPIC_CONFIGS)]


def _broker_entries(broker: Broker) -> list[ResolvedConfig]:
    return [broker.settings.resolve(name) for name in sorted(BROKER_SETTINGS)]


def _secret(entry: ResolvedConfig) -> bool:
    """Passwords are never given out (Kafka answers null and is_sensitive)."""
    return entry.definition.type is ConfigType.PASSWORD


def _denied(ctx: RequestContext, resource: Any, operation: Operation) -> int | None:
    """The authorization error for a config resource (topic: the topic's ACLs; broker:
    the cluster's), or None when allowed."""
    if resource.resource_type == TOPIC:
        if not ctx.allowed(operation, ResourceType.TOPIC, resource.resource_name):
            return ErrorCode.topic_authorization_failed
    elif resource.resource_type == BROKER and not ctx.allowed(
            operation, ResourceType.CLUSTER, CLUSTER_NAME):
        return ErrorCode.cluster_authorization_failed
    return None


def _describe_one(ctx: RequestContext, resource: Any, include_synonyms: bool,
                  include_docs: bool) -> Any:
    broker = ctx.broker
    result_cls = ctx.response_class("DescribeConfigsResult")
    entry_cls = ctx.response_class("DescribeConfigsResourceResult")
    synonym_cls = ctx.response_class("DescribeConfigsSynonym")
    base = {"resource_type": resource.resource_type, "resource_name": resource.resource_name}
    denied = _denied(ctx, resource, Operation.DESCRIBE_CONFIGS)
    if denied is not None:
        return make(result_cls, error_code=denied, error_message="Authorization failed.",
                    configs=(), **base)
    entries: Iterable[ResolvedConfig]
    if resource.resource_type == TOPIC:
        topic = broker.topic(resource.resource_name)
        if topic is None:
            return make(result_cls, error_code=ErrorCode.unknown_topic_or_partition,
                        error_message=f"topic {resource.resource_name!r} does not exist",
                        configs=(), **base)
        entries = topic_config_entries(broker, topic.configs)
    elif resource.resource_type == BROKER:
        if resource.resource_name not in ("", str(broker.node_id)):
            return make(result_cls, error_code=ErrorCode.invalid_request,
                        error_message=f"this is broker {broker.node_id}, not "
                        f"{resource.resource_name}", configs=(), **base)
        entries = _broker_entries(broker)
    else:
        return make(result_cls, error_code=ErrorCode.invalid_request,
                    error_message=f"resource type {resource.resource_type} has no configs here",
                    configs=(), **base)
    keys = resource.configuration_keys
    if keys is not None:
        wanted = set(keys)
        entries = [e for e in entries if e.name in wanted]
    configs = tuple(
        make(
            entry_cls, name=e.name, value=None if _secret(e) else e.value,
            read_only=e.definition.read_only,
            config_source=int(e.source), is_sensitive=_secret(e),
            is_default=e.source == 5,
            synonyms=tuple(
                make(synonym_cls, name=n, value=None if _secret(e) else v, source=int(s))
                for n, v, s in e.synonyms
            ) if include_synonyms else (),
            config_type=int(e.definition.type),
            documentation=e.definition.doc if include_docs else None,
        )
        for e in entries
    )
    return make(result_cls, error_code=ErrorCode.none, error_message=None, configs=configs, **base)


@handles(ApiKey.DESCRIBE_CONFIGS)
async def describe_configs(ctx: RequestContext, request: Any) -> Any:
    """Effective configs with sources, synonyms, types and documentation."""
    synonyms = bool(getattr(request, "include_synonyms", False))
    docs = bool(getattr(request, "include_documentation", False))
    results = tuple(_describe_one(ctx, r, synonyms, docs) for r in request.resources)
    return make(ctx.response_class(), throttle_time=0, results=results)


async def _alter(ctx: RequestContext, resource: Any, compute: Any, validate_only: bool
                 ) -> tuple[int, str | None]:
    broker = ctx.broker
    denied = _denied(ctx, resource, Operation.ALTER_CONFIGS)
    if denied is not None:
        return denied, "Authorization failed."
    if resource.resource_type == BROKER:
        return ErrorCode.invalid_request, (
            "broker settings are fixed at start; restart the broker with -c to change them"
        )
    if resource.resource_type != TOPIC:
        return ErrorCode.invalid_request, f"resource type {resource.resource_type} is not alterable"
    topic = broker.topic(resource.resource_name)
    if topic is None:
        return ErrorCode.unknown_topic_or_partition, (
            f"topic {resource.resource_name!r} does not exist"
        )
    try:
        new = compute(dict(topic.configs))
        await broker.set_topic_configs(topic.name, new, validate_only=validate_only)
    except ControllerError as error:
        return error.error_code, error.message
    except ValueError as error:
        return ErrorCode.invalid_config, str(error)
    return ErrorCode.none, None


def _response(ctx: RequestContext, results: list[tuple[Any, tuple[int, str | None]]]) -> Any:
    response_cls = ctx.response_class("AlterConfigsResourceResponse")
    return make(
        ctx.response_class(), throttle_time=0,
        responses=tuple(
            make(response_cls, error_code=code, error_message=message,
                 resource_type=r.resource_type, resource_name=r.resource_name)
            for r, (code, message) in results
        ),
    )


@handles(ApiKey.ALTER_CONFIGS)
async def alter_configs(ctx: RequestContext, request: Any) -> Any:
    """Replace a topic's config overrides with exactly the ones given."""
    results = []
    for resource in request.resources:
        replacement = {c.name: c.value for c in resource.configs}
        outcome = await _alter(ctx, resource, lambda _old, r=replacement: r,
                               bool(request.validate_only))
        results.append((resource, outcome))
    return _response(ctx, results)


def _apply_operations(old: dict[str, str], ops: Iterable[Any], broker: Broker) -> dict[str, str]:
    new: dict[str, str] = dict(old)
    for op in ops:
        name, value, kind = op.name, op.value, int(op.config_operation)
        if kind == SET:
            if value is None:
                raise ValueError(f"no value given to set {name}")
            new[name] = value
        elif kind == DELETE:
            new.pop(name, None)
        elif kind in (APPEND, SUBTRACT):
            definition = TOPIC_CONFIGS.get(name)
            if definition is None or definition.type.name != "LIST":
                raise ValueError(f"{name} is not a list config; append/subtract need one")
            current = broker.settings.topic_value(new, name)
            items = [i.strip() for i in current.split(",") if i.strip()]
            given = [i.strip() for i in (value or "").split(",") if i.strip()]
            if kind == APPEND:
                items += [i for i in given if i not in items]
            else:
                items = [i for i in items if i not in given]
            new[name] = ",".join(items)
        else:
            raise ValueError(f"unknown config operation {kind}")
    return new


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    """Set, delete, append to or subtract from single configs."""
    results = []
    for resource in request.resources:
        def compute(old: dict[str, str], r: Any = resource) -> dict[str, str]:
            return _apply_operations(old, r.configs, ctx.broker)

        outcome = await _alter(ctx, resource, compute, bool(request.validate_only))
        results.append((resource, outcome))
    return _response(ctx, results)
