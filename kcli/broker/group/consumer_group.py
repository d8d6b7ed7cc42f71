"""A group of the consumer group protocol (KIP-848): members, epochs, the target
assignment and each member's way towards it.

The coordinator owns the assignment. Any change to the members, their subscriptions or
the subscribed topics bumps the group epoch, and the assignor computes that epoch's
target. A member reaches the target in steps: first it gives up what the target takes
from it (keeping its epoch until its heartbeat no longer lists those partitions), then it
gets the new partitions that nobody else still holds, and with them the target epoch. So
no partition is ever owned by two members at once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum

from kcli.broker.group.assignors import Assignment


class ConsumerGroupState(Enum):
    """States as Kafka reports them for consumer protocol groups."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class MemberState(Enum):
    """Where a member is on its way to the target assignment (Kafka's ``MemberState``)."""

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


@dataclass(frozen=True, slots=True)
class ClassicMetadata:
    """What a member of the classic protocol in a consumer group joined with."""

    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]
    """Its (name, subscription) pairs, in its order of preference."""


@dataclass(frozen=True, slots=True)
class ConsumerMember:
    """One member as the coordinator knows it."""

    member_id: str
    client_id: str
    client_host: str
    subscribed_topics: tuple[str, ...] = ()
    subscribed_regex: str | None = None
    rebalance_timeout_ms: int = 300_000
    instance_id: str | None = None
    rack_id: str | None = None
    assignor: str | None = None
    member_epoch: int = 0
    previous_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    classic: ClassicMetadata | None = None
    """Set for a member that joined with JoinGroup (the classic protocol)."""

    def is_reconciled_to(self, epoch: int) -> bool:
        return self.state is MemberState.STABLE and self.member_epoch == epoch

    def with_epoch(self, epoch: int, **changes: object) -> ConsumerMember:
        """This member moved to ``epoch`` (its previous epoch remembered) with ``changes``."""
        return replace(self, member_epoch=epoch, previous_epoch=self.member_epoch,
                       **changes)  # type: ignore[arg-type]


@dataclass
class ConsumerGroup:
    """A consumer protocol group with its members and assignments."""

    group_id: str
    created_ms: int
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    subscription_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    """The subscribed topics as last seen: id and partition count. A change bumps the epoch."""
    owners: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    """Who holds each owned partition (assigned or pending revocation), with the member's
    epoch."""
    assignor_name: str = "uniform"
    session_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    rebalance_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    dead: bool = False

    @property
    def state(self) -> ConsumerGroupState:
        if self.dead:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(not m.is_reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def subscribed_topics(self) -> set[str]:
        """Every topic some member subscribes to by name (regexes resolved by the caller)."""
        return {t for m in self.members.values() for t in m.subscribed_topics}

    def is_subscribed_to(self, topic: str) -> bool:
        """Whether a live member reads the topic (its offsets then neither expire nor may
        be deleted)."""
        return bool(self.members) and topic in self.subscription_metadata

    def static_member(self, instance_id: str) -> ConsumerMember | None:
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def owner_epoch(self, topic: str, partition: int) -> int:
        """The epoch of the member that holds a partition, -1 when nobody does."""
        owner = self.owners.get((topic, partition))
        return -1 if owner is None else owner[1]

    def put_member(self, member: ConsumerMember) -> None:
        """Add or update a member, keeping the partition owners in step."""
        old = self.members.get(member.member_id)
        if old is not None:
            self._release(old)
        self.members[member.member_id] = member
        for assignment in (member.assigned, member.pending_revocation):
            for topic, partitions in assignment.items():
                for p in partitions:
                    self.owners[(topic, p)] = (member.member_id, member.member_epoch)

    def remove_member(self, member_id: str) -> ConsumerMember | None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self._release(member)
            self.target.pop(member_id, None)
            for timers in (self.session_timers, self.rebalance_timers):
                timer = timers.pop(member_id, None)
                if timer is not None:
                    timer.cancel()
        return member

    def _release(self, member: ConsumerMember) -> None:
        for assignment in (member.assigned, member.pending_revocation):
            for topic, partitions in assignment.items():
                for p in partitions:
                    owner = self.owners.get((topic, p))
                    if owner is not None and owner[0] == member.member_id:
                        del self.owners[(topic, p)]

    def cancel_timers(self) -> None:
        for timers in (self.session_timers, self.rebalance_timers):
            for timer in timers.values():
                timer.cancel()
            timers.clear()

    def close(self) -> None:
        """The group is gone from its coordinator (deleted, converted or unloaded): its
        timers stop and it reports itself Dead."""
        self.dead = True
        self.cancel_timers()


def reconcile(member: ConsumerMember, target_epoch: int, target: Assignment,
              group: ConsumerGroup, owned: Assignment | None) -> ConsumerMember:
    """The member's next step towards ``target`` (Kafka's CurrentAssignmentBuilder).

    ``owned`` is what the member's heartbeat says it holds (None: not sent this time).
    """
    if member.state is MemberState.STABLE:
        if member.member_epoch == target_epoch:
            return member
        return _next_step(member, member.member_epoch, target_epoch, target, group, owned)
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if _still_owns(owned, member.pending_revocation):
            return member
        return _next_step(member, member.member_epoch + 1, target_epoch, target, group, owned)
    return _next_step(member, member.member_epoch, target_epoch, target, group, owned)


def _still_owns(owned: Assignment | None, revoking: Assignment) -> bool:
    if owned is None:
        return True  # nothing reported: assume it has not let go yet
    return any(owned.get(topic, frozenset()) & partitions for topic, partitions in revoking.items())


def _next_step(member: ConsumerMember, epoch: int, target_epoch: int, target: Assignment,
               group: ConsumerGroup, owned: Assignment | None) -> ConsumerMember:
    kept: dict[str, frozenset[int]] = {}
    revoking: dict[str, frozenset[int]] = {}
    adding: dict[str, frozenset[int]] = {}
    unreleased = False
    for topic in set(target) | set(member.assigned):
        wanted = target.get(topic, frozenset())
        current = member.assigned.get(topic, frozenset())
        keep = current & wanted
        give_up = current - keep
        new = wanted - keep
        free = frozenset(p for p in new if group.owner_epoch(topic, p) == -1)
        unreleased = unreleased or free != new
        if keep:
            kept[topic] = keep
        if give_up:
            revoking[topic] = give_up
        if free:
            adding[topic] = free
    if revoking and _still_owns(owned, revoking):
        # first the member gives up what it loses, keeping its epoch meanwhile
        return member.with_epoch(epoch, state=MemberState.UNREVOKED_PARTITIONS,
                                 assigned=kept, pending_revocation=revoking)
    assigned = dict(kept)
    for topic, partitions in adding.items():
        assigned[topic] = assigned.get(topic, frozenset()) | partitions
    state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    return member.with_epoch(target_epoch, state=state, assigned=assigned,
                             pending_revocation={})
