"""The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat and
ConsumerGroupDescribe. The semantics live in ``kcli.broker.group.consumer_protocol``."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.group.assignors import Assignment
from kcli.broker.group.consumer_protocol import HeartbeatRequest
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.handlers.groups import GROUP_OPERATIONS, UNKNOWN_OPERATIONS, client_host
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import Operation, ResourceType

MEMBER_TYPE_CLASSIC = 0
MEMBER_TYPE_CONSUMER = 1
"""ConsumerGroupDescribe v1's MemberType: JoinGroup (classic) or heartbeat members."""


@handles(ApiKey.CONSUMER_GROUP_HEARTBEAT)
async def consumer_group_heartbeat(ctx: RequestContext, request: Any) -> Any:
    """Join, stay in, reconcile with or leave a consumer protocol group."""
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.group_authorization_failed,
                    error_message="Authorization failed.", member_id=request.member_id,
                    member_epoch=-1, heartbeat_interval=0, assignment=None)
    owned = None
    if request.topic_partitions is not None:
        owned = [(tp.topic_id, [int(p) for p in tp.partitions])
                 for tp in request.topic_partitions if tp.topic_id is not None]
    answer = await ctx.broker.groups.consumer_heartbeat(HeartbeatRequest(
        group_id=request.group_id, member_id=request.member_id,
        member_epoch=int(request.member_epoch), client_id=ctx.header.client_id or "",
        client_host=client_host(ctx), instance_id=request.instance_id,
        rack_id=request.rack_id, rebalance_timeout_ms=millis(request.rebalance_timeout),
        subscribed_topic_names=(tuple(request.subscribed_topic_names)
                                if request.subscribed_topic_names is not None else None),
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor, owned=owned,
    ))
    assignment = None
    if answer.assignment is not None:
        partitions_cls = ctx.response_class("TopicPartitions")
        assignment = make(ctx.response_class("Assignment"), topic_partitions=tuple(
            make(partitions_cls, topic_id=topic_id, partitions=tuple(partitions))
            for topic_id, partitions in answer.assignment))
    return make(
        ctx.response_class(), throttle_time=0, error_code=answer.error,
        error_message=answer.message, member_id=answer.member_id,
        member_epoch=answer.member_epoch, heartbeat_interval=answer.heartbeat_interval_ms,
        assignment=assignment,
    )


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE)
async def consumer_group_describe(ctx: RequestContext, request: Any) -> Any:
    """Consumer protocol groups with their epochs, assignor, members and assignments."""
    ops = bool(request.include_authorized_operations)
    group_cls = ctx.response_class("DescribedGroup")
    member_cls = ctx.response_class("Member")
    assignment_cls = ctx.response_class("Assignment")
    groups = []
    allowed = [g for g in request.group_ids
               if ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, g)]
    for denied in (g for g in request.group_ids if g not in allowed):
        groups.append(make(group_cls, error_code=ErrorCode.group_authorization_failed,
                           error_message="Authorization failed.", group_id=denied,
                           group_state="", group_epoch=-1, assignment_epoch=-1,
                           assignor_name="", members=(),
                           authorized_operations=UNKNOWN_OPERATIONS))
    for d in ctx.broker.groups.describe_consumer_groups(allowed):
        members = tuple(
            make(member_cls, member_id=m.member.member_id, instance_id=m.member.instance_id,
                 rack_id=m.member.rack_id, member_epoch=m.member.member_epoch,
                 client_id=m.member.client_id, client_host=m.member.client_host,
                 subscribed_topic_names=m.member.subscribed_topics,
                 subscribed_topic_regex=m.member.subscribed_regex,
                 assignment=make(assignment_cls, topic_partitions=_partitions(
                     ctx, m.member.assigned)),
                 target_assignment=make(assignment_cls, topic_partitions=_partitions(
                     ctx, m.target)),
                 member_type=MEMBER_TYPE_CLASSIC if m.member.classic else MEMBER_TYPE_CONSUMER)
            for m in d.members)
        groups.append(make(
            group_cls, error_code=d.error, error_message=d.message, group_id=d.group_id,
            group_state=d.state, group_epoch=d.group_epoch, assignment_epoch=d.assignment_epoch,
            assignor_name=d.assignor, members=members,
            authorized_operations=ctx.authorized_operations(
                ResourceType.GROUP, d.group_id, GROUP_OPERATIONS) if ops else UNKNOWN_OPERATIONS))
    return make(ctx.response_class(), throttle_time=0, groups=tuple(groups))


def _partitions(ctx: RequestContext, assignment: Assignment) -> tuple[Any, ...]:
    """An assignment by topic name as ConsumerGroupDescribe gives it: id, name, partitions
    (a topic deleted meanwhile is left out)."""
    cls = ctx.response_class("TopicPartitions")
    result = []
    for name, partitions in sorted(assignment.items()):
        topic = ctx.broker.topic(name)
        if topic is not None:
            result.append(make(cls, topic_id=topic.topic_id, topic_name=name,
                               partitions=tuple(sorted(partitions))))
    return tuple(result)
