"""The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups, DeleteGroups.

Each handler turns a request of any version into a call on the group coordinator and
its answer into that version's response; the semantics live in ``kcli.broker.group``.
JoinGroup and SyncGroup await the rebalance: the connection answers its requests in
order, so nothing else is read from it meanwhile, as with Kafka.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.models import FetchedOffset, OffsetCommitEntry
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType
from kcli.broker.txn.coordinator import TxnError

log = logging.getLogger("kcli.broker.group")

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
UNKNOWN_OPERATIONS = -2147483648
# Without an authorizer Kafka reports every operation a group supports: READ, DELETE, DESCRIBE.
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


def client_host(ctx: RequestContext) -> str:
    """The member's host as Kafka reports it: ``/`` and the address, without the port."""
    return f"/{ctx.host}"


# ====================================================================== FindCoordinator


def _may(ctx: RequestContext, operation: Operation, group_id: str | None) -> bool:
    """Whether the principal may do ``operation`` on the group (ACLs)."""
    return ctx.allowed(operation, ResourceType.GROUP, group_id or "")


def _may_topic(ctx: RequestContext, operation: Operation, name: str | None) -> bool:
    return name is None or ctx.allowed(operation, ResourceType.TOPIC, name)


_GROUP_DENIED = ErrorCode.group_authorization_failed


def _coordinator(ctx: RequestContext, key: str, key_type: int) -> tuple[int, str | None, Any]:
    """(error, message, broker endpoint or None) for one coordinator key."""
    if key_type == KEY_TYPE_TRANSACTION:
        if not ctx.allowed(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
            return (ErrorCode.transactional_id_authorization_failed,
                    f"not authorized to describe transactional id {key}", None)
        try:
            return ErrorCode.none, None, ctx.broker.transactions.find_coordinator(key)
        except TxnError as error:
            return error.error_code, str(error), None
    if key_type != KEY_TYPE_GROUP:
        return (ErrorCode.invalid_request,
                "only group and transaction coordinators are served (no share groups)", None)
    if not _may(ctx, Operation.DESCRIBE, key):
        return _GROUP_DENIED, f"not authorized to describe group {key}", None
    try:
        return ErrorCode.none, None, ctx.broker.groups.find_coordinator(key)
    except CoordinatorError as error:
        return error.error_code, str(error), None


@handles(ApiKey.FIND_COORDINATOR)
async def find_coordinator(ctx: RequestContext, request: Any) -> Any:
    """The broker coordinating a group: the leader of its ``__consumer_offsets`` partition."""
    ctx.broker.refresh_metadata()  # the coordinator moves with leadership
    if ctx.version >= 4:
        coordinator_cls = ctx.response_class("Coordinator")
        answers = []
        for key in request.coordinator_keys:
            error, message, info = _coordinator(ctx, key, int(request.key_type))
            host, port = ctx.endpoint(info) or ("", -1) if info else ("", -1)
            answers.append(make(
                coordinator_cls, key=key, error_code=error, error_message=message,
                node_id=info.node_id if info else -1, host=host, port=port,
            ))
        return make(ctx.response_class(), throttle_time=0, coordinators=tuple(answers))
    key_type = int(getattr(request, "key_type", KEY_TYPE_GROUP))
    error, message, info = _coordinator(ctx, request.key, key_type)
    host, port = ctx.endpoint(info) or ("", -1) if info else ("", -1)
    return make(
        ctx.response_class(), throttle_time=0, error_code=error, error_message=message,
        node_id=info.node_id if info else -1, host=host, port=port,
    )


# ====================================================================== membership


@handles(ApiKey.JOIN_GROUP)
async def join_group(ctx: RequestContext, request: Any) -> Any:
    """Join (or rejoin) a group; answered when the rebalance reaches the sync phase."""
    if not _may(ctx, Operation.READ, request.group_id):
        return make(ctx.response_class(), throttle_time=0, error_code=_GROUP_DENIED,
                    generation_id=-1, protocol_type=None,
                    protocol_name=None if ctx.version >= 7 else "", leader="",
                    skip_assignment=False, member_id=request.member_id or "", members=())
    session_timeout = millis(request.session_timeout)
    rebalance_timeout = (millis(request.rebalance_timeout) if ctx.version >= 1
                         else session_timeout)
    future = ctx.broker.groups.join_group(
        group_id=request.group_id,
        member_id=request.member_id or "",
        group_instance_id=getattr(request, "group_instance_id", None),
        session_timeout_ms=session_timeout,
        rebalance_timeout_ms=rebalance_timeout,
        protocol_type=request.protocol_type or "",
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        client_id=ctx.header.client_id,
        client_host=client_host(ctx),
        require_known_member_id=ctx.version >= 4,
        supports_skip_assignment=ctx.version >= 9,
        reason=getattr(request, "reason", None),
    )
    result = await future
    member_cls = ctx.response_class("JoinGroupResponseMember")
    nullable = ctx.version >= 7  # protocol type and name are nullable from v7
    return make(
        ctx.response_class(),
        throttle_time=0,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=(result.protocol_name if nullable or result.protocol_name is not None
                       else ""),
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=tuple(
            make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                 metadata=m.metadata)
            for m in result.members
        ),
    )


@handles(ApiKey.SYNC_GROUP)
async def sync_group(ctx: RequestContext, request: Any) -> Any:
    """Hand in (leader) or pick up (everyone) the assignment of the new generation."""
    if not _may(ctx, Operation.READ, request.group_id):
        return make(ctx.response_class(), throttle_time=0, error_code=_GROUP_DENIED,
                    protocol_type=None, protocol_name=None, assignment=b"")
    future = ctx.broker.groups.sync_group(
        group_id=request.group_id,
        generation_id=int(request.generation_id),
        member_id=request.member_id or "",
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments=[(a.member_id, bytes(a.assignment)) for a in request.assignments],
    )
    result = await future
    return make(ctx.response_class(), throttle_time=0, error_code=result.error,
                protocol_type=result.protocol_type, protocol_name=result.protocol_name,
                assignment=result.assignment)


@handles(ApiKey.HEARTBEAT)
async def heartbeat(ctx: RequestContext, request: Any) -> Any:
    """Keep a member's session; REBALANCE_IN_PROGRESS tells it to rejoin."""
    if not _may(ctx, Operation.READ, request.group_id):
        return make(ctx.response_class(), throttle_time=0, error_code=_GROUP_DENIED)
    error = ctx.broker.groups.heartbeat(
        group_id=request.group_id,
        generation_id=int(request.generation_id),
        member_id=request.member_id or "",
        group_instance_id=getattr(request, "group_instance_id", None),
    )
    return make(ctx.response_class(), throttle_time=0, error_code=error)


@handles(ApiKey.LEAVE_GROUP)
async def leave_group(ctx: RequestContext, request: Any) -> Any:
    """One member leaves (v0-2), or several by member or instance id (v3+)."""
    if not _may(ctx, Operation.READ, request.group_id):
        return make(ctx.response_class(), throttle_time=0, error_code=_GROUP_DENIED,
                    members=())
    if ctx.version >= 3:
        wanted = [(m.member_id or "", m.group_instance_id) for m in request.members]
    else:
        wanted = [(request.member_id or "", None)]
    error, results = ctx.broker.groups.leave_group(group_id=request.group_id, members=wanted)
    if ctx.version < 3:
        if error == ErrorCode.none and results:
            error = results[0][2]
        return make(ctx.response_class(), throttle_time=0, error_code=error)
    member_cls = ctx.response_class("MemberResponse")
    return make(
        ctx.response_class(), throttle_time=0, error_code=error,
        members=tuple(make(member_cls, member_id=member_id, group_instance_id=instance_id,
                           error_code=code) for member_id, instance_id, code in results),
    )


# ====================================================================== offsets


def _topic_name(ctx: RequestContext, topic: Any) -> tuple[str | None, uuid.UUID | None]:
    """A request topic's (name, id): v10 of OffsetCommit/OffsetFetch names topics by id."""
    topic_id = getattr(topic, "topic_id", None)
    if ctx.version >= 10:
        state = ctx.broker.metadata.topic_by_id(topic_id) if topic_id is not None else None
        return (state.name if state else None), topic_id
    return topic.name, None


@handles(ApiKey.OFFSET_COMMIT)
async def offset_commit(ctx: RequestContext, request: Any) -> Any:
    """Commit offsets, as a group member (generation and member checked) or without
    membership (generation -1, empty group)."""
    entries: list[OffsetCommitEntry] = []
    # per topic: (partition, index of its entry, or the error answered instead)
    plan: list[tuple[Any, list[tuple[int, int | None, int]]]] = []
    group_allowed = _may(ctx, Operation.READ, request.group_id)
    for topic in request.topics:
        name, _topic_id = _topic_name(ctx, topic)
        refused = (ErrorCode.unknown_topic_id if name is None
                   else _GROUP_DENIED if not group_allowed
                   else ErrorCode.none if _may_topic(ctx, Operation.READ, name)
                   else ErrorCode.topic_authorization_failed)
        slots: list[tuple[int, int | None, int]] = []
        for p in topic.partitions:
            if name is None or refused != ErrorCode.none:
                slots.append((int(p.partition_index), None, refused))
                continue
            slots.append((int(p.partition_index), len(entries), ErrorCode.none))
            entries.append(OffsetCommitEntry(
                name, int(p.partition_index), int(p.committed_offset),
                int(getattr(p, "committed_leader_epoch", -1)), p.committed_metadata,
            ))
        plan.append((topic, slots))
    retention = getattr(request, "retention_time", None)
    codes = [] if not entries else await ctx.broker.groups.commit_offsets(
        group_id=request.group_id,
        generation_id=int(request.generation_id_or_member_epoch),
        member_id=request.member_id or "",
        group_instance_id=getattr(request, "group_instance_id", None),
        entries=entries,
        retention_ms=millis(retention) if retention is not None else -1,
        api_version=ctx.version,
    )
    partition_cls = ctx.response_class("OffsetCommitResponsePartition")
    topic_cls = ctx.response_class("OffsetCommitResponseTopic")
    topics = []
    for topic, slots in plan:
        answers = tuple(
            make(partition_cls, partition_index=index,
                 error_code=codes[entry] if entry is not None else refused)
            for index, entry, refused in slots
        )
        topics.append(make(topic_cls, name=getattr(topic, "name", None),
                           topic_id=getattr(topic, "topic_id", None), partitions=answers))
    return make(ctx.response_class(), throttle_time=0, topics=tuple(topics))


def _fetch_group(ctx: RequestContext, group_id: str | None, topics: Sequence[Any] | None,
                 member: tuple[str | None, int] = (None, -1), require_stable: bool = False,
                 ) -> tuple[int, list[tuple[str | None, uuid.UUID | None, list[FetchedOffset]]]]:
    """One group's offsets as (error, [(name, topic id, offsets)]) in request order;
    ``member`` is the asking member's id and epoch (v9+, consumer protocol groups)."""
    coordinator = ctx.broker.groups
    if not _may(ctx, Operation.DESCRIBE, group_id):
        return _GROUP_DENIED, []
    if topics is None:
        error, found = coordinator.fetch_offsets(group_id, None, *member, require_stable)
        result: list[tuple[str | None, uuid.UUID | None, list[FetchedOffset]]] = []
        for name, offsets in found:
            state = ctx.broker.topic(name)
            if ctx.version >= 10 and state is None:
                continue  # cannot be named by id any more
            if not _may_topic(ctx, Operation.DESCRIBE, name):
                continue  # as Kafka: topics the client may not describe are left out
            result.append((name, state.topic_id if state else None, offsets))
        return error, result
    named: list[tuple[str, Sequence[int]]] = []
    plan: list[tuple[str | None, uuid.UUID | None, list[int]]] = []
    for topic in topics:
        topic_name, topic_id = _topic_name(ctx, topic)
        indexes = [int(p) for p in topic.partition_indexes]
        plan.append((topic_name, topic_id, indexes))
        if topic_name is not None:
            named.append((topic_name, indexes))
    error, found = coordinator.fetch_offsets(group_id, named, *member, require_stable)
    by_name = iter(found)
    result = []
    for topic_name, topic_id, indexes in plan:
        if topic_name is None:
            result.append((None, topic_id,
                           [FetchedOffset(p, -1, error=ErrorCode.unknown_topic_id)
                            for p in indexes]))
        elif error != ErrorCode.none:
            result.append((topic_name, topic_id,
                           [FetchedOffset(p, -1, error=error) for p in indexes]))
        else:
            offsets = next(by_name)[1]
            if not _may_topic(ctx, Operation.DESCRIBE, topic_name):
                offsets = [FetchedOffset(p, -1, error=ErrorCode.topic_authorization_failed)
                           for p in indexes]
            result.append((topic_name, topic_id, offsets))
    return error, result


@handles(ApiKey.OFFSET_FETCH)
async def offset_fetch(ctx: RequestContext, request: Any) -> Any:
    """Committed offsets of some partitions (-1 for none), or all (null topics); v8+ for
    several groups at once."""
    require_stable = bool(getattr(request, "require_stable", False))
    if ctx.version >= 8:
        group_cls = ctx.response_class("OffsetFetchResponseGroup")
        topic_cls = ctx.response_class("OffsetFetchResponseTopics")
        partition_cls = ctx.response_class("OffsetFetchResponsePartitions")
        groups = []
        for wanted in request.groups:
            member = (getattr(wanted, "member_id", None),
                      int(getattr(wanted, "member_epoch", -1)))
            error, found = _fetch_group(ctx, wanted.group_id, wanted.topics, member,
                                        require_stable)
            groups.append(make(group_cls, group_id=wanted.group_id, error_code=error,
                               topics=_fetched_topics(topic_cls, partition_cls, found, error)))
        return make(ctx.response_class(), throttle_time=0, groups=tuple(groups))
    topic_cls = ctx.response_class("OffsetFetchResponseTopic")
    partition_cls = ctx.response_class("OffsetFetchResponsePartition")
    error, found = _fetch_group(ctx, request.group_id, request.topics,
                                require_stable=require_stable)
    if ctx.version < 2 and error != ErrorCode.none:
        # v0-1 have no top-level error: every partition carries it
        found = [(name, topic_id, [FetchedOffset(o.partition, -1, error=error) for o in offsets])
                 for name, topic_id, offsets in found]
    return make(ctx.response_class(), throttle_time=0, error_code=error,
                topics=_fetched_topics(topic_cls, partition_cls, found, error))


def _fetched_topics(topic_cls: Any, partition_cls: Any,
                    found: list[tuple[str | None, uuid.UUID | None, list[FetchedOffset]]],
                    error: int) -> tuple[Any, ...]:
    return tuple(
        make(topic_cls, name=name, topic_id=topic_id, partitions=tuple(
            make(partition_cls, partition_index=o.partition, committed_offset=o.offset,
                 committed_leader_epoch=o.leader_epoch, metadata=o.metadata,
                 error_code=o.error)
            for o in offsets
        ))
        for name, topic_id, offsets in found
    )


@handles(ApiKey.OFFSET_DELETE)
async def offset_delete(ctx: RequestContext, request: Any) -> Any:
    """Delete a group's committed offsets of topics it does not subscribe to."""
    topics = [(t.name, [int(p.partition_index) for p in t.partitions]) for t in request.topics]
    error: int = _GROUP_DENIED
    results: list[tuple[str, list[tuple[int, int]]]] = []
    if _may(ctx, Operation.DELETE, request.group_id):
        readable = [(name, parts) for name, parts in topics
                    if _may_topic(ctx, Operation.READ, name)]
        error, deleted = await ctx.broker.groups.delete_offsets(request.group_id, readable)
        results = [*deleted, *((name, [(p, int(ErrorCode.topic_authorization_failed))
                                      for p in parts])
                               for name, parts in topics if (name, parts) not in readable)]
    topic_cls = ctx.response_class("OffsetDeleteResponseTopic")
    partition_cls = ctx.response_class("OffsetDeleteResponsePartition")
    return make(
        ctx.response_class(), throttle_time=0, error_code=error,
        topics=tuple(
            make(topic_cls, name=name, partitions=tuple(
                make(partition_cls, partition_index=index, error_code=code)
                for index, code in answers
            ))
            for name, answers in results
        ),
    )


# ====================================================================== groups


@handles(ApiKey.DESCRIBE_GROUPS)
async def describe_groups(ctx: RequestContext, request: Any) -> Any:
    """State, protocol and members (client id and host, metadata, assignment)."""
    include_ops = bool(getattr(request, "include_authorized_operations", False))
    group_cls = ctx.response_class("DescribedGroup")
    member_cls = ctx.response_class("DescribedGroupMember")
    allowed = [g for g in request.groups if _may(ctx, Operation.DESCRIBE, g)]
    described = ctx.broker.groups.describe_groups(allowed, not_found_error=ctx.version >= 6)
    groups = [make(group_cls, error_code=_GROUP_DENIED, error_message=None, group_id=g,
                   group_state="", protocol_type="", protocol_data="",
                   authorized_operations=UNKNOWN_OPERATIONS, members=())
              for g in request.groups if g not in allowed]
    for d in described:
        message = None
        if d.error == ErrorCode.group_id_not_found:
            message = f"Group {d.group_id} not found."
        groups.append(make(
            group_cls, error_code=d.error, error_message=message, group_id=d.group_id,
            group_state=d.state, protocol_type=d.protocol_type, protocol_data=d.protocol_data,
            authorized_operations=(ctx.authorized_operations(
                ResourceType.GROUP, d.group_id, GROUP_OPERATIONS)
                if include_ops else UNKNOWN_OPERATIONS),
            members=tuple(
                make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                     client_id=m.client_id, client_host=m.client_host,
                     member_metadata=m.metadata, member_assignment=m.assignment)
                for m in d.members
            ),
        ))
    return make(ctx.response_class(), throttle_time=0, groups=tuple(groups))


@handles(ApiKey.LIST_GROUPS)
async def list_groups(ctx: RequestContext, request: Any) -> Any:
    """The groups this broker coordinates, by state (v4+) and type (v5+)."""
    error, listed = ctx.broker.groups.list_groups(
        tuple(getattr(request, "states_filter", ())), tuple(getattr(request, "types_filter", ()))
    )
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        listed = [g for g in listed if _may(ctx, Operation.DESCRIBE, g.group_id)]
    group_cls = ctx.response_class("ListedGroup")
    return make(
        ctx.response_class(), throttle_time=0, error_code=error,
        groups=tuple(make(group_cls, group_id=g.group_id, protocol_type=g.protocol_type,
                          group_state=g.state, group_type=g.group_type) for g in listed),
    )


@handles(ApiKey.DELETE_GROUPS)
async def delete_groups(ctx: RequestContext, request: Any) -> Any:
    """Delete empty groups and their committed offsets."""
    allowed = [g for g in request.groups_names if _may(ctx, Operation.DELETE, g)]
    results = [*await ctx.broker.groups.delete_groups(allowed),
               *((g, _GROUP_DENIED) for g in request.groups_names if g not in allowed)]
    result_cls = ctx.response_class("DeletableGroupResult")
    return make(ctx.response_class(), throttle_time=0, results=tuple(
        make(result_cls, group_id=group_id, error_code=code) for group_id, code in results
    ))
