"""One classic consumer group: members, generations, protocol selection.

Bookkeeping only: no timers, no storage, no sockets. The coordinator drives the state
machine (Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead when the
group is deleted or its coordinator moves) and owns the timers; a member parked in a
JoinGroup or SyncGroup holds the future its request handler awaits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from kcli.broker.errors import ErrorCode
from kcli.broker.group.embedded import EmbeddedFormatError, parse_subscription

log = logging.getLogger("kcli.broker.group")

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(Enum):
    """Classic group states, named as Kafka reports them."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


@dataclass(frozen=True, slots=True)
class JoinedMember:
    """A member as the leader sees it in its JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The answer to one JoinGroup."""

    error: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: tuple[JoinedMember, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The answer to one SyncGroup."""

    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


Protocols = tuple[tuple[str, bytes], ...]
"""A member's supported protocols, (name, metadata), in its order of preference."""


@dataclass(eq=False)
class Member:
    """One member of a classic group."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None
    is_new: bool = False
    """Added in the current rebalance and not yet answered: its session does not run yet,
    the new-member join timeout bounds it instead."""
    heartbeat_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_future is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_future is not None

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    def metadata(self, protocol: str | None) -> bytes:
        """This member's metadata for ``protocol`` (b"" if it does not support it)."""
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.protocols}

    def matches(self, protocols: Protocols) -> bool:
        """Whether ``protocols`` are exactly this member's (names, metadata and order)."""
        return protocols == self.protocols

    def vote(self, candidates: set[str]) -> str:
        """The member's preferred protocol among ``candidates``."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat(self) -> bool:
        """Whether an expiring session is excused: a member parked in a JoinGroup or
        SyncGroup cannot heartbeat, unless it is new (the join timeout then applies)."""
        if self.is_new:
            return False
        return self.is_awaiting_join or self.is_awaiting_sync

    def cancel_heartbeat(self) -> None:
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()
            self.heartbeat_timer = None


def _complete(future: asyncio.Future[JoinResult] | asyncio.Future[SyncResult] | None,
              result: JoinResult | SyncResult) -> None:
    if future is not None and not future.done():
        future.set_result(result)  # type: ignore[arg-type]


def new_member_id(client_id: str | None, group_instance_id: str | None) -> str:
    """Kafka's member ids: ``<client id>-<uuid>``, or ``<instance id>-<uuid>`` for static
    members."""
    prefix = group_instance_id if group_instance_id is not None else (client_id or "")
    return f"{prefix}-{uuid.uuid4()}"


class Group:
    """A classic group's membership and generation state."""

    def __init__(self, group_id: str, now_ms: int, state: GroupState = GroupState.EMPTY) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state = state
        self.state_timestamp: int | None = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}
        self.pending_join: dict[str, asyncio.TimerHandle | None] = {}
        """Member ids handed out with MEMBER_ID_REQUIRED, not yet joined with them, and the
        timer that forgets each after a session timeout."""
        self.pending_sync: set[str] = set()
        """Members of the new generation that have not sent SyncGroup yet."""
        self.supported_protocols: Counter[str] = Counter()
        self.awaiting_join = 0
        self.new_member_added = False
        self.subscribed_topics: frozenset[str] | None = None
        """Topics the members subscribe to (consumer protocol), None when unknown."""
        self.join_timer: asyncio.TimerHandle | None = None
        self.sync_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (f"Group({self.group_id!r}, {self.state.value}, generation={self.generation_id}, "
                f"members={len(self.members)})")

    # ------------------------------------------------------------------ state

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise RuntimeError(
                f"group {self.group_id}: no transition from {self.state.value} to {state.value}"
            )
        self.previous_state = self.state
        self.state = state
        self.state_timestamp = now_ms

    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS[GroupState.PREPARING_REBALANCE]

    @property
    def is_simple(self) -> bool:
        """A group that only holds offsets committed without membership."""
        return self.protocol_type is None and not self.members

    def cancel_timers(self) -> None:
        for timer in (self.join_timer, self.sync_timer):
            if timer is not None:
                timer.cancel()
        self.join_timer = self.sync_timer = None
        for member in self.members.values():
            member.cancel_heartbeat()
        for pending in self.pending_join.values():
            if pending is not None:
                pending.cancel()
        self.pending_join.clear()

    # ------------------------------------------------------------------ members

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def static_member_id(self, group_instance_id: str) -> str | None:
        return self.static_members.get(group_instance_id)

    def add(self, member: Member, future: asyncio.Future[JoinResult] | None = None) -> None:
        """Add a member (awaiting its join response when ``future`` is given)."""
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise RuntimeError(f"instance {member.group_instance_id} is already a member")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.supported_protocols.update(member.protocol_names())
        member.join_future = future
        if future is not None:
            self.awaiting_join += 1
        self._forget_pending(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        """Remove a member (or a pending one); a leaving leader hands over to the next."""
        member = self.members.pop(member_id, None)
        if member is not None:
            self.supported_protocols.subtract(member.protocol_names())
            if member.is_awaiting_join:
                self.awaiting_join -= 1
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
            member.cancel_heartbeat()
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self._forget_pending(member_id)
        self.pending_sync.discard(member_id)
        return member

    def _forget_pending(self, member_id: str) -> None:
        timer = self.pending_join.pop(member_id, None)
        if timer is not None:
            timer.cancel()

    def update_member(self, member: Member, protocols: Protocols, rebalance_timeout_ms: int,
                      session_timeout_ms: int, future: asyncio.Future[JoinResult] | None) -> None:
        """A member rejoins: new protocols and timeouts; it now awaits ``future``."""
        self.supported_protocols.subtract(member.protocol_names())
        member.protocols = protocols
        self.supported_protocols.update(member.protocol_names())
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if future is not None and member.join_future is not None:
            # The same member joins again while its previous JoinGroup is parked (a retry on
            # another connection): answer the superseded request instead of leaving it hanging.
            _complete(member.join_future,
                      JoinResult(ErrorCode.rebalance_in_progress, member_id=member.member_id))
            member.join_future = future
            return
        if future is not None and not member.is_awaiting_join:
            self.awaiting_join += 1
        elif future is None and member.is_awaiting_join:
            self.awaiting_join -= 1
        member.join_future = future

    def replace_static_member(self, group_instance_id: str, old_member_id: str,
                              new_member_id: str) -> Member:
        """A static member came back with a new member id: the old id is fenced."""
        old = self.members.pop(old_member_id)
        fenced_join = JoinResult(ErrorCode.fenced_instance_id, member_id=old_member_id)
        if old.join_future is not None:
            self.awaiting_join -= 1
        _complete(old.join_future, fenced_join)
        _complete(old.sync_future, SyncResult(ErrorCode.fenced_instance_id))
        old.join_future = old.sync_future = None
        old.cancel_heartbeat()
        new = Member(new_member_id, group_instance_id, old.client_id, old.client_host,
                     old.rebalance_timeout_ms, old.session_timeout_ms, old.protocol_type,
                     old.protocols, old.assignment)
        self.members[new_member_id] = new
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        self.pending_sync.discard(old_member_id)
        return new

    def add_pending_member(self, member_id: str, timer: asyncio.TimerHandle | None) -> None:
        self.pending_join[member_id] = timer

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_join

    def validate_member(self, member_id: str, group_instance_id: str | None) -> int:
        """NONE, UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when the instance id now
        belongs to another member id."""
        if group_instance_id is not None:
            existing = self.static_members.get(group_instance_id)
            if existing is None:
                return ErrorCode.unknown_member_id
            if existing != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return ErrorCode.none

    def not_yet_rejoined(self) -> list[Member]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.awaiting_join and not self.pending_join

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else elect a member that did; False if none did."""
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.is_awaiting_join:
            return True
        for member in self.members.values():
            if member.is_awaiting_join:
                log.info("group %s: leader %s did not rejoin in time; %s leads now",
                         self.group_id, self.leader_id, member.member_id)
                self.leader_id = member.member_id
                return True
        return False

    # ------------------------------------------------------------------ protocols

    def candidate_protocols(self) -> set[str]:
        count = len(self.members)
        return {name for name, n in self.supported_protocols.items() if n == count and n > 0}

    def supports_protocols(self, protocol_type: str, names: set[str]) -> bool:
        """Whether a member with these protocols may join."""
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        count = len(self.members)
        return self.protocol_type == protocol_type and any(
            self.supported_protocols.get(name, 0) == count for name in names
        )

    def select_protocol(self) -> str:
        """The protocol every member supports that most members prefer (ties: the one
        preferred first in member order)."""
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter(m.vote(candidates) for m in self.members.values())
        best = max(votes.values())
        for member in self.members.values():
            choice = member.vote(candidates)
            if votes[choice] == best:
                return choice
        raise RuntimeError("no protocol")  # pragma: no cover - votes is never empty here

    def init_next_generation(self, now_ms: int) -> None:
        """Start the next generation: CompletingRebalance with members, else Empty."""
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.pending_sync.clear()

    def current_members(self) -> tuple[JoinedMember, ...]:
        """Every member with its metadata for the selected protocol (for the leader)."""
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )

    def assignments(self) -> dict[str, bytes]:
        return {member_id: m.assignment for member_id, m in self.members.items()}

    # ------------------------------------------------------------------ subscriptions

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """Topics the members subscribe to, from the consumer protocol metadata of the
        selected protocol; None when unknown (another protocol type, or unparsable)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                log.warning("group %s: cannot parse the %s subscription of member %s; "
                            "its subscribed topics are unknown",
                            self.group_id, self.protocol_name, member.member_id)
                return None
            topics.update(parsed)
        return frozenset(topics)

    def is_subscribed_to(self, topic: str) -> bool:
        """Whether the members subscribe to ``topic`` (unknown subscriptions: only a
        consumer-protocol group is assumed to)."""
        if self.subscribed_topics is not None:
            return topic in self.subscribed_topics
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    # ------------------------------------------------------------------ answering members

    def complete_join(self, member: Member, result: JoinResult) -> bool:
        if member.join_future is None:
            return False
        _complete(member.join_future, result)
        member.join_future = None
        self.awaiting_join -= 1
        return True

    def complete_sync(self, member: Member, result: SyncResult) -> bool:
        if member.sync_future is None:
            return False
        _complete(member.sync_future, result)
        member.sync_future = None
        return True

    def fail_all(self, error: int) -> None:
        """Answer every parked JoinGroup and SyncGroup with ``error``."""
        for member_id, member in self.members.items():
            self.complete_join(member, JoinResult(error, member_id=member_id))
            self.complete_sync(member, SyncResult(error))


def subscription_topics(metadata: bytes) -> list[str] | None:
    """Topics of a consumer protocol subscription; None if the bytes are not one."""
    try:
        return list(parse_subscription(metadata).topics)
    except EmbeddedFormatError:
        return None


def protocol_names(protocols: Iterable[tuple[str, bytes]]) -> set[str]:
    return {name for name, _ in protocols}
