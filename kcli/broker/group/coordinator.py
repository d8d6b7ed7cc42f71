"""The group coordinator: classic consumer groups and committed offsets, as Kafka runs them.

Groups and offsets live in ``__consumer_offsets`` (internal, compacted), created on first
use. A group belongs to partition ``abs(hash(group_id)) % partitions`` of that topic and
is coordinated by the broker that leads that partition; every other broker answers
NOT_COORDINATOR, so moving leadership moves the coordinator. When this broker becomes
leader of an offsets partition it replays the partition's log (latest record per key
wins) before serving its groups; until then they get COORDINATOR_LOAD_IN_PROGRESS.

State changes are applied when their records are appended to the leader's log; the
answer to the client waits until the write is committed (the high watermark passes
it), as Kafka's coordinator answers only after acks=all. Everything runs on the event
loop: a JoinGroup or SyncGroup that must wait for the rest of the group parks on a
future the rebalance completes; session, join and sync deadlines are loop timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.group import errors
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupState,
    JoinedMember,
    JoinResult,
    Member,
    Protocols,
    SyncResult,
    new_member_id,
)
from kcli.broker.group.records import (
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordFormatError,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    encode_group_metadata_key,
    encode_group_metadata_value,
    encode_offset_commit_key,
    encode_offset_commit_value,
    partition_for_group,
)
from kcli.broker.log import (
    CorruptBatch,
    LogError,
    MessageTooLarge,
    Record,
    UnsupportedMagic,
    decode_records,
    iter_batches,
)
from kcli.broker.log.batch import batch_crc
from kcli.broker.partition import NotLeader

if TYPE_CHECKING:
    from kcli.broker.broker import Broker
    from kcli.broker.cluster.metadata import BrokerInfo, TopicState
    from kcli.broker.partition import Partition

log = logging.getLogger("kcli.broker.group")

OFFSETS_TOPIC = "__consumer_offsets"
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""How long a new member's JoinGroup may stay parked (Kafka's constant): a client that
gave up and retried must not leave defunct members behind forever."""
GROUP_TYPE_CLASSIC = "classic"
_DEAD = GroupState.DEAD
_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """An offset a group committed for a partition."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    """One partition of an OffsetCommit request."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    error: int
    state: str = ""
    protocol_type: str = ""
    protocol_data: str = ""
    members: tuple[MemberDescription, ...] = ()


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = GROUP_TYPE_CLASSIC


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    error: int = errors.NONE


_Offsets = dict[tuple[str, int], CommittedOffset]


class _Shard:
    """The groups and offsets of one ``__consumer_offsets`` partition this broker leads."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.loading = True
        self.groups: dict[str, Group] = {}
        self.offsets: dict[str, _Offsets] = {}
        self.load_task: asyncio.Task[None] | None = None


class GroupCoordinator:
    """Serves the group APIs for the groups whose offsets partitions this broker leads."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._shards: dict[int, _Shard] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._expiry_task: asyncio.Task[None] | None = None

    # ================================================================== settings

    def _setting(self, name: str) -> int:
        return self.broker.settings.get_int(name)

    @property
    def _retention_ms(self) -> int:
        return self._setting("offsets.retention.minutes") * 60_000

    # ================================================================== lifecycle

    def start(self) -> None:
        """Start background work (offset expiry); loads after this run in the background."""
        self._started = True
        self._expiry_task = asyncio.get_running_loop().create_task(
            self._expire_periodically(), name="offsets-expiry"
        )

    def close(self) -> None:
        """Stop: every parked request is answered NOT_COORDINATOR, timers are cancelled."""
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            self._expiry_task = None
        for index in list(self._shards):
            self._unload(index)
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("group coordinator task %s failed", task.get_name(),
                      exc_info=task.exception())

    def _schedule(self, delay_ms: int, callback: Callable[..., None], *args: Any
                  ) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(
            max(delay_ms, 0) / 1000, self._run_timer, callback, args
        )

    @staticmethod
    def _run_timer(callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception:  # a bug in one timer must not stop the others
            log.exception("group coordinator timer %s failed", callback.__name__)

    # ================================================================== the offsets topic

    def offsets_topic(self) -> TopicState | None:
        """``__consumer_offsets`` if it exists."""
        return self.broker.topic(OFFSETS_TOPIC)

    def ensure_offsets_topic(self) -> TopicState:
        """``__consumer_offsets``, created now if it does not exist yet."""
        topic = self.offsets_topic()
        if topic is not None:
            return topic
        settings = self.broker.settings
        replication = min(settings.get_int("offsets.topic.replication.factor"),
                          len(self.broker.live_broker_ids()))
        configs = {
            "cleanup.policy": "compact",
            "compression.type": "producer",
            "segment.bytes": settings.get("offsets.topic.segment.bytes"),
        }
        try:
            topic = self.broker.controller.create_topic(
                OFFSETS_TOPIC, settings.get_int("offsets.topic.num.partitions"),
                max(replication, 1), configs, internal=True,
            )
        except ControllerError as error:
            log.error("cannot create %s: %s", OFFSETS_TOPIC, error.message)
            raise CoordinatorError(errors.COORDINATOR_NOT_AVAILABLE, error.message) from None
        self.broker.apply_metadata()
        log.info("created %s with %d partitions", OFFSETS_TOPIC, len(topic.partitions))
        return topic

    def partition_for(self, group_id: str) -> int:
        """The offsets partition of a group (creating the topic on first use)."""
        topic = self.ensure_offsets_topic()
        return partition_for_group(group_id, len(topic.partitions))

    def find_coordinator(self, group_id: str) -> BrokerInfo:
        """The broker coordinating ``group_id``: the leader of its offsets partition."""
        topic = self.ensure_offsets_topic()
        state = topic.partitions[partition_for_group(group_id, len(topic.partitions))]
        info = self.broker.metadata.brokers.get(state.leader)
        if info is None or state.leader not in self.broker.live_broker_ids():
            raise CoordinatorError(errors.COORDINATOR_NOT_AVAILABLE,
                                   f"the coordinator of group {group_id!r} is not available")
        return info

    def _shard_for(self, group_id: str) -> _Shard:
        index = self.partition_for(group_id)
        shard = self._shards.get(index)
        if shard is None:
            raise CoordinatorError(errors.NOT_COORDINATOR,
                                   f"broker {self.broker.node_id} does not coordinate {group_id!r}")
        if shard.loading:
            raise CoordinatorError(errors.COORDINATOR_LOAD_IN_PROGRESS)
        return shard

    def _is_current(self, shard: _Shard, group: Group) -> bool:
        """Whether ``group`` is still the live object for its id (timers may outlive it)."""
        return (self._shards.get(shard.index) is shard and not group.is_in(_DEAD)
                and shard.groups.get(group.group_id) is group)

    # ================================================================== loading

    def on_metadata_changed(self) -> None:
        """Load the offsets partitions this broker now leads; drop the ones it lost."""
        topic = self.offsets_topic()
        led: set[int] = set()
        if topic is not None:
            for index in range(len(topic.partitions)):
                partition = self.broker.partition(OFFSETS_TOPIC, index)
                if partition is not None and partition.is_leader:
                    led.add(index)
        for index in [i for i in self._shards if i not in led]:
            self._unload(index)
        for index in sorted(led - self._shards.keys()):
            self._load(index)

    def _load(self, index: int) -> None:
        shard = self._shards[index] = _Shard(index)
        partition = self.broker.partition(OFFSETS_TOPIC, index)
        assert partition is not None
        small = partition.log.size_bytes() <= self._setting("offsets.load.buffer.size")
        if not self._started or small:
            for _ in self._load_steps(shard, partition):
                pass
            self._loaded(shard)
        else:
            shard.load_task = asyncio.get_running_loop().create_task(
                self._load_in_background(shard, partition), name=f"load-{OFFSETS_TOPIC}-{index}"
            )

    async def _load_in_background(self, shard: _Shard, partition: Partition) -> None:
        started = time.monotonic()
        for _ in self._load_steps(shard, partition):
            await asyncio.sleep(0)
            if self._shards.get(shard.index) is not shard:
                return
        shard.load_task = None
        self._loaded(shard)
        log.info("loaded %s-%d in %.2fs", OFFSETS_TOPIC, shard.index, time.monotonic() - started)

    def _load_steps(self, shard: _Shard, partition: Partition) -> Iterator[None]:
        """Replay the partition's log up to its high watermark, one chunk per step."""
        offset = partition.log.log_start_offset
        end = partition.high_watermark
        chunk = self._setting("offsets.load.buffer.size")
        where = f"{OFFSETS_TOPIC}-{shard.index}"
        while offset < end:
            try:
                data = partition.log.read(offset, chunk, upper_bound=end)
            except (LogError, OSError) as error:
                log.error("%s: cannot read at offset %d (%s); groups after it are not loaded",
                          where, offset, error)
                return
            if not data:
                return
            next_offset = self._replay_chunk(shard, data, where)
            if next_offset <= offset:
                log.error("%s: unreadable log at offset %d; groups after it are not loaded",
                          where, offset)
                return
            offset = next_offset
            yield

    def _replay_chunk(self, shard: _Shard, data: bytes, where: str) -> int:
        """Replay every whole batch in ``data``; returns the offset after the last one."""
        next_offset = -1
        try:
            for header in iter_batches(data):
                next_offset = header.next_offset
                if header.is_control:
                    continue
                if batch_crc(data, header.position, header.size) != header.crc:
                    log.warning("%s: skipping batch at offset %d with a bad CRC",
                                where, header.base_offset)
                    continue
                try:
                    records = decode_records(data, header)
                except (CorruptBatch, UnsupportedMagic) as error:
                    log.warning("%s: skipping unreadable batch at offset %d: %s",
                                where, header.base_offset, error)
                    continue
                for record in records:
                    self._replay(shard, record, where)
        except CorruptBatch as error:
            log.error("%s: corrupt batch after offset %d: %s", where, next_offset, error)
        return next_offset

    def _replay(self, shard: _Shard, record: Record, where: str) -> None:
        """Apply one stored record: the latest record of a key wins."""
        if record.key is None:
            log.warning("%s: skipping record at offset %d without a key", where, record.offset)
            return
        try:
            key = decode_key(record.key)
            if isinstance(key, OffsetCommitKey):
                if record.value is None:
                    offsets = shard.offsets.get(key.group)
                    if offsets is not None:
                        offsets.pop((key.topic, key.partition), None)
                        if not offsets:
                            del shard.offsets[key.group]
                    return
                value = decode_offset_commit_value(record.value)
                shard.offsets.setdefault(key.group, {})[(key.topic, key.partition)] = (
                    CommittedOffset(value.offset, value.leader_epoch, value.metadata,
                                    value.commit_timestamp, value.expire_timestamp)
                )
                if key.group not in shard.groups:
                    shard.groups[key.group] = Group(key.group, value.commit_timestamp)
            elif isinstance(key, GroupMetadataKey):
                if record.value is None:
                    shard.groups.pop(key.group, None)
                    return
                shard.groups[key.group] = self._group_from_record(
                    key.group, decode_group_metadata_value(record.value)
                )
        except (RecordFormatError, ValueError) as error:
            log.warning("%s: skipping malformed record at offset %d: %s",
                        where, record.offset, error)

    @staticmethod
    def _group_from_record(group_id: str, value: GroupMetadataValue) -> Group:
        if value.members and value.protocol is None:
            raise RecordFormatError(f"group {group_id} has members but no protocol")
        state = _STABLE if value.members else _EMPTY
        timestamp = value.current_state_timestamp if value.current_state_timestamp >= 0 else None
        group = Group(group_id, _now_ms(), state)
        group.state_timestamp = timestamp
        group.generation_id = value.generation
        group.protocol_type = value.protocol_type or None
        group.protocol_name = value.protocol
        for m in value.members:
            rebalance = m.rebalance_timeout if m.rebalance_timeout >= 0 else m.session_timeout
            assert value.protocol is not None
            member = Member(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                            rebalance, m.session_timeout, value.protocol_type,
                            ((value.protocol, m.subscription),), m.assignment)
            group.add(member)
        group.leader_id = value.leader if value.leader in group.members else group.leader_id
        group.protocol_type = value.protocol_type or None
        group.subscribed_topics = group.compute_subscribed_topics()
        return group

    def _loaded(self, shard: _Shard) -> None:
        shard.loading = False
        for group_id, offsets in shard.offsets.items():
            if group_id not in shard.groups:  # offsets outlived their group's record
                shard.groups[group_id] = Group(
                    group_id, min(o.commit_timestamp for o in offsets.values()))
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

    def _unload(self, index: int) -> None:
        shard = self._shards.pop(index)
        if shard.load_task is not None:
            shard.load_task.cancel()
        for group in shard.groups.values():
            previous = group.state
            group.state = _DEAD
            if previous is _PREPARING:
                for member in list(group.members.values()):
                    group.complete_join(member, JoinResult(errors.NOT_COORDINATOR,
                                                           member_id=member.member_id))
            elif previous in (_COMPLETING, _STABLE):
                for member in group.members.values():
                    group.complete_sync(member, SyncResult(errors.NOT_COORDINATOR))
            group.cancel_timers()
        shard.groups.clear()
        shard.offsets.clear()

    # ================================================================== writing

    def _append(self, shard: _Shard, records: Sequence[tuple[bytes, bytes | None]]) -> int:
        """Append records to the shard's partition; returns the last offset written.

        Raises CoordinatorError with the code Kafka's coordinator answers for the failure.
        """
        partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
        if partition is None:
            raise CoordinatorError(errors.NOT_COORDINATOR)
        now = _now_ms()
        try:
            info = partition.append_records([Record(0, now, k, v) for k, v in records])
        except NotLeader:
            raise CoordinatorError(errors.NOT_COORDINATOR) from None
        except MessageTooLarge as error:
            raise CoordinatorError(errors.INVALID_COMMIT_OFFSET_SIZE, str(error)) from None
        except (OSError, LogError) as error:
            log.error("%s-%d: append failed: %s", OFFSETS_TOPIC, shard.index, error)
            raise CoordinatorError(errors.NOT_COORDINATOR, str(error)) from None
        return info.last_offset

    def _is_committed(self, shard: _Shard, last_offset: int) -> bool:
        partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
        return partition is not None and partition.high_watermark > last_offset

    async def _await_committed(self, shard: _Shard, last_offset: int) -> None:
        """Wait until the in-sync replicas have the write (at once with one replica)."""
        if self._is_committed(shard, last_offset):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._setting("offsets.commit.timeout.ms") / 1000
        while not self._is_committed(shard, last_offset):
            partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
            if partition is None or not partition.is_leader:
                raise CoordinatorError(errors.NOT_COORDINATOR)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise CoordinatorError(errors.COORDINATOR_NOT_AVAILABLE,
                                       "the write did not reach the in-sync replicas in time")
            waiter: asyncio.Future[None] = loop.create_future()
            partition.add_waiter(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    def _after_commit(self, shard: _Shard, last_offset: int, done: Callable[[int], None]) -> None:
        """Call ``done(NONE)`` once the write is committed, or ``done(error)``; at once
        when it already is."""
        if self._is_committed(shard, last_offset):
            done(errors.NONE)
            return

        async def wait() -> None:
            try:
                await self._await_committed(shard, last_offset)
            except CoordinatorError as failure:
                done(failure.error_code)
            else:
                done(errors.NONE)

        self._spawn(wait(), f"commit-{OFFSETS_TOPIC}-{shard.index}")

    @staticmethod
    def _group_record(group: Group, assignments: dict[str, bytes]) -> tuple[bytes, bytes]:
        members = tuple(
            MemberMetadata(
                m.member_id, m.client_id, m.client_host, m.session_timeout_ms,
                m.metadata(group.protocol_name), assignments.get(m.member_id, b""),
                m.rebalance_timeout_ms, m.group_instance_id,
            )
            for m in group.members.values()
        )
        value = GroupMetadataValue(
            group.protocol_type or "", group.generation_id, group.protocol_name,
            group.leader_id if group.members else None, members,
            group.state_timestamp if group.state_timestamp is not None else -1,
        )
        return (encode_group_metadata_key(GroupMetadataKey(group.group_id)),
                encode_group_metadata_value(value))

    @staticmethod
    def _offset_tombstone(group_id: str, topic: str, partition: int) -> tuple[bytes, None]:
        return encode_offset_commit_key(OffsetCommitKey(group_id, topic, partition)), None

    # ================================================================== timers

    def _reschedule_heartbeat(self, shard: _Shard, group: Group, member: Member,
                              timeout_ms: int | None = None) -> None:
        member.cancel_heartbeat()
        member.heartbeat_timer = self._schedule(
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
            self._expire_heartbeat, shard, group, member.member_id,
        )

    def _expire_heartbeat(self, shard: _Shard, group: Group, member_id: str) -> None:
        if not self._is_current(shard, group):
            return
        if group.is_pending_member(member_id):
            log.info("group %s: pending member %s did not rejoin in time", group.group_id,
                     member_id)
            group.pending_join.pop(member_id, None)
            if group.is_in(_PREPARING) and group.has_all_members_joined():
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
        group.complete_join(member, JoinResult(errors.UNKNOWN_MEMBER_ID))
        group.complete_sync(member, SyncResult(errors.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)

    def _remove_member_and_update(self, shard: _Shard, group: Group, member: Member,
                                  reason: str) -> None:
        self._remove_member(group, member)
        if group.is_in(_STABLE, _COMPLETING):
            self._maybe_prepare_rebalance_or_complete_join(shard, group, reason)
        elif group.is_in(_PREPARING) and group.has_all_members_joined():
            self._complete_join(shard, group)

    # ================================================================== rebalancing

    def _maybe_prepare_rebalance_or_complete_join(self, shard: _Shard, group: Group,
                                                  reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(shard, group, reason)
        else:
            self._maybe_complete_join_phase(shard, group)

    def _maybe_complete_join_phase(self, shard: _Shard, group: Group) -> None:
        """Complete the join phase once every member has rejoined (the first rebalance of
        an empty group waits for its delay timer instead)."""
        if (group.is_in(_PREPARING) and group.previous_state is not _EMPTY
                and group.has_all_members_joined()):
            self._complete_join(shard, group)

    def _prepare_rebalance(self, shard: _Shard, group: Group, reason: str) -> None:
        if group.is_in(_COMPLETING):
            self._reset_and_propagate_assignment_error(shard, group, errors.REBALANCE_IN_PROGRESS)
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        group.pending_sync.clear()
        initial = group.is_in(_EMPTY)
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        if initial:
            delay = self._setting("group.initial.rebalance.delay.ms")
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            group.join_timer = self._schedule(delay, self._try_complete_initial_rebalance,
                                              shard, group, delay, remaining)
        group.transition_to(_PREPARING, _now_ms())
        log.info("group %s: preparing to rebalance (generation %d, %s)", group.group_id,
                 group.generation_id, reason)
        if not initial:
            if group.has_all_members_joined():
                self._complete_join(shard, group)
            else:
                group.join_timer = self._schedule(group.rebalance_timeout_ms(),
                                                  self._complete_join, shard, group)

    def _try_complete_initial_rebalance(self, shard: _Shard, group: Group, delay: int,
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

    def _complete_join(self, shard: _Shard, group: Group) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start the next
        generation, answer every parked JoinGroup (the leader gets the members)."""
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        if not self._is_current(shard, group):
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
        group.init_next_generation(_now_ms())
        if group.is_in(_EMPTY):
            log.info("group %s: generation %d is empty", group.group_id, group.generation_id)
            try:
                self._append(shard, [self._group_record(group, {})])
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
                errors.NONE, member_id=member.member_id, generation_id=group.generation_id,
                protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                leader=group.leader_id or "", members=everyone if leader else (),
            ))
            self._reschedule_heartbeat(shard, group, member)
            member.is_new = False
            group.pending_sync.add(member.member_id)
        group.sync_timer = self._schedule(group.rebalance_timeout_ms(), self._expire_pending_sync,
                                          shard, group, group.generation_id)

    def _expire_pending_sync(self, shard: _Shard, group: Group, generation: int) -> None:
        group.sync_timer = None
        if not self._is_current(shard, group) or generation != group.generation_id:
            return
        if group.is_in(_COMPLETING, _STABLE) and group.pending_sync:
            late = sorted(group.pending_sync)
            for member_id in late:
                member = group.members.get(member_id)
                if member is not None:
                    self._remove_member(group, member)
            self._prepare_rebalance(shard, group, f"no SyncGroup from {', '.join(late)}")

    def _reset_and_propagate_assignment_error(self, shard: _Shard, group: Group,
                                              error: int) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(shard, group, error)

    def _propagate_assignment(self, shard: _Shard, group: Group, error: int) -> None:
        ok = error == errors.NONE
        for member in group.members.values():
            result = SyncResult(error, member.assignment if ok else b"",
                                group.protocol_type if ok else None,
                                group.protocol_name if ok else None)
            if group.complete_sync(member, result):
                self._reschedule_heartbeat(shard, group, member)

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
            return answer(errors.INVALID_GROUP_ID)
        if not (self._setting("group.min.session.timeout.ms") <= session_timeout_ms
                <= self._setting("group.max.session.timeout.ms")):
            return answer(errors.INVALID_SESSION_TIMEOUT)
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return answer(failure.error_code)
        unknown = member_id == ""
        group = shard.groups.get(group_id)
        if group is None:
            if not unknown:
                return answer(errors.UNKNOWN_MEMBER_ID)
            group = shard.groups[group_id] = Group(group_id, _now_ms())
        request = _JoinRequest(member_id, group_instance_id, session_timeout_ms,
                               rebalance_timeout_ms, protocol_type, protocols, client_id or "",
                               client_host, require_known_member_id, supports_skip_assignment,
                               reason or "not provided")
        if not self._accept_joining_member(group, member_id):
            existing = group.members.get(member_id)
            if existing is not None:
                self._remove_member(group, existing)
            return answer(errors.GROUP_MAX_SIZE_REACHED, "")
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

    def _join_new_member(self, shard: _Shard, group: Group, request: _JoinRequest,
                         future: asyncio.Future[JoinResult]) -> None:
        if group.is_in(_DEAD):
            future.set_result(JoinResult(errors.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names):
            future.set_result(JoinResult(errors.INCONSISTENT_GROUP_PROTOCOL))
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
            future.set_result(JoinResult(errors.MEMBER_ID_REQUIRED, member_id=member_id))
        else:
            self._add_member_and_rebalance(shard, group, request, member_id, future)

    def _join_existing_member(self, shard: _Shard, group: Group, request: _JoinRequest,
                              future: asyncio.Future[JoinResult]) -> None:
        member_id = request.member_id
        if group.is_in(_DEAD):
            future.set_result(JoinResult(errors.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            return
        if not group.supports_protocols(request.protocol_type, request.protocol_names):
            future.set_result(JoinResult(errors.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        if group.is_pending_member(member_id):
            if request.group_instance_id is not None:
                # pending member ids are only handed to dynamic members
                future.set_result(JoinResult(errors.INVALID_REQUEST, member_id=member_id))
                return
            self._add_member_and_rebalance(shard, group, request, member_id, future)
            return
        error = group.validate_member(member_id, request.group_instance_id)
        if error != errors.NONE:
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
            future.set_result(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id=member_id))

    @staticmethod
    def _current_generation(group: Group, member_id: str, *, with_members: bool,
                            leader: str | None = None, skip_assignment: bool = False
                            ) -> JoinResult:
        return JoinResult(
            errors.NONE, member_id=member_id, generation_id=group.generation_id,
            protocol_type=group.protocol_type, protocol_name=group.protocol_name,
            leader=(leader if leader is not None else group.leader_id) or "",
            skip_assignment=skip_assignment,
            members=group.current_members() if with_members else (),
        )

    def _add_member_and_rebalance(self, shard: _Shard, group: Group, request: _JoinRequest,
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

    def _update_member_and_rebalance(self, shard: _Shard, group: Group, member: Member,
                                     request: _JoinRequest, future: asyncio.Future[JoinResult],
                                     reason: str) -> None:
        group.update_member(member, request.protocols, request.rebalance_timeout_ms,
                            request.session_timeout_ms, future)
        self._maybe_prepare_rebalance_or_complete_join(shard, group, reason)

    def _update_static_member_and_rebalance(self, shard: _Shard, group: Group, old_id: str,
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
                last = self._append(shard, [self._group_record(group, group.assignments())])
            except CoordinatorError as failure:
                self._revert_static_member(shard, group, member, old_id, old)
                future.set_result(JoinResult(failure.error_code))
                return

            def done(error: int) -> None:
                if not self._is_current(shard, group) or member.join_future is not future:
                    return
                if error != errors.NONE:
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

    def _revert_static_member(self, shard: _Shard, group: Group, member: Member, old_id: str,
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
            return answer(errors.INVALID_GROUP_ID)
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return answer(failure.error_code)
        group = shard.groups.get(group_id)
        if group is None or group.is_in(_EMPTY):
            return answer(errors.UNKNOWN_MEMBER_ID)
        if group.is_in(_DEAD):
            return answer(errors.COORDINATOR_NOT_AVAILABLE)
        error = group.validate_member(member_id, group_instance_id)
        if error != errors.NONE:
            return answer(error)
        if generation_id != group.generation_id:
            return answer(errors.ILLEGAL_GENERATION)
        if ((protocol_type is not None and protocol_type != group.protocol_type)
                or (protocol_name is not None and protocol_name != group.protocol_name)):
            return answer(errors.INCONSISTENT_GROUP_PROTOCOL)
        if group.is_in(_PREPARING):
            return answer(errors.REBALANCE_IN_PROGRESS)
        member = group.members[member_id]
        if group.is_in(_STABLE):
            self._remove_pending_sync(group, member_id)
            future.set_result(SyncResult(errors.NONE, member.assignment, group.protocol_type,
                                         group.protocol_name))
            return future
        # CompletingRebalance: park until the leader's assignment is stored
        if member.sync_future is not None:
            group.complete_sync(member, SyncResult(errors.REBALANCE_IN_PROGRESS))
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

    def _store_assignment(self, shard: _Shard, group: Group, given: dict[str, bytes],
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
            if error != errors.NONE:
                self._reset_and_propagate_assignment_error(shard, group, error)
                self._maybe_prepare_rebalance_or_complete_join(
                    shard, group, f"error {error} storing the assignment")
                return
            for member_id, member in group.members.items():
                member.assignment = assignment.get(member_id, b"")
            self._propagate_assignment(shard, group, errors.NONE)
            group.transition_to(_STABLE, _now_ms())

        try:
            last = self._append(shard, [self._group_record(group, assignment)])
        except CoordinatorError as failure:
            done(_append_error_for_group(failure.error_code))
            return
        self._after_commit(shard, last, done)

    # ================================================================== Heartbeat, LeaveGroup

    def heartbeat(self, *, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None) -> int:
        """Handle a Heartbeat: NONE, or why the member must act."""
        if not group_id:
            return errors.INVALID_GROUP_ID
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code
        group = shard.groups.get(group_id)
        if group is None:
            return errors.UNKNOWN_MEMBER_ID
        if group.is_in(_DEAD):
            return errors.COORDINATOR_NOT_AVAILABLE
        error = group.validate_member(member_id, group_instance_id)
        if error != errors.NONE:
            return error
        if generation_id != group.generation_id:
            return errors.ILLEGAL_GENERATION
        if group.is_in(_EMPTY):
            return errors.UNKNOWN_MEMBER_ID
        self._reschedule_heartbeat(shard, group, group.members[member_id])
        if group.is_in(_PREPARING):
            return errors.REBALANCE_IN_PROGRESS
        return errors.NONE

    def leave_group(self, *, group_id: str, members: Sequence[tuple[str, str | None]]
                    ) -> tuple[int, list[tuple[str, str | None, int]]]:
        """Handle a LeaveGroup of one or more members; returns the top-level error and
        (member id, instance id, error) per member."""
        if not group_id:
            return errors.INVALID_GROUP_ID, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        group = shard.groups.get(group_id)
        if group is None:
            return errors.UNKNOWN_MEMBER_ID, []
        if group.is_in(_DEAD):
            return errors.COORDINATOR_NOT_AVAILABLE, []
        results: list[tuple[str, str | None, int]] = []
        left: list[str] = []
        for member_id, instance_id in members:
            error = errors.NONE
            if member_id == "":
                static_id = (group.static_member_id(instance_id) if instance_id is not None
                             else None)
                if static_id is None:
                    error = errors.UNKNOWN_MEMBER_ID
                else:
                    self._remove_member(group, group.members[static_id])
                    left.append(static_id)
            elif group.is_pending_member(member_id):
                group.remove(member_id)
                left.append(member_id)
            else:
                error = group.validate_member(member_id, instance_id)
                if error == errors.NONE:
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
        return errors.NONE, results

    # ================================================================== offsets

    def _known_partition(self, topic: str, partition: int) -> bool:
        state = self.broker.topic(topic)
        return state is not None and 0 <= partition < len(state.partitions)

    def _metadata_too_large(self, metadata: str | None) -> bool:
        if metadata is None:
            return False
        limit = self._setting("offset.metadata.max.bytes")
        # Kafka counts UTF-16 code units; the stored string also needs an int16 length
        return (len(metadata.encode("utf-16-le")) // 2 > limit
                or len(metadata.encode("utf-8")) > 32767)

    @staticmethod
    def _validate_offset_commit(group: Group, member_id: str, instance_id: str | None,
                                generation_id: int) -> int:
        if group.is_in(_DEAD):
            return errors.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.is_in(_EMPTY):
            return errors.NONE  # a commit without membership (admin tools, assign())
        if generation_id >= 0 or member_id or instance_id is not None:
            error = group.validate_member(member_id, instance_id)
            if error != errors.NONE:
                return error
            if generation_id != group.generation_id:
                return errors.ILLEGAL_GENERATION
        elif not group.is_in(_EMPTY):
            return errors.UNKNOWN_MEMBER_ID
        if group.is_in(_COMPLETING):
            return errors.REBALANCE_IN_PROGRESS
        return errors.NONE

    async def commit_offsets(
        self,
        *,
        group_id: str | None,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        entries: Sequence[OffsetCommitEntry],
        retention_ms: int = -1,
        api_version: int = 9,
    ) -> list[int]:
        """Handle an OffsetCommit; returns an error code per entry."""
        if group_id is None:
            return [errors.INVALID_GROUP_ID] * len(entries)
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return [failure.error_code] * len(entries)
        results = [errors.NONE if self._known_partition(e.topic, e.partition)
                   else errors.UNKNOWN_TOPIC_OR_PARTITION for e in entries]
        group = shard.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                log.info("group %s: created by an offset commit without membership", group_id)
                group = shard.groups[group_id] = Group(group_id, _now_ms())
                error = errors.NONE
            else:
                error = (errors.GROUP_ID_NOT_FOUND if api_version >= 9
                         else errors.ILLEGAL_GENERATION)
        else:
            error = self._validate_offset_commit(group, member_id, group_instance_id,
                                                 generation_id)
        if error != errors.NONE:
            return [r if r != errors.NONE else error for r in results]
        assert group is not None
        if group.is_in(_STABLE, _PREPARING) and member_id in group.members:
            self._reschedule_heartbeat(shard, group, group.members[member_id])
        now = _now_ms()
        expire = now + retention_ms if retention_ms >= 0 else -1
        records: list[tuple[bytes, bytes | None]] = []
        committed: dict[tuple[str, int], CommittedOffset] = {}
        written: list[int] = []
        for i, entry in enumerate(entries):
            if results[i] != errors.NONE:
                continue
            if self._metadata_too_large(entry.metadata):
                results[i] = errors.OFFSET_METADATA_TOO_LARGE
                continue
            value = CommittedOffset(entry.offset, entry.leader_epoch, entry.metadata or "", now,
                                    expire)
            committed[(entry.topic, entry.partition)] = value
            records.append((
                encode_offset_commit_key(OffsetCommitKey(group_id, entry.topic, entry.partition)),
                encode_offset_commit_value(OffsetCommitValue(
                    value.offset, value.metadata, now, value.leader_epoch, value.expire_timestamp)),
            ))
            written.append(i)
        if not records:
            return results
        try:
            last = self._append(shard, records)
        except CoordinatorError as failure:
            code = _append_error_for_commit(failure.error_code)
            for i in written:
                results[i] = code
            return results
        shard.offsets.setdefault(group_id, {}).update(committed)
        try:
            await self._await_committed(shard, last)
        except CoordinatorError as failure:
            for i in written:
                results[i] = failure.error_code
        return results

    def fetch_offsets(self, group_id: str | None,
                      topics: Sequence[tuple[str, Sequence[int]]] | None
                      ) -> tuple[int, list[tuple[str, list[FetchedOffset]]]]:
        """Handle one group of an OffsetFetch: the committed offsets of the partitions
        asked (-1 for none), or of every partition with one when ``topics`` is None."""
        if group_id is None:
            return errors.INVALID_GROUP_ID, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        group = shard.groups.get(group_id)
        offsets = shard.offsets.get(group_id, {}) if group is not None else {}
        if topics is None:
            by_topic: dict[str, list[FetchedOffset]] = {}
            for (topic, partition), o in sorted(offsets.items()):
                by_topic.setdefault(topic, []).append(
                    FetchedOffset(partition, o.offset, o.leader_epoch, o.metadata))
            return errors.NONE, list(by_topic.items())
        result = []
        for topic, partitions in topics:
            fetched = []
            for partition in partitions:
                found = offsets.get((topic, partition))
                fetched.append(FetchedOffset(partition, -1) if found is None else FetchedOffset(
                    partition, found.offset, found.leader_epoch, found.metadata))
            result.append((topic, fetched))
        return errors.NONE, result

    async def delete_offsets(self, group_id: str, topics: Sequence[tuple[str, Sequence[int]]]
                             ) -> tuple[int, list[tuple[str, list[tuple[int, int]]]]]:
        """Handle an OffsetDelete: refused per partition for topics the group subscribes to."""
        if not group_id:
            return errors.INVALID_GROUP_ID, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        group = shard.groups.get(group_id)
        if group is None or group.is_in(_DEAD):
            return errors.GROUP_ID_NOT_FOUND, []
        if not group.is_in(_EMPTY) and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return errors.NON_EMPTY_GROUP, []
        offsets = shard.offsets.get(group_id, {})
        records: list[tuple[bytes, bytes | None]] = []
        doomed: list[tuple[str, int]] = []
        result = []
        for topic, partitions in topics:
            subscribed = group.is_subscribed_to(topic)
            answers = []
            for partition in partitions:
                if not self._known_partition(topic, partition):
                    answers.append((partition, errors.UNKNOWN_TOPIC_OR_PARTITION))
                elif subscribed:
                    answers.append((partition, errors.GROUP_SUBSCRIBED_TO_TOPIC))
                else:
                    answers.append((partition, errors.NONE))
                    if (topic, partition) in offsets:
                        records.append(self._offset_tombstone(group_id, topic, partition))
                        doomed.append((topic, partition))
            result.append((topic, answers))
        if records:
            try:
                last = self._append(shard, records)
            except CoordinatorError as failure:
                return _append_error_for_group(failure.error_code), []
            for key in doomed:
                offsets.pop(key, None)
            if not offsets:
                shard.offsets.pop(group_id, None)
            try:
                await self._await_committed(shard, last)
            except CoordinatorError as failure:
                return failure.error_code, []
        return errors.NONE, result

    # ================================================================== groups

    def describe_groups(self, group_ids: Sequence[str | None], *, not_found_error: bool
                        ) -> list[GroupDescription]:
        """Handle a DescribeGroups; an unknown group is "Dead", with GROUP_ID_NOT_FOUND
        when ``not_found_error`` (v6+)."""
        described = []
        for group_id in group_ids:
            if group_id is None:
                described.append(GroupDescription("", errors.INVALID_GROUP_ID))
                continue
            try:
                shard = self._shard_for(group_id)
            except CoordinatorError as failure:
                described.append(GroupDescription(group_id, failure.error_code))
                continue
            group = shard.groups.get(group_id)
            if group is None or group.is_in(_DEAD):
                error = errors.GROUP_ID_NOT_FOUND if not_found_error else errors.NONE
                described.append(GroupDescription(group_id, error, _DEAD.value))
                continue
            stable = group.is_in(_STABLE)
            members = tuple(
                MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                  m.metadata(group.protocol_name) if stable else b"",
                                  m.assignment)
                for m in group.members.values()
            )
            described.append(GroupDescription(
                group_id, errors.NONE, group.state.value, group.protocol_type or "",
                (group.protocol_name or "") if stable else "", members,
            ))
        return described

    def list_groups(self, states: Sequence[str] = (), types: Sequence[str] = ()
                    ) -> tuple[int, list[ListedGroup]]:
        """Handle a ListGroups: every group this broker coordinates, filtered by state and
        type (case-insensitive; every group here is "classic")."""
        if any(shard.loading for shard in self._shards.values()):
            return errors.COORDINATOR_LOAD_IN_PROGRESS, []
        wanted_states = {s.strip().lower() for s in states}
        if types and GROUP_TYPE_CLASSIC not in {t.strip().lower() for t in types}:
            return errors.NONE, []
        listed = []
        for shard in self._shards.values():
            for group in shard.groups.values():
                if group.is_in(_DEAD):
                    continue
                if wanted_states and group.state.value.lower() not in wanted_states:
                    continue
                listed.append(ListedGroup(group.group_id, group.protocol_type or "",
                                          group.state.value))
        return errors.NONE, sorted(listed, key=lambda g: g.group_id)

    async def delete_groups(self, group_ids: Sequence[str | None]) -> list[tuple[str | None, int]]:
        """Handle a DeleteGroups: only empty groups; their offsets go with them."""
        results: dict[int, int] = {}
        by_shard: dict[int, list[tuple[int, Group]]] = {}
        for i, group_id in enumerate(group_ids):
            if group_id is None:
                results[i] = errors.INVALID_GROUP_ID
                continue
            try:
                shard = self._shard_for(group_id)
            except CoordinatorError as failure:
                results[i] = failure.error_code
                continue
            group = shard.groups.get(group_id)
            if group is None or group.is_in(_DEAD):
                results[i] = errors.GROUP_ID_NOT_FOUND
            elif not group.is_in(_EMPTY):
                results[i] = errors.NON_EMPTY_GROUP
            else:
                by_shard.setdefault(shard.index, []).append((i, group))
        for index, doomed in by_shard.items():
            shard = self._shards[index]
            records: list[tuple[bytes, bytes | None]] = []
            for _i, group in doomed:
                for topic, partition in sorted(shard.offsets.get(group.group_id, {})):
                    records.append(self._offset_tombstone(group.group_id, topic, partition))
                records.append((encode_group_metadata_key(GroupMetadataKey(group.group_id)), None))
            try:
                last = self._append(shard, records)
            except CoordinatorError as failure:
                for i, _group in doomed:
                    results[i] = _append_error_for_group(failure.error_code)
                continue
            for i, group in doomed:
                self._drop_group(shard, group)
                results[i] = errors.NONE
                log.info("group %s: deleted", group.group_id)
            try:
                await self._await_committed(shard, last)
            except CoordinatorError as failure:
                for i, _group in doomed:
                    results[i] = failure.error_code
        return [(group_id, results[i]) for i, group_id in enumerate(group_ids)]

    def _drop_group(self, shard: _Shard, group: Group) -> None:
        group.transition_to(_DEAD, _now_ms())
        group.cancel_timers()
        shard.groups.pop(group.group_id, None)
        shard.offsets.pop(group.group_id, None)

    # ================================================================== housekeeping

    def on_topic_deleted(self, topic: str) -> None:
        """Remove every group's committed offsets of a deleted topic."""
        for shard in list(self._shards.values()):
            if shard.loading:
                continue
            records: list[tuple[bytes, bytes | None]] = []
            doomed: list[tuple[str, tuple[str, int]]] = []
            for group_id, offsets in shard.offsets.items():
                for key in offsets:
                    if key[0] == topic:
                        records.append(self._offset_tombstone(group_id, *key))
                        doomed.append((group_id, key))
            if not records:
                continue
            try:
                self._append(shard, records)
            except CoordinatorError as failure:
                log.error("cannot remove offsets of deleted topic %s: %s", topic, failure)
                continue
            for group_id, key in doomed:
                offsets = shard.offsets[group_id]
                offsets.pop(key, None)
                if not offsets:
                    del shard.offsets[group_id]
            log.info("removed %d committed offset(s) of deleted topic %s", len(doomed), topic)

    async def _expire_periodically(self) -> None:
        interval = self._setting("offsets.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.expire_offsets(_now_ms())
            except Exception:  # keep expiring on the next round whatever happened
                log.exception("offset expiry failed")

    def expire_offsets(self, now_ms: int) -> int:
        """Remove offsets past ``offsets.retention.minutes`` (for an empty group, counted
        from when it became empty) and empty groups left without offsets; returns how
        many records were written."""
        retention = self._retention_ms
        written = 0
        for shard in list(self._shards.values()):
            if shard.loading:
                continue
            records: list[tuple[bytes, bytes | None]] = []
            expired: list[tuple[str, tuple[str, int]]] = []
            deleted: list[Group] = []
            for group in list(shard.groups.values()):
                offsets = shard.offsets.get(group.group_id, {})
                all_expired = True
                base = _expiry_base(group)
                if offsets and base is None:
                    all_expired = False
                for key, o in offsets.items():
                    if base is None or group.is_subscribed_to(key[0]):
                        all_expired = False
                        continue
                    if o.expire_timestamp >= 0:
                        is_expired = now_ms >= o.expire_timestamp
                    else:
                        is_expired = now_ms - base(o) >= retention
                    if is_expired:
                        records.append(self._offset_tombstone(group.group_id, *key))
                        expired.append((group.group_id, key))
                    else:
                        all_expired = False
                if all_expired and group.is_in(_EMPTY):
                    records.append((encode_group_metadata_key(GroupMetadataKey(group.group_id)),
                                    None))
                    deleted.append(group)
            if not records:
                continue
            try:
                self._append(shard, records)
            except CoordinatorError as failure:
                log.error("%s-%d: cannot write expired offsets: %s", OFFSETS_TOPIC, shard.index,
                          failure)
                continue
            written += len(records)
            for group_id, key in expired:
                remaining = shard.offsets[group_id]
                remaining.pop(key, None)
                if not remaining:
                    del shard.offsets[group_id]
            for group in deleted:
                self._drop_group(shard, group)
            if expired or deleted:
                log.info("%s-%d: expired %d offset(s), removed %d empty group(s)", OFFSETS_TOPIC,
                         shard.index, len(expired), len(deleted))
        return written

    # ================================================================== introspection

    def group(self, group_id: str) -> Group | None:
        """The live group object (tests and diagnostics)."""
        for shard in self._shards.values():
            group = shard.groups.get(group_id)
            if group is not None:
                return group
        return None

    def committed(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        """A group's committed offsets (tests and diagnostics)."""
        for shard in self._shards.values():
            if group_id in shard.offsets:
                return dict(shard.offsets[group_id])
        return {}


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


def _expiry_base(group: Group) -> Callable[[CommittedOffset], int] | None:
    """What an offset's age is counted from, or None when the group's offsets do not
    expire now (Kafka's rules)."""
    if group.protocol_type is None:
        return lambda o: o.commit_timestamp  # offsets committed without membership
    if group.is_in(_EMPTY):
        became_empty = group.state_timestamp
        if became_empty is None:
            return lambda o: o.commit_timestamp
        return lambda o: became_empty
    if (group.protocol_type == CONSUMER_PROTOCOL_TYPE and group.subscribed_topics is not None
            and group.is_in(_STABLE)):
        return lambda o: o.commit_timestamp
    return None


def _append_error_for_group(error: int) -> int:
    """Kafka's mapping of a failed group metadata write to the error a member sees."""
    if error in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.REQUEST_TIMED_OUT):
        return errors.COORDINATOR_NOT_AVAILABLE
    if error == errors.INVALID_COMMIT_OFFSET_SIZE:
        return -1  # UNKNOWN_SERVER_ERROR: the group is too large for one record
    return error


def _append_error_for_commit(error: int) -> int:
    """Kafka's mapping of a failed offset write to the error a committer sees."""
    if error in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.REQUEST_TIMED_OUT):
        return errors.COORDINATOR_NOT_AVAILABLE
    return error


__all__ = [
    "OFFSETS_TOPIC",
    "CommittedOffset",
    "FetchedOffset",
    "GroupCoordinator",
    "GroupDescription",
    "JoinResult",
    "JoinedMember",
    "ListedGroup",
    "MemberDescription",
    "OffsetCommitEntry",
    "SyncResult",
]
