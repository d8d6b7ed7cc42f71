"""Groups moving between the classic and the consumer protocol while they run, as Kafka
4.0 allows (``group.consumer.migration.policy``, KIP-848's online migration).

- **Upgrade.** A consumer protocol member joining a classic group of consumers converts
  it: each classic member becomes a member of the consumer group in the group's
  generation, keeping the partitions its leader gave it, and the new member's arrival
  starts a new epoch.
- **Classic members of a consumer group** keep speaking JoinGroup, SyncGroup, Heartbeat
  and LeaveGroup. The coordinator assigns their partitions too: a JoinGroup is answered
  at once with the member's next step (its generation is its member epoch), SyncGroup
  carries the assignment, and a heartbeat answers REBALANCE_IN_PROGRESS while the
  member lags its target, so it rejoins. What it must give up is taken from it at its
  JoinGroup: an eager consumer has already let go of everything, a cooperative one says
  what it still owns.
- **Downgrade.** When the last consumer protocol member leaves a group whose other
  members are classic, it becomes a classic group again, with the target assignment,
  and rebalances.

Empty groups change kind at once, whatever the policy.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace

from kcli.broker.errors import ErrorCode
from kcli.broker.group.consumer_group import (
    ClassicMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    reconcile,
)
from kcli.broker.group.consumer_protocol import ConsumerProtocol
from kcli.broker.group.embedded import (
    EmbeddedFormatError,
    encode_assignment,
    parse_assignment,
    parse_subscription,
    subscription_version,
)
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupState,
    JoinResult,
    Member,
    Protocols,
    SyncResult,
)
from kcli.broker.group.membership import Membership
from kcli.broker.group.runtime import now_ms
from kcli.broker.group.shard import (
    KeyValue,
    Shard,
    consumer_group_record,
    consumer_group_tombstone,
    group_record,
    group_tombstone,
)

log = logging.getLogger("kcli.broker.group")


class ProtocolMigration(Membership, ConsumerProtocol):
    """Both protocols in one coordinator, and groups moving between them."""

    def _policy_allows(self, direction: str) -> bool:
        policy = self.broker.settings.get("group.consumer.migration.policy").lower()
        return policy in ("bidirectional", direction)

    # ================================================================== upgrade

    def _upgrade(self, shard: Shard, classic: Group, records: list[KeyValue]) -> ConsumerGroup:
        group_id = classic.group_id

        def refuse(why: str) -> CoordinatorError:
            log.info("group %s: not upgraded to the consumer protocol: %s", group_id, why)
            return CoordinatorError(ErrorCode.group_id_not_found,
                                    f"Group {group_id} is not a consumer group ({why}).")

        if not self._policy_allows("upgrade"):
            raise refuse("group.consumer.migration.policy does not allow upgrades")
        if classic.protocol_type != CONSUMER_PROTOCOL_TYPE or classic.protocol_name is None:
            raise refuse(f"its members use the {classic.protocol_type!r} protocol type")
        if len(classic.members) > self._setting("group.consumer.max.size"):
            raise refuse("it has more members than group.consumer.max.size")
        generation = classic.generation_id
        members = []
        for m in classic.members.values():
            try:
                subscription = parse_subscription(m.metadata(classic.protocol_name))
                assigned = parse_assignment(m.assignment)
            except EmbeddedFormatError as error:
                raise refuse(f"member {m.member_id}: {error}") from None
            members.append(ConsumerMember(
                m.member_id, m.client_id, m.client_host, subscription.topics,
                rebalance_timeout_ms=m.rebalance_timeout_ms, instance_id=m.group_instance_id,
                rack_id=subscription.rack_id, member_epoch=generation,
                previous_epoch=generation, assigned=assigned,
                classic=ClassicMetadata(m.session_timeout_ms, m.protocols)))
        classic.fail_all(ErrorCode.rebalance_in_progress)
        classic.cancel_timers()
        classic.state = GroupState.DEAD
        del shard.groups[group_id]
        group = shard.consumer_groups[group_id] = ConsumerGroup(
            group_id, now_ms(), group_epoch=generation, assignment_epoch=generation)
        for member in members:
            group.target[member.member_id] = member.assigned
            group.put_member(member)
        group.subscription_metadata = self._subscription_metadata(group)
        records += [group_tombstone(group_id), consumer_group_record(group_id, generation)]
        for member in members:
            self._session_timer(shard, group, member.member_id)
        log.info("group %s: upgraded to the consumer protocol with %d classic member(s) at "
                 "epoch %d", group_id, len(members), generation)
        return group

    # ================================================================== downgrade

    def _downgrade(self, shard: Shard, group: ConsumerGroup, leaving: str) -> int | None:
        rest = [m for member_id, m in group.members.items() if member_id != leaving]
        if not rest or any(m.classic is None for m in rest):
            return None
        if not self._policy_allows("downgrade"):
            log.info("group %s: not downgraded (group.consumer.migration.policy)", group.group_id)
            return None
        if len(rest) > self._setting("group.max.size"):
            return None
        group_id = group.group_id
        classic = Group(group_id, now_ms(), GroupState.STABLE)
        classic.generation_id = group.group_epoch
        for m in rest:
            assert m.classic is not None
            classic.add(Member(m.member_id, m.instance_id, m.client_id, m.client_host,
                               m.rebalance_timeout_ms, m.classic.session_timeout_ms,
                               CONSUMER_PROTOCOL_TYPE, m.classic.protocols))
        classic.protocol_name = classic.select_protocol()
        classic.subscribed_topics = classic.compute_subscribed_topics()
        for member in classic.members.values():
            member.assignment = encode_assignment(
                group.target.get(member.member_id, {}),
                subscription_version(member.metadata(classic.protocol_name)))
        last = self._append(shard, [consumer_group_tombstone(group_id),
                                    group_record(classic, classic.assignments())])
        group.close()
        del shard.consumer_groups[group_id]
        shard.groups[group_id] = classic
        for member in classic.members.values():
            self._reschedule_heartbeat(shard, classic, member)
        log.info("group %s: downgraded to the classic protocol as its last consumer protocol "
                 "member left", group_id)
        self._prepare_rebalance(shard, classic, "downgraded from the consumer protocol")
        return last

    # ================================================================== classic APIs

    def _live_consumer_group(self, group_id: str) -> tuple[Shard, ConsumerGroup] | None:
        """The consumer group a classic request reaches, if it is one; an empty one turns
        classic first (then None: the classic path serves the request)."""
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError:
            return None  # the classic path answers the same error
        group = shard.consumer_groups.get(group_id)
        if group is None:
            return None
        if group.members:
            return shard, group
        try:
            self._append(shard, [consumer_group_tombstone(group_id)])
        except CoordinatorError as failure:
            log.warning("group %s: cannot make it classic: %s", group_id, failure)
            return None
        log.info("group %s: the empty consumer group becomes a classic group", group_id)
        group.close()
        del shard.consumer_groups[group_id]
        return None

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
        """Handle a JoinGroup: the classic path, or a classic member of a consumer group."""
        found = self._live_consumer_group(group_id) if group_id else None
        if found is None:
            return super().join_group(
                group_id=group_id, member_id=member_id, group_instance_id=group_instance_id,
                session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                protocol_type=protocol_type, protocols=protocols, client_id=client_id,
                client_host=client_host, require_known_member_id=require_known_member_id,
                supports_skip_assignment=supports_skip_assignment, reason=reason)
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        shard, group = found
        try:
            result, last = self._classic_join(
                shard, group, member_id or "", group_instance_id, session_timeout_ms,
                rebalance_timeout_ms, protocol_type, protocols, client_id or "", client_host,
                require_known_member_id)
        except CoordinatorError as failure:
            future.set_result(JoinResult(failure.error_code, member_id=member_id))
            return future
        if last is None:
            future.set_result(result)
        else:
            def done(error: int) -> None:
                future.set_result(result if error == ErrorCode.none
                                  else JoinResult(error, member_id=result.member_id))

            self._after_commit(shard, last, done)
        return future

    def _classic_join(self, shard: Shard, group: ConsumerGroup, member_id: str,
                      instance_id: str | None, session_timeout_ms: int,
                      rebalance_timeout_ms: int, protocol_type: str, protocols: Protocols,
                      client_id: str, client_host: str, require_known_member_id: bool,
                      ) -> tuple[JoinResult, int | None]:
        if not (self._setting("group.min.session.timeout.ms") <= session_timeout_ms
                <= self._setting("group.max.session.timeout.ms")):
            raise CoordinatorError(ErrorCode.invalid_session_timeout)
        if protocol_type != CONSUMER_PROTOCOL_TYPE or not protocols:
            raise CoordinatorError(ErrorCode.inconsistent_group_protocol)
        try:
            subscription = parse_subscription(protocols[0][1])
        except EmbeddedFormatError:
            raise CoordinatorError(ErrorCode.inconsistent_group_protocol) from None
        unknown = member_id == ""
        if unknown:
            member_id = str(uuid.uuid4())
        self._check_room(group, member_id)
        if unknown and require_known_member_id:
            return JoinResult(ErrorCode.member_id_required, member_id=member_id), None
        existing = group.members.get(member_id)
        if instance_id is not None and existing is None:
            previous = group.static_member(instance_id)
            if previous is not None:  # a restarted static member takes its place back
                group.remove_member(previous.member_id)
                existing = replace(previous, member_id=member_id)
        if existing is not None and existing.classic is None:
            raise CoordinatorError(ErrorCode.unknown_member_id)
        base = existing or ConsumerMember(member_id, client_id, client_host)
        updated = replace(
            base, client_id=client_id, client_host=client_host, instance_id=instance_id,
            rack_id=subscription.rack_id or base.rack_id,
            rebalance_timeout_ms=rebalance_timeout_ms, subscribed_topics=subscription.topics,
            subscribed_regex=None, classic=ClassicMetadata(session_timeout_ms, protocols))
        bump = existing is None or updated.subscribed_topics != base.subscribed_topics
        group.put_member(updated)
        metadata = self._subscription_metadata(group)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            bump = True
        records: list[KeyValue] = []
        if bump:
            group.group_epoch += 1
            records.append(consumer_group_record(group.group_id, group.group_epoch))
            log.info("group %s: epoch %d (classic member %s %s)", group.group_id,
                     group.group_epoch, member_id, "joins" if existing is None else "changed")
        if group.group_epoch > group.assignment_epoch:
            self._assign(group)
        # an eager consumer gave up everything before rejoining; a cooperative one lists
        # what it still owns
        reconciled = reconcile(updated, group.assignment_epoch,
                               group.target.get(member_id, {}), group, subscription.owned)
        if reconciled != updated:
            group.put_member(reconciled)
        self._session_timer(shard, group, member_id)
        self._classic_deadline(shard, group, member_id, rebalance_timeout_ms,
                               "it did not send SyncGroup in time", replace_existing=True)
        result = JoinResult(ErrorCode.none, member_id=member_id,
                            generation_id=reconciled.member_epoch,
                            protocol_type=CONSUMER_PROTOCOL_TYPE, protocol_name=protocols[0][0])
        last = self._append(shard, records) if records else None
        return result, last

    def _classic_deadline(self, shard: Shard, group: ConsumerGroup, member_id: str,
                          timeout_ms: int, reason: str, *, replace_existing: bool) -> None:
        """A classic member must rejoin (or sync) within its rebalance timeout."""
        timers = group.rebalance_timers
        if member_id in timers:
            if not replace_existing:
                return
            timers.pop(member_id).cancel()
        timers[member_id] = self._schedule(timeout_ms, self._expire, shard, group, member_id,
                                           None, reason)

    def _classic_member(self, group: ConsumerGroup, member_id: str | None,
                        instance_id: str | None) -> ConsumerMember:
        """The classic member a request is from (``member_id`` None: any, by instance)."""
        member = (group.static_member(instance_id) if instance_id is not None
                  else group.members.get(member_id or ""))
        if member is None or member.classic is None:
            raise CoordinatorError(ErrorCode.unknown_member_id)
        if member_id is not None and member.member_id != member_id:
            raise CoordinatorError(ErrorCode.fenced_instance_id)
        return member

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
        """Handle a SyncGroup: the classic path, or the coordinator's assignment for a
        classic member of a consumer group (what a leader sends is ignored there)."""
        found = self._live_consumer_group(group_id) if group_id else None
        if found is None:
            return super().sync_group(
                group_id=group_id, generation_id=generation_id, member_id=member_id,
                group_instance_id=group_instance_id, protocol_type=protocol_type,
                protocol_name=protocol_name, assignments=assignments)
        shard, group = found
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        try:
            member = self._classic_member(group, member_id, group_instance_id)
            assert member.classic is not None
            if generation_id != member.member_epoch:
                raise CoordinatorError(ErrorCode.illegal_generation)
            chosen = member.classic.protocols[0]
            if ((protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE)
                    or (protocol_name is not None and protocol_name != chosen[0])):
                raise CoordinatorError(ErrorCode.inconsistent_group_protocol)
            if (group.group_epoch > member.member_epoch
                    and member.state is not MemberState.UNREVOKED_PARTITIONS):
                self._classic_deadline(shard, group, member.member_id,
                                       member.rebalance_timeout_ms,
                                       "it did not rejoin in time", replace_existing=True)
                raise CoordinatorError(ErrorCode.rebalance_in_progress)
        except CoordinatorError as failure:
            future.set_result(SyncResult(failure.error_code))
            return future
        timer = group.rebalance_timers.pop(member.member_id, None)
        if timer is not None:
            timer.cancel()
        self._session_timer(shard, group, member.member_id)
        future.set_result(SyncResult(
            ErrorCode.none, encode_assignment(member.assigned, subscription_version(chosen[1])),
            CONSUMER_PROTOCOL_TYPE, chosen[0]))
        return future

    def heartbeat(self, *, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None) -> int:
        """Handle a Heartbeat: the classic path, or a classic member of a consumer group,
        told to rejoin while it lags its target."""
        found = self._live_consumer_group(group_id) if group_id else None
        if found is None:
            return super().heartbeat(group_id=group_id, generation_id=generation_id,
                                     member_id=member_id, group_instance_id=group_instance_id)
        shard, group = found
        try:
            member = self._classic_member(group, member_id, group_instance_id)
        except CoordinatorError as failure:
            return failure.error_code
        if generation_id != member.member_epoch:
            return ErrorCode.illegal_generation
        self._session_timer(shard, group, member.member_id)
        if (member.member_epoch < group.group_epoch
                or member.state is MemberState.UNREVOKED_PARTITIONS
                or (member.state is MemberState.UNRELEASED_PARTITIONS
                    and not _waits_for_others(group, member))):
            self._classic_deadline(shard, group, member.member_id, member.rebalance_timeout_ms,
                                   "it did not rejoin in time", replace_existing=False)
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave_group(self, *, group_id: str, members: Sequence[tuple[str, str | None]]
                    ) -> tuple[int, list[tuple[str, str | None, int]]]:
        """Handle a LeaveGroup: the classic path, or classic members leaving a consumer
        group (its other members then take their partitions)."""
        found = self._live_consumer_group(group_id) if group_id else None
        if found is None:
            return super().leave_group(group_id=group_id, members=members)
        shard, group = found
        results: list[tuple[str, str | None, int]] = []
        left = []
        for member_id, instance_id in members:
            try:
                # a static member may leave by its instance id alone
                member = self._classic_member(group, member_id or None, instance_id)
            except CoordinatorError as failure:
                results.append((member_id, instance_id, failure.error_code))
                continue
            group.remove_member(member.member_id)
            left.append(member.member_id)
            results.append((member_id, instance_id, ErrorCode.none))
        if left:
            log.info("group %s: classic member(s) left: %s", group_id, ", ".join(left))
            try:
                self._members_left(shard, group)
            except CoordinatorError as failure:
                log.warning("group %s: cannot store its epoch: %s", group_id, failure)
        return ErrorCode.none, results


def _waits_for_others(group: ConsumerGroup, member: ConsumerMember) -> bool:
    """Whether a member waiting for unreleased partitions still has to: another member
    holds one of them."""
    for topic, partitions in group.target.get(member.member_id, {}).items():
        for p in partitions - member.assigned.get(topic, frozenset()):
            if group.owner_epoch(topic, p) != -1:
                return True
    return False
