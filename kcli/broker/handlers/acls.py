"""DescribeAcls, CreateAcls and DeleteAcls: ACLs in the cluster metadata, shared by every
broker. Describing needs CLUSTER DESCRIBE and changing CLUSTER ALTER; without an
authorizer every one answers SECURITY_DISABLED, as Kafka does."""

from __future__ import annotations

from typing import Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.cluster.metadata import ClusterMetadata
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import (
    CLUSTER_NAME,
    Acl,
    AclFilter,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

_DISABLED = "No Authorizer is configured (authorizer.class.name)"


def _enum(kind: Any, value: int) -> Any:
    try:
        return kind(value)
    except ValueError:
        return kind(0)  # UNKNOWN: refused by the checks


def _filter(request: Any, version: int) -> AclFilter:
    return AclFilter(
        _enum(ResourceType, request.resource_type_filter), request.resource_name_filter,
        _enum(PatternType, request.pattern_type_filter) if version >= 1 else PatternType.LITERAL,
        request.principal_filter, request.host_filter, _enum(Operation, request.operation),
        _enum(Permission, request.permission_type))


def _acls(ctx: RequestContext) -> list[Acl]:
    ctx.broker.refresh_metadata()
    return [Acl.from_json(doc) for doc in ctx.broker.metadata.acls]


@handles(ApiKey.DESCRIBE_ACLS)
async def describe_acls(ctx: RequestContext, request: Any) -> Any:
    """The ACLs one filter selects, grouped by resource pattern."""
    cls = ctx.response_class()
    if ctx.broker.authorizer is None:
        return make(cls, throttle_time=0, error_code=ErrorCode.security_disabled,
                    error_message=_DISABLED, resources=())
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(cls, throttle_time=0, error_code=ErrorCode.cluster_authorization_failed,
                    error_message="Cluster DESCRIBE is needed to describe ACLs", resources=())
    wanted = _filter(request, ctx.version)
    grouped: dict[tuple[ResourceType, str, PatternType], list[Acl]] = {}
    for acl in _acls(ctx):
        if wanted.matches(acl):
            grouped.setdefault((acl.resource_type, acl.name, acl.pattern), []).append(acl)
    description_cls = ctx.response_class("AclDescription")
    resource_cls = ctx.response_class("DescribeAclsResource")
    resources = tuple(
        make(resource_cls, resource_type=int(kind), resource_name=name,
             pattern_type=int(pattern), acls=tuple(
                 make(description_cls, principal=a.principal, host=a.host,
                      operation=int(a.operation), permission_type=int(a.permission))
                 for a in acls))
        for (kind, name, pattern), acls in sorted(grouped.items()))
    return make(cls, throttle_time=0, error_code=ErrorCode.none, error_message=None,
                resources=resources)


@handles(ApiKey.CREATE_ACLS)
async def create_acls(ctx: RequestContext, request: Any) -> Any:
    """Add ACLs (one that exists already is kept once)."""
    result_cls = ctx.response_class("AclCreationResult")

    def answer(code: int, message: str | None) -> Any:
        return make(result_cls, error_code=code, error_message=message)

    if ctx.broker.authorizer is None:
        results = [answer(ErrorCode.security_disabled, _DISABLED) for _ in request.creations]
        return make(ctx.response_class(), throttle_time=0, results=tuple(results))
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        results = [answer(ErrorCode.cluster_authorization_failed,
                          "Cluster ALTER is needed to create ACLs") for _ in request.creations]
        return make(ctx.response_class(), throttle_time=0, results=tuple(results))
    outcomes: list[tuple[int, str | None]] = []
    valid: list[Acl] = []
    for creation in request.creations:
        acl = Acl(_enum(ResourceType, creation.resource_type), creation.resource_name,
                  _enum(PatternType, creation.resource_pattern_type)
                  if ctx.version >= 1 else PatternType.LITERAL,
                  creation.principal, creation.host, _enum(Operation, creation.operation),
                  _enum(Permission, creation.permission_type))
        try:
            acl.check()
        except InvalidAcl as error:
            outcomes.append((ErrorCode.invalid_request, str(error)))
            continue
        valid.append(acl)
        outcomes.append((ErrorCode.none, None))

    def add(metadata: ClusterMetadata) -> None:
        for acl in valid:
            doc = acl.to_json()
            if doc not in metadata.acls:
                metadata.acls.append(doc)

    if valid:
        try:
            ctx.broker.controller.transact(add)
        except ControllerError as error:
            outcomes = [(error.error_code, error.message) if code == 0 else (code, message)
                        for code, message in outcomes]
    return make(ctx.response_class(), throttle_time=0,
                results=tuple(answer(code, message) for code, message in outcomes))


@handles(ApiKey.DELETE_ACLS)
async def delete_acls(ctx: RequestContext, request: Any) -> Any:
    """Remove every ACL each filter selects; says which."""
    result_cls = ctx.response_class("DeleteAclsFilterResult")
    matching_cls = ctx.response_class("DeleteAclsMatchingAcl")

    def failed(code: int, message: str) -> Any:
        return make(ctx.response_class(), throttle_time=0, filter_results=tuple(
            make(result_cls, error_code=code, error_message=message, matching_acls=())
            for _ in request.filters))

    if ctx.broker.authorizer is None:
        return failed(ErrorCode.security_disabled, _DISABLED)
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        return failed(ErrorCode.cluster_authorization_failed,
                      "Cluster ALTER is needed to delete ACLs")
    filters = [_filter(f, ctx.version) for f in request.filters]

    def remove(metadata: ClusterMetadata) -> list[list[Acl]]:
        acls = [Acl.from_json(doc) for doc in metadata.acls]
        removed = [[acl for acl in acls if wanted.matches(acl)] for wanted in filters]
        gone = {acl for group in removed for acl in group}
        metadata.acls = [acl.to_json() for acl in acls if acl not in gone]
        return removed

    try:
        removed = ctx.broker.controller.transact(remove)
    except ControllerError as error:
        return failed(error.error_code, error.message)
    return make(ctx.response_class(), throttle_time=0, filter_results=tuple(
        make(result_cls, error_code=ErrorCode.none, error_message=None, matching_acls=tuple(
            make(matching_cls, error_code=ErrorCode.none, error_message=None,
                 resource_type=int(a.resource_type), resource_name=a.name,
                 pattern_type=int(a.pattern), principal=a.principal, host=a.host,
                 operation=int(a.operation), permission_type=int(a.permission))
            for a in group))
        for group in removed))
