"""Membership of classic groups: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, as Kafka's
GroupCoordinator runs them.

A JoinGroup or SyncGroup that must wait for the rest of the group parks on a future the
rebalance completes. Session timeouts expel members that stop heartbeating, the
rebalance timeout bounds the join phase, members that never send SyncGroup are removed
after it too, and a new member's parked JoinGroup is bounded by Kafka's new-member join
timeout. Static members (``group.instance.id``) take their old place back without a
rebalance when their protocols did not change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kcli.broker.errors import ErrorCode
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import (
    Group,
    GroupState,
    JoinResult,
    Member,
    Protocols,
    SyncResult,
    new_member_id,
)
from kcli.broker.group.rebalance import Rebalancing
from kcli.broker.group.records import storable
from kcli.broker.group.runtime import now_ms
from kcli.broker.group.shard import Shard, group_record

log = logging.getLogger("kcli.broker.group")

MEMBER_ID_SUFFIX = 37
"""Bytes a member id adds to its client or instance id: a dash and a UUID."""
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""How long a new member's JoinGroup may stay parked (Kafka's constant): a client that
gave up and retried must not leave defunct members behind forever."""
_DEAD = GroupState.DEAD
_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE


class Membership(Rebalancing):
    """The classic group APIs on top of the rebalance machinery."""

    # ================================================================== JoinGroup

    def join_group(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Protocols,
        client_id: str | None,
        client_host: str,
        require_known_member_id: bool,
        supports_skip_assignment: bool,
        reason: str | None = None,
    ) -> asyncio.Future[JoinResult]:
        """Handle a JoinGroup; the future completes when the member may be answered."""
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()

        def answer(error: int, answer_member_id: str = member_id) -> asyncio.Future[JoinResult]:
            future.set_result(JoinResult(error, member_id=answer_member_id))
            return future

        if not group_id:
            return answer(ErrorCode.invalid_group_id)
        if not (self._setting("group.min.session.timeout.ms") <= session_timeout_ms
                <= self._setting("group.max.session.timeout.ms")):
            return answer(ErrorCode.invalid_session_timeout)
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return answer(failure.error_code)
        prefix = group_instance_id if group_instance_id is not None else client_id
        if not (storable(prefix, MEMBER_ID_SUFFIX) and storable(member_id)
                and all(storable(name) for name, _ in protocols)):
            return answer(ErrorCode.invalid_request)  # could not be stored in a group record
        unknown = member_id == ""
        group = shard.groups.get(group_id)
        if group is None:
            if not unknown:
                return answer(ErrorCode.unknown_member_id)
            group = shard.groups[group_id] = Group(group_id, now_ms())
        request = _JoinRequest(member_id, group_instance_id, session_timeout_ms,
                               rebalance_timeout_ms, protocol_type, protocols, client_id or "",
                               client_host, require_known_member_id, supports_skip_assignment,
                               reason or "not provided")
        if not self._accept_joining_member(group, member_id):
            existing = group.members.get(member_id)
            if existing is not None:
                self._remove_member(group, existing)
            return answer(ErrorCode.group_max_size_reached, "")
        if unknown:
            self._join_new_member(shard, group, request, future)
        else:
            self._join_existing_member(shard, group, request, future)
        return future

    def _accept_joining_member(self, group: Group, member_id: str) -> bool:
        max_size = self._setting("group.max.size")
        if group.is_in(_EMPTY, _DEAD):
            return True
        if group.is_in(_PREPARING):
            member = group.members.get(member_id)
            return (member is not None and member.is_awaiting_join) or (
                group.awaiting_join < max_size)
        return member_id in group.members or len(group.members) < max_size

    def _join_new_member(self, shard: Shard, group: Group, request: _JoinRequest,
                         future: asyncio.Future[JoinResult]) -> None:
        if group.is_in(_DEAD):
            future.set_result(JoinResult(ErrorCode.coordinator_not_available))
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names):
            future.set_result(JoinResult(ErrorCode.inconsistent_group_protocol))
            return
        member_id = new_member_id(request.client_id, request.group_instance_id)
        if request.group_instance_id is not None:
            existing = group.static_member_id(request.group_instance_id)
            if existing is not None:
                log.info("group %s: static member %s rejoins as %s (was %s)", group.group_id,
                         request.group_instance_id, member_id, existing)
                self._update_static_member_and_rebalance(shard, group, existing, member_id,
                                                         request, future)
            else:
                self._add_member_and_rebalance(shard, group, request, member_id, future)
        elif request.require_known_member_id:
            timer = self._schedule(request.session_timeout_ms, self._expire_heartbeat, shard,
                                   group, member_id)
            group.add_pending_member(member_id, timer)
            future.set_result(JoinResult(ErrorCode.member_id_required, member_id=member_id))
        else:
            self._add_member_and_rebalance(shard, group, request, member_id, future)

    def _join_existing_member(self, shard: Shard, group: Group, request: _JoinRequest,
                              future: asyncio.Future[JoinResult]) -> None:
        member_id = request.member_id
        if group.is_in(_DEAD):
            future.set_result(JoinResult(ErrorCode.coordinator_not_available, member_id=member_id))
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names):
            future.set_result(JoinResult(ErrorCode.inconsistent_group_protocol,
                                         member_id=member_id))
            return
        if group.is_pending_member(member_id):
            if request.group_instance_id is not None:
                # pending member ids are only handed to dynamic members
                future.set_result(JoinResult(ErrorCode.invalid_request, member_id=member_id))
                return
            self._add_member_and_rebalance(shard, group, request, member_id, future)
            return
        error = group.validate_member(member_id, request.group_instance_id)
        if error != ErrorCode.none:
            future.set_result(JoinResult(error, member_id=member_id))
            return
        member = group.members[member_id]
        if group.is_in(_PREPARING):
            self._update_member_and_rebalance(shard, group, member, request, future,
                                              "member rejoins during the rebalance")
        elif group.is_in(_COMPLETING):
            if member.matches(request.protocols):
                # it did not get its JoinGroup answer: answer again for this generation
                future.set_result(self._current_generation(
                    group, member_id, with_members=group.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(shard, group, member, request, future,
                                                  "member changed its metadata")
        elif group.is_in(_STABLE):
            if group.is_leader(member_id) or not member.matches(request.protocols):
                # the leader rejoining forces a rebalance (it may have seen topic changes)
                self._update_member_and_rebalance(
                    shard, group, member, request, future,
                    f"{'leader rejoins' if group.is_leader(member_id) else 'metadata changed'}"
                    f" ({request.reason})")
            else:
                future.set_result(self._current_generation(group, member_id, with_members=False))
        else:
            future.set_result(JoinResult(ErrorCode.unknown_member_id, member_id=member_id))

    @staticmethod
    def _current_generation(group: Group, member_id: str, *, with_members: bool,
                            leader: str | None = None, skip_assignment: bool = False
                            ) -> JoinResult:
        return JoinResult(
            ErrorCode.none, member_id=member_id, generation_id=group.generation_id,
            protocol_type=group.protocol_type, protocol_name=group.protocol_name,
            leader=(leader if leader is not None else group.leader_id) or "",
            skip_assignment=skip_assignment,
            members=group.current_members() if with_members else (),
        )

    def _add_member_and_rebalance(self, shard: Shard, group: Group, request: _JoinRequest,
                                  member_id: str, future: asyncio.Future[JoinResult]) -> None:
        member = Member(member_id, request.group_instance_id, request.client_id,
                        request.client_host, request.rebalance_timeout_ms,
                        request.session_timeout_ms, request.protocol_type, request.protocols,
                        is_new=True)
        if group.is_in(_PREPARING) and group.previous_state is _EMPTY:
            group.new_member_added = True
        group.add(member, future)
        # A new member cannot heartbeat while its JoinGroup is parked: bound it by the
        # new-member join timeout instead of its session.
        self._reschedule_heartbeat(shard, group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance_or_complete_join(
            shard, group, f"new member {member_id} joins ({request.reason})")

    def _update_member_and_rebalance(self, shard: Shard, group: Group, member: Member,
                                     request: _JoinRequest, future: asyncio.Future[JoinResult],
                                     reason: str) -> None:
        group.update_member(member, request.protocols, request.rebalance_timeout_ms,
                            request.session_timeout_ms, future)
        self._maybe_prepare_rebalance_or_complete_join(shard, group, reason)

    def _update_static_member_and_rebalance(self, shard: Shard, group: Group, old_id: str,
                                            new_id: str, request: _JoinRequest,
                                            future: asyncio.Future[JoinResult]) -> None:
        assert request.group_instance_id is not None
        instance_id = request.group_instance_id
        current_leader = group.leader_id
        member = group.replace_static_member(instance_id, old_id, new_id)
        self._reschedule_heartbeat(shard, group, member)
        old = (member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        group.update_member(member, request.protocols, request.rebalance_timeout_ms,
                            request.session_timeout_ms, future)
        if group.is_in(_STABLE):
            if group.protocol_name != group.select_protocol():
                self._maybe_prepare_rebalance_or_complete_join(
                    shard, group, f"static member {instance_id} rejoins with other protocols")
                return
            # Same protocol: take the old member's place without a rebalance; persist the
            # new member id, then answer.
            try:
                last = self._append(shard, [group_record(group, group.assignments())])
            except CoordinatorError as failure:
                self._revert_static_member(shard, group, member, old_id, old)
                future.set_result(JoinResult(failure.error_code))
                return

            def done(error: int) -> None:
                if not self._is_current(shard, group) or member.join_future is not future:
                    return
                if error != ErrorCode.none:
                    group.complete_join(member, JoinResult(error))
                    self._revert_static_member(shard, group, member, old_id, old)
                elif request.supports_skip_assignment:
                    leader = group.is_leader(new_id)
                    group.complete_join(member, self._current_generation(
                        group, new_id, with_members=leader, skip_assignment=leader))
                else:
                    # Older clients would run an assignment if told they lead: name the
                    # leader as it was, so the rejoining member only syncs.
                    group.complete_join(member, self._current_generation(
                        group, new_id, with_members=False, leader=current_leader))

            self._after_commit(shard, last, done)
        elif group.is_in(_COMPLETING):
            # the old id may already be in the leader's assignment: rebalance again
            self._prepare_rebalance(shard, group,
                                    f"static member {instance_id} rejoins during the sync")
        else:
            self._maybe_complete_join_phase(shard, group)

    def _revert_static_member(self, shard: Shard, group: Group, member: Member, old_id: str,
                              old: tuple[Protocols, int, int]) -> None:
        if member.member_id not in group.members or member.group_instance_id is None:
            return
        group.update_member(member, old[0], old[1], old[2], None)
        restored = group.replace_static_member(member.group_instance_id, member.member_id, old_id)
        self._reschedule_heartbeat(shard, group, restored)

    # ================================================================== SyncGroup

    def sync_group(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: Sequence[tuple[str, bytes]],
    ) -> asyncio.Future[SyncResult]:
        """Handle a SyncGroup; the future completes when the leader's assignment is in."""
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()

        def answer(error: int) -> asyncio.Future[SyncResult]:
            future.set_result(SyncResult(error))
            return future

        if not group_id:
            return answer(ErrorCode.invalid_group_id)
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return answer(failure.error_code)
        group = shard.groups.get(group_id)
        if group is None or group.is_in(_EMPTY):
            return answer(ErrorCode.unknown_member_id)
        if group.is_in(_DEAD):
            return answer(ErrorCode.coordinator_not_available)
        error = group.validate_member(member_id, group_instance_id)
        if error != ErrorCode.none:
            return answer(error)
        if generation_id != group.generation_id:
            return answer(ErrorCode.illegal_generation)
        if ((protocol_type is not None and protocol_type != group.protocol_type)
                or (protocol_name is not None and protocol_name != group.protocol_name)):
            return answer(ErrorCode.inconsistent_group_protocol)
        if group.is_in(_PREPARING):
            return answer(ErrorCode.rebalance_in_progress)
        member = group.members[member_id]
        if group.is_in(_STABLE):
            self._remove_pending_sync(group, member_id)
            future.set_result(SyncResult(ErrorCode.none, member.assignment, group.protocol_type,
                                         group.protocol_name))
            return future
        # CompletingRebalance: park until the leader's assignment is stored
        if member.sync_future is not None:
            group.complete_sync(member, SyncResult(ErrorCode.rebalance_in_progress))
        member.sync_future = future
        self._remove_pending_sync(group, member_id)
        if group.is_leader(member_id):
            self._store_assignment(shard, group, dict(assignments), generation_id, member_id)
        return future

    def _remove_pending_sync(self, group: Group, member_id: str) -> None:
        group.pending_sync.discard(member_id)
        if not group.pending_sync and group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None

    def _store_assignment(self, shard: Shard, group: Group, given: dict[str, bytes],
                          generation_id: int, leader_id: str) -> None:
        assignment = {member_id: given.get(member_id, b"") for member_id in group.members}
        missing = [member_id for member_id in group.members if member_id not in given]
        if missing:
            log.warning("group %s: the leader gave no assignment to %s; they get none",
                        group.group_id, ", ".join(missing))
        log.info("group %s: assignment from leader %s for generation %d", group.group_id,
                 leader_id, generation_id)

        def done(error: int) -> None:
            if not (self._is_current(shard, group) and group.is_in(_COMPLETING)
                    and group.generation_id == generation_id):
                return  # the group moved on while the write was in flight
            if error != ErrorCode.none:
                self._reset_and_propagate_assignment_error(shard, group, error)
                self._maybe_prepare_rebalance_or_complete_join(
                    shard, group, f"error {error} storing the assignment")
                return
            for member_id, member in group.members.items():
                member.assignment = assignment.get(member_id, b"")
            self._propagate_assignment(shard, group, ErrorCode.none)
            group.transition_to(_STABLE, now_ms())

        try:
            last = self._append(shard, [group_record(group, assignment)])
        except CoordinatorError as failure:
            done(append_error_for_group(failure.error_code))
            return
        self._after_commit(shard, last, done)

    # ================================================================== Heartbeat, LeaveGroup

    def heartbeat(self, *, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None) -> int:
        """Handle a Heartbeat: NONE, or why the member must act."""
        if not group_id:
            return ErrorCode.invalid_group_id
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code
        group = shard.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_in(_DEAD):
            return ErrorCode.coordinator_not_available
        error = group.validate_member(member_id, group_instance_id)
        if error != ErrorCode.none:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.is_in(_EMPTY):
            return ErrorCode.unknown_member_id
        self._reschedule_heartbeat(shard, group, group.members[member_id])
        if group.is_in(_PREPARING):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave_group(self, *, group_id: str, members: Sequence[tuple[str, str | None]]
                    ) -> tuple[int, list[tuple[str, str | None, int]]]:
        """Handle a LeaveGroup of one or more members; returns the top-level error and
        (member id, instance id, error) per member."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        group = shard.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id, []
        if group.is_in(_DEAD):
            return ErrorCode.coordinator_not_available, []
        results: list[tuple[str, str | None, int]] = []
        left: list[str] = []
        for member_id, instance_id in members:
            error: int = ErrorCode.none
            if member_id == "":
                static_id = (group.static_member_id(instance_id) if instance_id is not None
                             else None)
                if static_id is None:
                    error = ErrorCode.unknown_member_id
                else:
                    self._remove_member(group, group.members[static_id])
                    left.append(static_id)
            elif group.is_pending_member(member_id):
                group.remove(member_id)
                left.append(member_id)
            else:
                error = group.validate_member(member_id, instance_id)
                if error == ErrorCode.none:
                    self._remove_member(group, group.members[member_id])
                    left.append(member_id)
            results.append((member_id, instance_id, error))
        if left:
            log.info("group %s: member(s) left: %s", group.group_id, ", ".join(left))
            reason = f"member(s) left: {', '.join(left)}"
            if group.is_in(_STABLE, _COMPLETING):
                self._maybe_prepare_rebalance_or_complete_join(shard, group, reason)
            elif group.is_in(_PREPARING):
                self._maybe_complete_join_phase(shard, group)
        return ErrorCode.none, results


@dataclass(frozen=True, slots=True)
class _JoinRequest:
    member_id: str
    group_instance_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    client_id: str
    client_host: str
    require_known_member_id: bool
    supports_skip_assignment: bool
    reason: str

    @property
    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.protocols}


def append_error_for_group(error: int) -> int:
    """Kafka's mapping of a failed group metadata write to the error a member sees."""
    if error in (ErrorCode.unknown_topic_or_partition, ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if error == ErrorCode.invalid_commit_offset_size:
        return -1  # UNKNOWN_SERVER_ERROR: the group is too large for one record
    return error
