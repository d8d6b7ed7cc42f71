"""The consumer group protocol (KIP-848): ConsumerGroupHeartbeat and ConsumerGroupDescribe,
as Kafka's GroupMetadataManager runs them.

Each heartbeat does three things, in Kafka's order:
1. the member is added or updated; a change of its subscription, or of the subscribed
   topics' partitions, bumps the group epoch;
2. a group epoch above the assignment epoch makes the assignor compute a new target;
3. the member takes its next step towards its target (see ``consumer_group.reconcile``).

The group epoch is stored (a ConsumerGroupMetadata record, as Kafka writes it), so the
group and its kind survive a coordinator move. Members and assignments are kept in memory
only: after a move, members get UNKNOWN_MEMBER_ID and rejoin, which clients do on their own.

Groups move between protocols when they are empty, as in Kafka: a heartbeat converts an
empty classic group, a JoinGroup an empty consumer group. A group with live members
keeps its protocol (Kafka 3.9's default, ``group.consumer.migration.policy=disabled``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kcli.broker.errors import ErrorCode
from kcli.broker.group.assignors import ASSIGNORS, Assignment
from kcli.broker.group.consumer_group import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    reconcile,
)
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import Group
from kcli.broker.group.runtime import OFFSETS_TOPIC, CoordinatorRuntime, now_ms
from kcli.broker.group.shard import (
    KeyValue,
    Shard,
    consumer_group_record,
    group_tombstone,
)

log = logging.getLogger("kcli.broker.group")

TopicIdPartitions = list[tuple[uuid.UUID, list[int]]]


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """A ConsumerGroupHeartbeat, any version; None fields did not change."""

    group_id: str
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: TopicIdPartitions | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """What a ConsumerGroupHeartbeat response carries."""

    error: int = ErrorCode.none
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: TopicIdPartitions | None = None


@dataclass(frozen=True, slots=True)
class ConsumerMemberDescription:
    member: ConsumerMember
    target: Assignment


@dataclass(frozen=True, slots=True)
class ConsumerGroupDescription:
    """One group of a ConsumerGroupDescribe answer."""

    group_id: str
    error: int = ErrorCode.none
    message: str | None = None
    state: str = "Dead"
    group_epoch: int = -1
    assignment_epoch: int = -1
    assignor: str = ""
    members: tuple[ConsumerMemberDescription, ...] = ()


class ConsumerProtocol(CoordinatorRuntime):
    """ConsumerGroupHeartbeat and ConsumerGroupDescribe on top of the runtime."""

    # ================================================================== heartbeat

    async def consumer_heartbeat(self, request: HeartbeatRequest) -> HeartbeatAnswer:
        """Handle a ConsumerGroupHeartbeat: join, stay, reconcile or leave."""
        try:
            self._validate_heartbeat(request)
            shard = self._shard_for(request.group_id)
            if request.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
                return await self._leave(shard, request)
            return await self._heartbeat(shard, request)
        except CoordinatorError as failure:
            message = str(failure) if failure.args and str(failure) != (
                f"error {failure.error_code}") else None
            return HeartbeatAnswer(failure.error_code, message, request.member_id or None,
                                   request.member_epoch)

    def _validate_heartbeat(self, r: HeartbeatRequest) -> None:
        def invalid(message: str) -> CoordinatorError:
            return CoordinatorError(ErrorCode.invalid_request, message)

        if not r.group_id:
            raise invalid("GroupId can't be empty.")
        if r.instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if r.rack_id == "":
            raise invalid("RackId can't be empty.")
        if r.member_epoch > 0 or r.member_epoch == LEAVE_EPOCH:
            if not r.member_id:
                raise invalid("MemberId can't be empty.")
        elif r.member_epoch == 0:
            if r.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if r.owned is None or r.owned:
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if not r.subscribed_topic_names and not r.subscribed_topic_regex:
                raise invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in "
                              "first request.")
        elif r.member_epoch == STATIC_LEAVE_EPOCH:
            if not r.member_id:
                raise invalid("MemberId can't be empty.")
            if r.instance_id is None:
                raise invalid("InstanceId can't be null.")
        else:
            raise invalid("MemberEpoch is invalid.")
        if r.server_assignor is not None and r.server_assignor not in ASSIGNORS:
            raise CoordinatorError(
                ErrorCode.unsupported_assignor,
                f"ServerAssignor {r.server_assignor} is not supported. Supported assignors: "
                f"{', '.join(ASSIGNORS)}.")
        if r.subscribed_topic_regex is not None:
            try:
                re.compile(r.subscribed_topic_regex)
            except re.error as error:
                raise CoordinatorError(
                    ErrorCode.invalid_regular_expression,
                    f"SubscribedTopicRegex {r.subscribed_topic_regex!r} is invalid: {error}"
                ) from None

    async def _heartbeat(self, shard: Shard, r: HeartbeatRequest) -> HeartbeatAnswer:
        records: list[KeyValue] = []
        joining = r.member_epoch == 0
        group = self._consumer_group(shard, r.group_id, create=joining, records=records)
        member_id = r.member_id or str(uuid.uuid4())
        self._check_room(group, member_id)
        is_new = member_id not in group.members
        rejoin = joining and not is_new
        member = self._member(group, r, member_id)
        updated = replace(
            member, client_id=r.client_id, client_host=r.client_host,
            instance_id=r.instance_id if r.instance_id is not None else member.instance_id,
            rack_id=r.rack_id if r.rack_id is not None else member.rack_id,
            rebalance_timeout_ms=(r.rebalance_timeout_ms if r.rebalance_timeout_ms != -1
                                  else member.rebalance_timeout_ms),
            assignor=r.server_assignor if r.server_assignor is not None else member.assignor,
            subscribed_topics=(tuple(r.subscribed_topic_names)
                               if r.subscribed_topic_names is not None
                               else member.subscribed_topics),
            subscribed_regex=(r.subscribed_topic_regex if r.subscribed_topic_regex is not None
                              else member.subscribed_regex),
        )
        # a rejoin has dropped what it had: it gets a fresh epoch and target
        bump = (member.member_id not in group.members or rejoin
                or updated.subscribed_topics != member.subscribed_topics
                or updated.subscribed_regex != member.subscribed_regex)
        group.put_member(updated)
        metadata = self._subscription_metadata(group)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            bump = True
        if bump:
            group.group_epoch += 1
            records.append(consumer_group_record(group.group_id, group.group_epoch))
            log.info("group %s: epoch %d (%s)", group.group_id, group.group_epoch,
                     "member " + member_id + (" joins" if joining else " changed"))
        if group.group_epoch > group.assignment_epoch:
            self._assign(group)
        owned = None if r.owned is None else self._by_name(r.owned)
        reconciled = reconcile(updated, group.assignment_epoch,
                               group.target.get(member_id, {}), group, owned)
        if reconciled != updated:
            group.put_member(reconciled)
            self._rebalance_timer(shard, group, reconciled)
        self._session_timer(shard, group, member_id)
        if records:
            last = self._append(shard, records)
            await self._await_committed(shard, last)
        full = joining or (r.rebalance_timeout_ms != -1 and r.subscribed_topic_names is not None
                           and r.owned is not None)
        changed = is_new or reconciled.assigned != member.assigned
        return HeartbeatAnswer(
            member_id=member_id, member_epoch=reconciled.member_epoch,
            heartbeat_interval_ms=self._setting("group.consumer.heartbeat.interval.ms"),
            assignment=self._by_id(reconciled.assigned) if full or changed else None,
        )

    def _check_room(self, group: ConsumerGroup, member_id: str) -> None:
        """A new member is refused once the group has ``group.consumer.max.size``."""
        limit = self._setting("group.consumer.max.size")
        if len(group.members) >= limit and member_id not in group.members:
            raise CoordinatorError(ErrorCode.group_max_size_reached,
                                   f"The consumer group has reached its maximum capacity of "
                                   f"{limit} members.")

    def _consumer_group(self, shard: Shard, group_id: str, *, create: bool,
                        records: list[KeyValue]) -> ConsumerGroup:
        group = shard.consumer_groups.get(group_id)
        if group is not None:
            return group
        classic = shard.groups.get(group_id)
        if not create:
            raise CoordinatorError(ErrorCode.group_id_not_found,
                                   f"Consumer group {group_id} not found." if classic is None
                                   else f"Group {group_id} is not a consumer group.")
        if classic is not None:
            if classic.members:
                return self._upgrade(shard, classic, records)
            log.info("group %s: the empty classic group becomes a consumer group", group_id)
            classic.cancel_timers()
            del shard.groups[group_id]
            records.append(group_tombstone(group_id))
        group = shard.consumer_groups[group_id] = ConsumerGroup(group_id, now_ms())
        return group

    def _member(self, group: ConsumerGroup, r: HeartbeatRequest, member_id: str
                ) -> ConsumerMember:
        """The member the heartbeat is from, new if it joins (a static member takes its
        predecessor's place and assignment)."""
        if r.instance_id is not None:
            previous = group.static_member(r.instance_id)
            if previous is not None and previous.member_id != member_id:
                if r.member_epoch != 0:
                    raise CoordinatorError(ErrorCode.fenced_instance_id,
                                           f"Static member {r.instance_id} has another member id.")
                if previous.member_epoch != STATIC_LEAVE_EPOCH:
                    raise CoordinatorError(
                        ErrorCode.unreleased_instance_id,
                        f"Static member {previous.member_id} with instance id {r.instance_id} "
                        "is present in the consumer group.")
                group.remove_member(previous.member_id)
                log.info("group %s: static member %s replaces %s", group.group_id, member_id,
                         previous.member_id)
                return replace(previous, member_id=member_id,
                               member_epoch=previous.previous_epoch)
        existing = group.members.get(member_id)
        if r.member_epoch == 0:
            if existing is None:
                log.info("group %s: member %s joins", group.group_id, member_id)
                return ConsumerMember(member_id, r.client_id, r.client_host)
            # a rejoin: it has let go of everything
            group.put_member(replace(existing, assigned={}, pending_revocation={},
                                     state=MemberState.STABLE))
            return replace(existing, member_epoch=0, previous_epoch=0, assigned={},
                           pending_revocation={}, state=MemberState.STABLE)
        if existing is None or existing.classic is not None:
            raise CoordinatorError(ErrorCode.unknown_member_id,
                                   f"Member {member_id} is not a member of group {group.group_id}"
                                   " using the consumer protocol.")
        self._check_epoch(existing, r)
        return existing

    def _check_epoch(self, member: ConsumerMember, r: HeartbeatRequest) -> None:
        if r.member_epoch > member.member_epoch:
            raise CoordinatorError(
                ErrorCode.fenced_member_epoch,
                f"The consumer group member has a greater member epoch ({r.member_epoch}) than "
                f"the one known by the group coordinator ({member.member_epoch}). The member "
                "must abandon all its partitions and rejoin.")
        if r.member_epoch < member.member_epoch:
            owned = self._by_name(r.owned) if r.owned is not None else None
            subset = owned is not None and all(
                partitions <= member.assigned.get(topic, frozenset())
                for topic, partitions in owned.items())
            if r.member_epoch != member.previous_epoch or not subset:
                raise CoordinatorError(
                    ErrorCode.fenced_member_epoch,
                    f"The consumer group member has a smaller member epoch ({r.member_epoch}) "
                    f"than the one known by the group coordinator ({member.member_epoch}). The "
                    "member must abandon all its partitions and rejoin.")

    async def _leave(self, shard: Shard, r: HeartbeatRequest) -> HeartbeatAnswer:
        group = shard.consumer_groups.get(r.group_id)
        if group is None:
            raise CoordinatorError(ErrorCode.group_id_not_found,
                                   f"Consumer group {r.group_id} not found.")
        if r.instance_id is not None:
            member = group.static_member(r.instance_id)
            if member is None:
                raise CoordinatorError(ErrorCode.unknown_member_id,
                                       f"Instance id {r.instance_id} is unknown.")
            if member.member_id != r.member_id:
                raise CoordinatorError(ErrorCode.fenced_instance_id,
                                       f"Static member {r.instance_id} has another member id.")
            if r.member_epoch == STATIC_LEAVE_EPOCH:
                # it will be back: its place and partitions wait for its session timeout
                group.put_member(replace(member, member_epoch=STATIC_LEAVE_EPOCH,
                                         previous_epoch=member.member_epoch,
                                         pending_revocation={}))
                log.info("group %s: static member %s left for now", r.group_id, member.member_id)
                return HeartbeatAnswer(member_id=member.member_id,
                                       member_epoch=STATIC_LEAVE_EPOCH)
        elif r.member_id not in group.members:
            raise CoordinatorError(ErrorCode.unknown_member_id,
                                   f"Member {r.member_id} is not a member of group {r.group_id}.")
        log.info("group %s: member %s leaves", r.group_id, r.member_id)
        await self._fence(shard, group, r.member_id)
        return HeartbeatAnswer(member_id=r.member_id, member_epoch=r.member_epoch)

    def _upgrade(self, shard: Shard, classic: Group, records: list[KeyValue]) -> ConsumerGroup:
        """A consumer protocol member joins a classic group with members: convert it, or
        refuse (see ``migration``, which overrides this)."""
        raise CoordinatorError(ErrorCode.group_id_not_found,
                               f"Group {classic.group_id} is not a consumer group.")

    def _downgrade(self, shard: Shard, group: ConsumerGroup, leaving: str) -> int | None:
        """The last consumer protocol member leaves a group of classic members: convert it
        to a classic group (returns the last offset written), or None to keep it (see
        ``migration``)."""
        return None

    async def _fence(self, shard: Shard, group: ConsumerGroup, member_id: str) -> None:
        """Remove a member and reassign what it had (a leave or an expired timer)."""
        if member_id not in group.members:
            return
        converted = self._downgrade(shard, group, member_id)
        if converted is not None:
            await self._await_committed(shard, converted)
            return
        group.remove_member(member_id)
        await self._await_committed(shard, self._members_left(shard, group))

    def _members_left(self, shard: Shard, group: ConsumerGroup) -> int:
        """After members were removed: a new epoch and target, stored (the offset of the
        record; raises CoordinatorError when it cannot be written)."""
        group.group_epoch += 1
        group.subscription_metadata = self._subscription_metadata(group)
        self._assign(group)
        return self._append(shard, [consumer_group_record(group.group_id, group.group_epoch)])

    # ================================================================== timers

    def _session_timer(self, shard: Shard, group: ConsumerGroup, member_id: str) -> None:
        """(Re)start a member's session: the broker's setting, or a classic member's own."""
        previous = group.session_timers.pop(member_id, None)
        if previous is not None:
            previous.cancel()
        member = group.members.get(member_id)
        timeout = (member.classic.session_timeout_ms if member is not None and member.classic
                   else self._setting("group.consumer.session.timeout.ms"))
        group.session_timers[member_id] = self._schedule(
            timeout, self._expire, shard, group, member_id, None, "its session expired")

    def _rebalance_timer(self, shard: Shard, group: ConsumerGroup, member: ConsumerMember
                         ) -> None:
        """A member asked to revoke must do so within its rebalance timeout."""
        previous = group.rebalance_timers.pop(member.member_id, None)
        if previous is not None:
            previous.cancel()
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            group.rebalance_timers[member.member_id] = self._schedule(
                member.rebalance_timeout_ms, self._expire, shard, group, member.member_id,
                member.member_epoch, f"it did not revoke partitions within "
                f"{member.rebalance_timeout_ms} ms")

    def _expire(self, shard: Shard, group: ConsumerGroup, member_id: str, epoch: int | None,
                reason: str) -> None:
        if self._shards.get(shard.index) is not shard or shard.consumer_groups.get(
                group.group_id) is not group:
            return
        member = group.members.get(member_id)
        if member is None or (epoch is not None and member.member_epoch != epoch):
            return
        log.info("group %s: member %s removed: %s", group.group_id, member_id, reason)

        async def fence() -> None:
            try:
                await self._fence(shard, group, member_id)
            except CoordinatorError as failure:
                log.warning("group %s: removing member %s: %s", group.group_id, member_id,
                            failure)

        self._spawn(fence(), f"fence-{group.group_id}")

    # ================================================================== assignment

    def _subscription_metadata(self, group: ConsumerGroup) -> dict[str, tuple[uuid.UUID, int]]:
        """Id and partition count of every existing topic a member subscribes to."""
        names = group.subscribed_topics()
        patterns = {m.subscribed_regex for m in group.members.values() if m.subscribed_regex}
        if patterns:
            names |= self._regex_topics(patterns)
        found = {}
        for name in names:
            topic = self.broker.topic(name)
            if topic is not None:
                found[name] = (topic.topic_id, len(topic.partitions))
        return found

    def _regex_topics(self, patterns: set[str]) -> set[str]:
        compiled = [re.compile(p) for p in patterns]
        return {name for name in self.broker.topic_names()
                if name != OFFSETS_TOPIC and not name.startswith("__")
                and any(c.fullmatch(name) for c in compiled)}

    def _member_topics(self, member: ConsumerMember, group: ConsumerGroup) -> frozenset[str]:
        topics = set(member.subscribed_topics)
        if member.subscribed_regex:
            pattern = re.compile(member.subscribed_regex)
            topics |= {t for t in group.subscription_metadata if pattern.fullmatch(t)}
        return frozenset(t for t in topics if t in group.subscription_metadata)

    def _assign(self, group: ConsumerGroup) -> None:
        """Compute the target assignment of the group epoch."""
        wanted = [m.assignor for m in group.members.values() if m.assignor]
        # the most common preference wins, as in Kafka; ties go to the first in the list
        name = max(ASSIGNORS, key=lambda a: (wanted.count(a), -list(ASSIGNORS).index(a)))
        group.assignor_name = name
        subscriptions = {m.member_id: self._member_topics(m, group)
                         for m in group.members.values()}
        counts = {t: count for t, (_, count) in group.subscription_metadata.items()}
        group.target = ASSIGNORS[name](subscriptions, counts, group.target)
        group.assignment_epoch = group.group_epoch

    def _by_name(self, owned: TopicIdPartitions) -> Assignment:
        names = {self.broker.topic(n).topic_id: n  # type: ignore[union-attr]
                 for n in self.broker.topic_names()} if owned else {}
        result: dict[str, frozenset[int]] = {}
        for topic_id, partitions in owned:
            name = names.get(topic_id)
            if name is not None:
                result[name] = result.get(name, frozenset()) | frozenset(partitions)
        return result

    def _by_id(self, assignment: Assignment) -> TopicIdPartitions:
        result = []
        for name, partitions in sorted(assignment.items()):
            topic = self.broker.topic(name)
            if topic is not None:
                result.append((topic.topic_id, sorted(partitions)))
        return result

    # ================================================================== describe

    def describe_consumer_groups(self, group_ids: Sequence[str]) -> list[ConsumerGroupDescription]:
        """Handle a ConsumerGroupDescribe."""
        described = []
        for group_id in group_ids:
            try:
                shard = self._shard_for(group_id)
            except CoordinatorError as failure:
                described.append(ConsumerGroupDescription(group_id, failure.error_code))
                continue
            group = shard.consumer_groups.get(group_id)
            if group is None:
                message = (f"Group {group_id} is not a consumer group."
                           if group_id in shard.groups else f"Group {group_id} not found.")
                described.append(ConsumerGroupDescription(
                    group_id, ErrorCode.group_id_not_found, message))
                continue
            members = tuple(
                ConsumerMemberDescription(m, group.target.get(m.member_id, {}))
                for m in group.members.values())
            described.append(ConsumerGroupDescription(
                group_id, state=group.state.value, group_epoch=group.group_epoch,
                assignment_epoch=group.assignment_epoch, assignor=group.assignor_name,
                members=members))
        return described
