"""The coordinator's runtime: where groups live, how they are loaded, written and timed.

Where groups live and who coordinates them: see ``kcli.broker.group.coordinator``.

State changes are applied when their records are appended to the leader's log; the
answer to the client waits until the write is committed (the high watermark passes
it), as Kafka's coordinator answers only after acks=all. Everything runs on the event
loop; deadlines are loop timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import Group, GroupState, JoinResult, SyncResult
from kcli.broker.group.records import partition_for_group, storable
from kcli.broker.group.shard import CommittedOffset, KeyValue, Shard
from kcli.broker.log import LogError, MessageTooLarge, Record
from kcli.broker.partition import NotLeader
from kcli.broker.producer_state import ProducerStateError

if TYPE_CHECKING:
    from kcli.broker.cluster.metadata import BrokerInfo, TopicState
    from kcli.broker.group.host import CoordinatorHost, PartitionWriter

log = logging.getLogger("kcli.broker.group")

OFFSETS_TOPIC = "__consumer_offsets"


def now_ms() -> int:
    """Wall-clock milliseconds, as stored in records."""
    return time.time_ns() // 1_000_000


class CoordinatorRuntime:
    """Shards of the offsets partitions this broker leads, their loading, writes and timers."""

    def __init__(self, broker: CoordinatorHost) -> None:
        self.broker = broker
        self._shards: dict[int, Shard] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    # ================================================================== settings

    def _setting(self, name: str) -> int:
        return self.broker.settings.get_int(name)

    @property
    def _retention_ms(self) -> int:
        return self._setting("offsets.retention.minutes") * 60_000

    # ================================================================== lifecycle

    def start(self) -> None:
        """From now on, loads after a leadership change run in the background."""
        self._started = True

    def close(self) -> None:
        """Stop: every parked request is answered NOT_COORDINATOR, timers are cancelled."""
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

    def _fresh(self) -> None:
        """Adopt the cluster's metadata if another broker changed it since this broker
        last looked (brokers poll it only every 100 ms): done before anything is answered
        from this broker's view being without a topic, a partition or a shard."""
        self.broker.refresh_metadata()

    def ensure_offsets_topic(self) -> TopicState:
        """``__consumer_offsets``, created now if it does not exist yet: not when another
        broker has just created it (on a FindCoordinator naming this one), which this
        one may not have seen yet, so it looks again first, and takes "already exists"
        as "look again and use it"."""
        topic = self.offsets_topic()
        if topic is None:
            self._fresh()
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
            topic = self.broker.create_internal_topic(
                OFFSETS_TOPIC, settings.get_int("offsets.topic.num.partitions"),
                max(replication, 1), configs,
            )
        except ControllerError as error:
            if error.error_code == ErrorCode.topic_already_exists:
                self._fresh()
                topic = self.offsets_topic()
                if topic is not None:
                    return topic
            log.error("cannot create %s: %s", OFFSETS_TOPIC, error.message)
            raise CoordinatorError(ErrorCode.coordinator_not_available, error.message) from None
        log.info("created %s with %d partitions", OFFSETS_TOPIC, len(topic.partitions))
        return topic

    def partition_for(self, group_id: str) -> int:
        """The offsets partition of a group (creating the topic on first use)."""
        topic = self.ensure_offsets_topic()
        return partition_for_group(group_id, len(topic.partitions))

    def find_coordinator(self, group_id: str) -> BrokerInfo:
        """The broker coordinating ``group_id``: the leader of its offsets partition."""
        info = self._coordinator(group_id)
        if info is None:
            self._fresh()
            info = self._coordinator(group_id)
        if info is None:
            raise CoordinatorError(ErrorCode.coordinator_not_available,
                                   f"the coordinator of group {group_id!r} is not available")
        return info

    def _coordinator(self, group_id: str) -> BrokerInfo | None:
        topic = self.ensure_offsets_topic()
        state = topic.partitions[partition_for_group(group_id, len(topic.partitions))]
        info = self.broker.broker_endpoint(state.leader)
        if info is None or state.leader not in self.broker.live_broker_ids():
            return None
        return info

    def _shard_for(self, group_id: str) -> Shard:
        if not storable(group_id):
            raise CoordinatorError(ErrorCode.invalid_group_id, "the group id is too long to store")
        index = self.partition_for(group_id)
        shard = self._shards.get(index)
        if shard is None:
            self._fresh()  # this broker may lead the partition since a moment ago
            shard = self._shards.get(index)
        if shard is None:
            raise CoordinatorError(ErrorCode.not_coordinator,
                                   f"broker {self.broker.node_id} does not coordinate {group_id!r}")
        if shard.loading:
            raise CoordinatorError(ErrorCode.coordinator_load_in_progress)
        return shard

    def _is_current(self, shard: Shard, group: Group) -> bool:
        """Whether ``group`` is still the live object for its id (timers may outlive it)."""
        return (self._shards.get(shard.index) is shard and not group.is_in(GroupState.DEAD)
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
        shard = self._shards[index] = Shard(index, f"{OFFSETS_TOPIC}-{index}")
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

    async def _load_in_background(self, shard: Shard, partition: PartitionWriter) -> None:
        started = time.monotonic()
        for _ in self._load_steps(shard, partition):
            await asyncio.sleep(0)
            if self._shards.get(shard.index) is not shard:
                return
        shard.load_task = None
        self._loaded(shard)
        log.info("loaded %s-%d in %.2fs", OFFSETS_TOPIC, shard.index, time.monotonic() - started)

    def _load_steps(self, shard: Shard, partition: PartitionWriter) -> Iterator[None]:
        """Replay the partition's log to its end, one chunk per step.

        To the log end, not the high watermark, as Kafka's coordinator does: a new
        leader's high watermark may still lag records the old leader had committed (and
        acknowledged); as leader, this log is never truncated below its end.
        """
        offset = partition.log.log_start_offset
        end = partition.log.log_end_offset
        chunk = self._setting("offsets.load.buffer.size")
        where = shard.where
        while offset < end:
            try:
                data = partition.log.read(offset, chunk, upper_bound=end)
            except (LogError, OSError) as error:
                log.error("%s: cannot read at offset %d (%s); groups after it are not loaded",
                          where, offset, error)
                return
            if not data:
                return
            next_offset = shard.replay_chunk(data)
            if next_offset <= offset:
                log.error("%s: unreadable log at offset %d; groups after it are not loaded",
                          where, offset)
                return
            offset = next_offset
            yield

    def _loaded(self, shard: Shard) -> None:
        """Called once a shard is replayed: start its members' timers."""
        raise NotImplementedError

    def _unload(self, index: int) -> None:
        shard = self._shards.pop(index)
        if shard.load_task is not None:
            shard.load_task.cancel()
        for group in shard.groups.values():
            previous = group.state
            group.state = GroupState.DEAD
            if previous is GroupState.PREPARING_REBALANCE:
                for member in list(group.members.values()):
                    group.complete_join(member, JoinResult(ErrorCode.not_coordinator,
                                                           member_id=member.member_id))
            elif previous in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
                for member in group.members.values():
                    group.complete_sync(member, SyncResult(ErrorCode.not_coordinator))
            group.cancel_timers()
        shard.groups.clear()
        for consumer_group in shard.consumer_groups.values():
            consumer_group.close()
        shard.consumer_groups.clear()
        shard.offsets.clear()

    # ================================================================== writing

    def _append(self, shard: Shard, records: Sequence[KeyValue],
                producer: tuple[int, int] | None = None) -> int:
        """Append records to the shard's partition; returns the last offset written.
        With ``producer`` (id, epoch) they are a transactional batch of that producer.

        Raises CoordinatorError with the code Kafka's coordinator answers for the failure.
        """
        partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
        if partition is None:
            raise CoordinatorError(ErrorCode.not_coordinator)
        now = now_ms()
        try:
            info = partition.append_records([Record(0, now, k, v) for k, v in records],
                                            producer=producer)
        except NotLeader:
            raise CoordinatorError(ErrorCode.not_coordinator) from None
        except ProducerStateError as error:  # a fenced transactional producer
            raise CoordinatorError(error.error_code, str(error)) from None
        except MessageTooLarge as error:
            raise CoordinatorError(ErrorCode.invalid_commit_offset_size, str(error)) from None
        except (OSError, LogError) as error:
            log.error("%s-%d: append failed: %s", OFFSETS_TOPIC, shard.index, error)
            raise CoordinatorError(ErrorCode.not_coordinator, str(error)) from None
        return info.last_offset

    def _is_committed(self, shard: Shard, last_offset: int) -> bool:
        partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
        return partition is not None and partition.high_watermark > last_offset

    async def _await_committed(self, shard: Shard, last_offset: int) -> None:
        """Wait until the in-sync replicas have the write (at once with one replica)."""
        if self._is_committed(shard, last_offset):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._setting("offsets.commit.timeout.ms") / 1000
        while not self._is_committed(shard, last_offset):
            partition = self.broker.partition(OFFSETS_TOPIC, shard.index)
            if partition is None or not partition.is_leader:
                raise CoordinatorError(ErrorCode.not_coordinator)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise CoordinatorError(ErrorCode.coordinator_not_available,
                                       "the write did not reach the in-sync replicas in time")
            waiter: asyncio.Future[None] = loop.create_future()
            partition.add_waiter(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    def _after_commit(self, shard: Shard, last_offset: int, done: Callable[[int], None]) -> None:
        """Call ``done(NONE)`` once the write is committed, or ``done(error)``; at once
        when it already is."""
        if self._is_committed(shard, last_offset):
            done(ErrorCode.none)
            return

        async def wait() -> None:
            try:
                await self._await_committed(shard, last_offset)
            except CoordinatorError as failure:
                done(failure.error_code)
            else:
                done(ErrorCode.none)

        self._spawn(wait(), f"commit-{OFFSETS_TOPIC}-{shard.index}")

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

