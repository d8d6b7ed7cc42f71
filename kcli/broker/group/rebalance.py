"""The classic rebalance machinery under the group APIs: session and sync timers, and a
group's way through PreparingRebalance, CompletingRebalance and Stable (Kafka's
GroupCoordinator's ``prepareRebalance``, ``completeJoin`` and their timers).

``Membership`` (membership.py) answers JoinGroup, SyncGroup, Heartbeat and LeaveGroup on
top of it.
"""

from __future__ import annotations

import logging

from kcli.broker.errors import ErrorCode
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import Group, GroupState, JoinResult, Member, SyncResult
from kcli.broker.group.runtime import OFFSETS_TOPIC, CoordinatorRuntime, now_ms
from kcli.broker.group.shard import Shard, group_record

log = logging.getLogger("kcli.broker.group")

class Rebalancing(CoordinatorRuntime):
    """Timers and rebalance state changes of classic groups, on top of the runtime."""

    def _loaded(self, shard: Shard) -> None:
        """Start the loaded members' session timers; shrink groups over group.max.size."""
        shard.finish_replay()
        shard.loading = False
        max_size = self._setting("group.max.size")
        for group in list(shard.groups.values()):
            for member in group.members.values():
                self._reschedule_heartbeat(shard, group, member)
            if len(group.members) > max_size:
                self._prepare_rebalance(shard, group, f"loaded with {len(group.members)} "
                                        f"members, over group.max.size {max_size}")
        count = sum(len(o) for o in shard.offsets.values())
        if shard.groups or count:
            log.info("%s-%d: loaded %d group(s) and %d offset(s)", OFFSETS_TOPIC, shard.index,
                     len(shard.groups), count)

    # ================================================================== timers

    def _reschedule_heartbeat(self, shard: Shard, group: Group, member: Member,
                              timeout_ms: int | None = None) -> None:
        member.cancel_heartbeat()
        member.heartbeat_timer = self._schedule(
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
            self._expire_heartbeat, shard, group, member.member_id,
        )

    def _expire_heartbeat(self, shard: Shard, group: Group, member_id: str) -> None:
        if not self._is_current(shard, group):
            return
        if group.is_pending_member(member_id):
            log.info("group %s: pending member %s did not rejoin in time", group.group_id,
                     member_id)
            group.pending_join.pop(member_id, None)
            if group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(shard, group)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        member.heartbeat_timer = None
        if not member.has_satisfied_heartbeat():
            log.info("group %s: member %s missed its session timeout of %d ms; removing it",
                     group.group_id, member_id, member.session_timeout_ms)
            self._remove_member_and_update(shard, group, member, "session timeout")

    def _remove_member(self, group: Group, member: Member) -> None:
        """Remove a member, answering any request it has parked."""
        group.complete_join(member, JoinResult(ErrorCode.unknown_member_id))
        group.complete_sync(member, SyncResult(ErrorCode.unknown_member_id))
        group.remove(member.member_id)

    def _remove_member_and_update(self, shard: Shard, group: Group, member: Member,
                                  reason: str) -> None:
        self._remove_member(group, member)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(shard, group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(shard, group)

    # ================================================================== rebalancing

    def _maybe_prepare_rebalance_or_complete_join(self, shard: Shard, group: Group,
                                                  reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(shard, group, reason)
        else:
            self._maybe_complete_join_phase(shard, group)

    def _maybe_complete_join_phase(self, shard: Shard, group: Group) -> None:
        """Complete the join phase once every member has rejoined (the first rebalance of
        an empty group waits for its delay timer instead)."""
        if (group.is_in(GroupState.PREPARING_REBALANCE)
                and group.previous_state is not GroupState.EMPTY
                and group.has_all_members_joined()):
            self._complete_join(shard, group)

    def _prepare_rebalance(self, shard: Shard, group: Group, reason: str) -> None:
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment_error(shard, group,
                                                       ErrorCode.rebalance_in_progress)
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        group.pending_sync.clear()
        initial = group.is_in(GroupState.EMPTY)
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        if initial:
            delay = self._setting("group.initial.rebalance.delay.ms")
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            group.join_timer = self._schedule(delay, self._try_complete_initial_rebalance,
                                              shard, group, delay, remaining)
        group.transition_to(GroupState.PREPARING_REBALANCE, now_ms())
        log.info("group %s: preparing to rebalance (generation %d, %s)", group.group_id,
                 group.generation_id, reason)
        if not initial:
            if group.has_all_members_joined():
                self._complete_join(shard, group)
            else:
                group.join_timer = self._schedule(group.rebalance_timeout_ms(),
                                                  self._complete_join, shard, group)

    def _try_complete_initial_rebalance(self, shard: Shard, group: Group, delay: int,
                                        remaining: int) -> None:
        group.join_timer = None
        if not self._is_current(shard, group):
            return
        if group.new_member_added and remaining != 0:
            group.new_member_added = False
            initial_delay = self._setting("group.initial.rebalance.delay.ms")
            new_delay = min(initial_delay, remaining)
            group.join_timer = self._schedule(new_delay, self._try_complete_initial_rebalance,
                                              shard, group, new_delay,
                                              max(remaining - delay, 0))
        else:
            self._complete_join(shard, group)

    def _complete_join(self, shard: Shard, group: Group) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start the next
        generation, answer every parked JoinGroup (the leader gets the members)."""
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        if not self._is_current(shard, group) or not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        gone = [m for m in group.not_yet_rejoined() if not m.is_static]
        for member in gone:
            self._remove_member(group, member)
        if gone:
            log.info("group %s: removed member(s) that did not rejoin: %s", group.group_id,
                     ", ".join(m.member_id for m in gone))
        if not group.maybe_elect_new_joined_leader() and group.members:
            log.warning("group %s: no member rejoined; waiting for sessions to expire",
                        group.group_id)
            group.join_timer = self._schedule(group.rebalance_timeout_ms(),
                                              self._complete_join, shard, group)
            return
        group.init_next_generation(now_ms())
        if group.is_in(GroupState.EMPTY):
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            try:
                self._append(shard, [group_record(group, {})])
            except CoordinatorError as failure:
                log.warning("group %s: cannot store the empty group: %s", group.group_id, failure)
            return
        log.info("group %s: generation %d with %d member(s), protocol %s, leader %s",
                 group.group_id, group.generation_id, len(group.members), group.protocol_name,
                 group.leader_id)
        everyone = group.current_members()
        for member in list(group.members.values()):
            leader = group.is_leader(member.member_id)
            group.complete_join(member, JoinResult(
                ErrorCode.none, member_id=member.member_id, generation_id=group.generation_id,
                protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                leader=group.leader_id or "", members=everyone if leader else (),
            ))
            self._reschedule_heartbeat(shard, group, member)
            member.is_new = False
            group.pending_sync.add(member.member_id)
        group.sync_timer = self._schedule(group.rebalance_timeout_ms(), self._expire_pending_sync,
                                          shard, group, group.generation_id)

    def _expire_pending_sync(self, shard: Shard, group: Group, generation: int) -> None:
        group.sync_timer = None
        if not self._is_current(shard, group) or generation != group.generation_id:
            return
        if group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and group.pending_sync:
            late = sorted(group.pending_sync)
            for member_id in late:
                member = group.members.get(member_id)
                if member is not None:
                    self._remove_member(group, member)
            self._prepare_rebalance(shard, group, f"no SyncGroup from {', '.join(late)}")

    def _reset_and_propagate_assignment_error(self, shard: Shard, group: Group,
                                              error: int) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(shard, group, error)

    def _propagate_assignment(self, shard: Shard, group: Group, error: int) -> None:
        ok = error == ErrorCode.none
        for member in group.members.values():
            result = SyncResult(error, member.assignment if ok else b"",
                                group.protocol_type if ok else None,
                                group.protocol_name if ok else None)
            if group.complete_sync(member, result):
                self._reschedule_heartbeat(shard, group, member)
