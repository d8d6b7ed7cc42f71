"""The transaction coordinator (KIP-98), as Kafka 3.9's with transaction version 1.

Where transactional ids live: ``__transaction_state`` (compacted, created on first use),
partition ``abs(javaHash(id)) % partitions``; the broker leading that partition
coordinates the id, and the partition's leader epoch is its coordinator epoch, which
every marker carries so a stale coordinator is fenced at the partitions.

Every state change is a record in that partition, and the answer waits until the
in-sync replicas have it. A new leader of the partition replays it and finishes what
was decided there (markers of transactions left in PrepareCommit/PrepareAbort).

The flow of one transaction: InitProducerId bumps the epoch (fencing an older
instance, and aborting its open transaction first); AddPartitionsToTxn and
AddOffsetsToTxn move it to Ongoing; EndTxn writes PrepareCommit or PrepareAbort, the
markers go to every partition (``marker_writer``), then CompleteCommit/CompleteAbort.
EndTxn answers once the markers are written (or after ``END_TXN_WAIT_S``): a client
that starts its next transaction at once would otherwise meet CONCURRENT_TRANSACTIONS,
which KafkaJS does not retry. A transaction open past its timeout is fenced and aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.group.records import partition_for_group
from kcli.broker.log import (
    CorruptBatch,
    LogError,
    MessageTooLarge,
    Record,
    UnsupportedMagic,
    decode_records,
    iter_batches,
)
from kcli.broker.partition import AppendResult, NotLeader
from kcli.broker.txn.marker_writer import MarkerWriter
from kcli.broker.txn.metadata import (
    MAX_EPOCH,
    InvalidTransition,
    TopicPartition,
    TransactionMetadata,
    TxnState,
)
from kcli.broker.txn.records import (
    RecordFormatError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    storable,
)

if TYPE_CHECKING:
    from kcli.broker.broker import Broker
    from kcli.broker.cluster.metadata import BrokerInfo, TopicState

log = logging.getLogger("kcli.broker.txn")

TXN_TOPIC = "__transaction_state"
WRITE_TIMEOUT_MS = 5000
END_TXN_WAIT_S = 5.0
LOAD_CHUNK = 1 << 20


class TxnError(Exception):
    """A request the coordinator refuses, with Kafka's error code."""

    def __init__(self, error_code: int, message: str | None = None) -> None:
        super().__init__(message or ErrorCode(error_code).name)
        self.error_code = error_code


def now_ms() -> int:
    """Wall-clock milliseconds, as stored in records."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class TxnShard:
    """The transactional ids of one ``__transaction_state`` partition this broker leads."""

    index: int
    coordinator_epoch: int
    txns: dict[str, TransactionMetadata] = field(default_factory=dict)


class TransactionCoordinator:
    """Serves InitProducerId (with a transactional id), AddPartitionsToTxn,
    AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.markers = MarkerWriter(broker)
        self._shards: dict[int, TxnShard] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._completing: dict[str, tuple[TransactionMetadata, asyncio.Task[None]]] = {}

    # ================================================================== lifecycle

    def _setting(self, name: str) -> int:
        return self.broker.settings.get_int(name)

    def start(self) -> None:
        """Start the timers: abort timed-out transactions, forget expired ids."""
        self._spawn(self._periodically(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            self.abort_timed_out), "txn-timeouts")
        self._spawn(self._periodically(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            self.expire_ids), "txn-expiry")

    def close(self) -> None:
        """Stop the timers and marker writes; drop the shards."""
        for task in list(self._tasks):
            task.cancel()
        self._shards.clear()
        self.markers.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("transaction coordinator task %s failed", task.get_name(),
                      exc_info=task.exception())

    async def _periodically(self, interval_setting: str, action: Any) -> None:
        while True:
            await asyncio.sleep(self._setting(interval_setting) / 1000)
            try:
                await action()
            except Exception:  # one failed round must not stop the timer
                log.exception("transaction coordinator: %s failed", action.__name__)

    # ================================================================== the state topic

    def state_topic(self) -> TopicState | None:
        """``__transaction_state`` if it exists."""
        return self.broker.topic(TXN_TOPIC)

    def ensure_state_topic(self) -> TopicState:
        """``__transaction_state``, created now if it does not exist yet (and taking
        "already exists" from a race with another broker as "use it")."""
        topic = self.state_topic()
        if topic is None:
            self.broker.refresh_metadata()
            topic = self.state_topic()
        if topic is not None:
            return topic
        settings = self.broker.settings
        replication = min(settings.get_int("transaction.state.log.replication.factor"),
                          len(self.broker.live_broker_ids()))
        configs = {"cleanup.policy": "compact", "compression.type": "uncompressed",
                   "segment.bytes": settings.get("transaction.state.log.segment.bytes")}
        try:
            topic = self.broker.create_internal_topic(
                TXN_TOPIC, settings.get_int("transaction.state.log.num.partitions"),
                max(replication, 1), configs)
        except ControllerError as error:
            if error.error_code == ErrorCode.topic_already_exists:
                self.broker.refresh_metadata()
                topic = self.state_topic()
                if topic is not None:
                    return topic
            log.error("cannot create %s: %s", TXN_TOPIC, error.message)
            raise TxnError(ErrorCode.coordinator_not_available, error.message) from None
        log.info("created %s with %d partitions", TXN_TOPIC, len(topic.partitions))
        return topic

    def partition_for(self, transactional_id: str) -> int:
        """The state partition of an id (creating the topic on first use)."""
        topic = self.ensure_state_topic()
        return partition_for_group(transactional_id, len(topic.partitions))

    def find_coordinator(self, transactional_id: str) -> BrokerInfo:
        """The broker coordinating an id: the live leader of its state partition."""
        for attempt in range(2):
            topic = self.ensure_state_topic()
            state = topic.partitions[partition_for_group(transactional_id,
                                                         len(topic.partitions))]
            info = self.broker.broker_endpoint(state.leader)
            if info is not None and state.leader in self.broker.live_broker_ids():
                return info
            if attempt == 0:
                self.broker.refresh_metadata()
        raise TxnError(ErrorCode.coordinator_not_available,
                       f"the coordinator of transactional id {transactional_id!r} is not "
                       "available")

    def _shard_for(self, transactional_id: str) -> TxnShard:
        if not storable(transactional_id) or not transactional_id:
            raise TxnError(ErrorCode.invalid_request, "invalid transactional id")
        index = self.partition_for(transactional_id)
        shard = self._shards.get(index)
        if shard is None:
            self.broker.refresh_metadata()
            shard = self._shards.get(index)
        if shard is None:
            raise TxnError(ErrorCode.not_coordinator,
                           f"broker {self.broker.node_id} does not coordinate "
                           f"{transactional_id!r}")
        return shard

    def _is_current(self, shard: TxnShard) -> bool:
        return self._shards.get(shard.index) is shard

    # ================================================================== loading

    def on_metadata_changed(self) -> None:
        """Load the state partitions this broker now leads (again after a new leader
        epoch); drop the ones it lost."""
        topic = self.state_topic()
        led: dict[int, int] = {}
        if topic is not None:
            for index in range(len(topic.partitions)):
                partition = self.broker.partition(TXN_TOPIC, index)
                if partition is not None and partition.is_leader and not partition.closed:
                    led[index] = partition.leader_epoch
        for index, shard in list(self._shards.items()):
            if led.get(index) != shard.coordinator_epoch:
                del self._shards[index]
        for index, epoch in sorted(led.items()):
            if index not in self._shards:
                self._load(index, epoch)

    def _load(self, index: int, epoch: int) -> None:
        partition = self.broker.partition(TXN_TOPIC, index)
        assert partition is not None
        shard = TxnShard(index, epoch)
        plog = partition.log
        offset, end = plog.log_start_offset, plog.log_end_offset
        while offset < end:
            try:
                data = plog.read(offset, LOAD_CHUNK, upper_bound=end)
            except (LogError, OSError) as error:
                log.error("%s-%d: cannot read at offset %d (%s); ids after it are not "
                          "loaded", TXN_TOPIC, index, offset, error)
                break
            next_offset = offset
            try:
                for records, after in _batches(data):
                    next_offset = after
                    for record in records:
                        self._replay(shard, record)
            except CorruptBatch as error:
                log.error("%s-%d: corrupt batch after offset %d (%s); ids after it are not "
                          "loaded", TXN_TOPIC, index, next_offset, error)
                break
            if next_offset <= offset:
                break
            offset = next_offset
        self._shards[index] = shard
        log.info("coordinating %d transactional id(s) of %s-%d at epoch %d",
                 len(shard.txns), TXN_TOPIC, index, epoch)
        for meta in shard.txns.values():
            if meta.is_preparing:  # decided before the last coordinator went: finish it
                log.info("transaction %s: finishing its %s, decided by an earlier "
                         "coordinator", meta.transactional_id,
                         "commit" if meta.state is TxnState.PREPARE_COMMIT else "abort")
                self._complete_later(shard, meta)

    @staticmethod
    def _replay(shard: TxnShard, record: Record) -> None:
        if record.key is None:
            return
        try:
            transactional_id = decode_key(record.key)
            if record.value is None:
                shard.txns.pop(transactional_id, None)
            else:
                shard.txns[transactional_id] = decode_value(transactional_id, record.value)
        except RecordFormatError as error:
            log.warning("%s-%d: skipping a malformed record at offset %d: %s", TXN_TOPIC,
                        shard.index, record.offset, error)

    # ================================================================== writing

    async def _persist(self, shard: TxnShard, meta: TransactionMetadata,
                       new: TransactionMetadata | None) -> None:
        """Write ``new`` (None: a tombstone) as the id's state, wait for the in-sync
        replicas, then make it current. Raises TxnError with Kafka's code."""
        meta.pending = True
        try:
            partition = self.broker.partition(TXN_TOPIC, shard.index)
            if partition is None or not self._is_current(shard):
                raise TxnError(ErrorCode.not_coordinator)
            value = encode_value(new) if new is not None else None
            try:
                info = partition.append_records(
                    [Record(0, now_ms(), encode_key(meta.transactional_id), value)])
            except NotLeader:
                raise TxnError(ErrorCode.not_coordinator) from None
            except (MessageTooLarge, OSError, LogError) as error:
                log.error("%s-%d: append failed: %s", TXN_TOPIC, shard.index, error)
                raise TxnError(ErrorCode.coordinator_not_available, str(error)) from None
            pending = [(TXN_TOPIC, [(shard.index, AppendResult(
                ErrorCode.none, info.base_offset, last_offset=info.last_offset))])]
            done = await self.broker.replicas.await_replication(pending, WRITE_TIMEOUT_MS)
            outcome = done[0][1][0][1].error_code
            if outcome == ErrorCode.not_leader_or_follower or not self._is_current(shard):
                raise TxnError(ErrorCode.not_coordinator)
            if outcome != ErrorCode.none:
                raise TxnError(ErrorCode.coordinator_not_available,
                               f"the state write failed: {ErrorCode(outcome).name}")
        finally:
            meta.pending = False
        if new is None:
            shard.txns.pop(meta.transactional_id, None)
        else:
            meta.apply(new)

    def _complete_later(self, shard: TxnShard, meta: TransactionMetadata) -> asyncio.Task[None]:
        """Write the markers of a decided transaction, then its Complete state (once per
        decision: a task of an earlier load of the shard, still winding down, is not
        this one's)."""
        running = self._completing.get(meta.transactional_id)
        if running is not None and running[0] is meta and not running[1].done():
            return running[1]
        task = self._spawn(self._complete(shard, meta), f"txn-end-{meta.transactional_id}")
        entry = (meta, task)
        self._completing[meta.transactional_id] = entry
        task.add_done_callback(
            lambda _task: self._completing.pop(meta.transactional_id, None)
            if self._completing.get(meta.transactional_id) is entry else None)
        return task

    async def _complete(self, shard: TxnShard, meta: TransactionMetadata) -> None:
        commit = meta.state is TxnState.PREPARE_COMMIT
        written = await self.markers.write(
            meta.producer_id, meta.producer_epoch, commit, shard.coordinator_epoch,
            sorted(meta.partitions), lambda: self._is_current(shard))
        if not written:
            return
        target = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        backoff = 0.05
        while self._is_current(shard) and shard.txns.get(meta.transactional_id) is meta:
            if not meta.pending:
                try:
                    await self._persist(shard, meta, meta.transition(
                        target, partitions=set(), update_ms=now_ms()))
                    return
                except TxnError as error:
                    log.warning("transaction %s: cannot write %s yet: %s",
                                meta.transactional_id, target.display, error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _fence_and_abort(self, shard: TxnShard, meta: TransactionMetadata,
                               why: str) -> None:
        """Bump an open transaction's epoch (fencing its producer) and abort it."""
        epoch = meta.producer_epoch
        bumped = epoch + 1 if epoch < MAX_EPOCH - 1 else epoch
        log.info("transaction %s (producer %d): aborting, %s", meta.transactional_id,
                 meta.producer_id, why)
        await self._persist(shard, meta, meta.transition(
            TxnState.PREPARE_ABORT, producer_epoch=bumped, last_producer_epoch=epoch,
            update_ms=now_ms()))
        self._complete_later(shard, meta)

    # ================================================================== requests

    async def init_producer_id(self, transactional_id: str, timeout_ms: int,
                               expected_id: int = -1, expected_epoch: int = -1
                               ) -> tuple[int, int]:
        """(producer id, epoch) for a transactional producer starting up; raises
        TxnError (CONCURRENT_TRANSACTIONS while an older instance's transaction is
        being aborted: the client retries)."""
        if not 0 < timeout_ms <= self._setting("transaction.max.timeout.ms"):
            raise TxnError(ErrorCode.invalid_transaction_timeout,
                           f"transaction.timeout.ms {timeout_ms} is not within 1.."
                           f"{self._setting('transaction.max.timeout.ms')}")
        shard = self._shard_for(transactional_id)
        meta = shard.txns.get(transactional_id)
        if meta is None:
            meta = TransactionMetadata(transactional_id, self.broker.allocate_producer_id(),
                                       -1, timeout_ms, update_ms=now_ms())
            shard.txns[transactional_id] = meta
        if meta.pending:
            raise TxnError(ErrorCode.concurrent_transactions)
        if expected_id >= 0:
            if expected_id != meta.producer_id or expected_epoch not in (
                    meta.producer_epoch, meta.last_producer_epoch):
                raise TxnError(ErrorCode.producer_fenced,
                               f"producer {expected_id} epoch {expected_epoch} is not current")
            if (expected_epoch == meta.last_producer_epoch and meta.is_complete
                    and meta.producer_epoch >= 0):
                return meta.producer_id, meta.producer_epoch  # a retry of the last bump
        if meta.is_preparing or meta.state is TxnState.PREPARE_EPOCH_FENCE:
            raise TxnError(ErrorCode.concurrent_transactions)
        if meta.state is TxnState.ONGOING:
            await self._fence_and_abort(shard, meta, "a new producer instance started")
            raise TxnError(ErrorCode.concurrent_transactions)
        producer_id, epoch, last = meta.producer_id, meta.producer_epoch + 1, meta.producer_epoch
        if epoch >= MAX_EPOCH - 1:
            producer_id, epoch, last = self.broker.allocate_producer_id(), 0, -1
        fresh = meta.producer_epoch < 0
        try:
            await self._persist(shard, meta, meta.transition(
                TxnState.EMPTY, producer_id=producer_id, producer_epoch=epoch,
                last_producer_epoch=last, timeout_ms=timeout_ms, partitions=set(),
                start_ms=-1, update_ms=now_ms()))
        except TxnError:
            if fresh and shard.txns.get(transactional_id) is meta:
                del shard.txns[transactional_id]
            raise
        return meta.producer_id, meta.producer_epoch

    def _current(self, shard: TxnShard, transactional_id: str, producer_id: int,
                 epoch: int) -> TransactionMetadata:
        meta = shard.txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id or meta.producer_epoch < 0:
            raise TxnError(ErrorCode.invalid_producer_id_mapping,
                           f"producer {producer_id} is not {transactional_id!r}'s")
        if epoch != meta.producer_epoch:
            raise TxnError(ErrorCode.producer_fenced,
                           f"epoch {epoch} of producer {producer_id} is not the current "
                           f"{meta.producer_epoch}")
        if meta.pending:
            raise TxnError(ErrorCode.concurrent_transactions)
        return meta

    async def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                             partitions: set[TopicPartition]) -> None:
        """Add partitions (or a group's offsets partition) to the open transaction,
        opening it if none is; raises TxnError."""
        shard = self._shard_for(transactional_id)
        meta = self._current(shard, transactional_id, producer_id, epoch)
        if meta.is_preparing or meta.state is TxnState.PREPARE_EPOCH_FENCE:
            raise TxnError(ErrorCode.concurrent_transactions)
        if meta.state is TxnState.ONGOING and partitions <= meta.partitions:
            return
        now = now_ms()
        start = meta.start_ms if meta.state is TxnState.ONGOING else now
        await self._persist(shard, meta, meta.transition(
            TxnState.ONGOING, partitions=meta.partitions | partitions, start_ms=start,
            update_ms=now))

    def offsets_partition(self, group_id: str) -> TopicPartition:
        """The ``__consumer_offsets`` partition a group's transactional offsets go to."""
        from kcli.broker.group.runtime import OFFSETS_TOPIC

        return OFFSETS_TOPIC, self.broker.groups.partition_for(group_id)

    async def end_txn(self, transactional_id: str, producer_id: int, epoch: int,
                      commit: bool) -> None:
        """Commit or abort the open transaction; returns once its markers are written
        (or END_TXN_WAIT_S passed: the outcome is durable either way)."""
        shard = self._shard_for(transactional_id)
        meta = self._current(shard, transactional_id, producer_id, epoch)
        state = meta.state
        wanted = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if state is TxnState.ONGOING:
            await self._persist(shard, meta, meta.transition(wanted, update_ms=now_ms()))
            task = self._complete_later(shard, meta)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), END_TXN_WAIT_S)
            return
        if state is wanted:
            raise TxnError(ErrorCode.concurrent_transactions)
        if state is done:
            return  # a retry of an EndTxn that was answered late
        if state is TxnState.PREPARE_EPOCH_FENCE:
            raise TxnError(ErrorCode.producer_fenced)
        raise TxnError(ErrorCode.invalid_txn_state,
                       f"cannot {'commit' if commit else 'abort'} transaction "
                       f"{transactional_id!r} in state {state.display}")

    # ================================================================== timers

    async def abort_timed_out(self) -> None:
        """Fence and abort every transaction open longer than its timeout."""
        now = now_ms()
        for shard in list(self._shards.values()):
            for meta in list(shard.txns.values()):
                if (meta.state is TxnState.ONGOING and not meta.pending
                        and now > meta.start_ms + meta.timeout_ms):
                    try:
                        await self._fence_and_abort(
                            shard, meta, f"open for {now - meta.start_ms} ms, past its "
                            f"transaction.timeout.ms {meta.timeout_ms}")
                    except (TxnError, InvalidTransition) as error:
                        log.warning("transaction %s: cannot abort it yet: %s",
                                    meta.transactional_id, error)

    async def expire_ids(self) -> None:
        """Forget ids idle (no transaction open) for transactional.id.expiration.ms."""
        expiration = self._setting("transactional.id.expiration.ms")
        now = now_ms()
        for shard in list(self._shards.values()):
            for meta in list(shard.txns.values()):
                if meta.is_complete and not meta.pending and now - meta.update_ms > expiration:
                    with contextlib.suppress(TxnError):
                        await self._persist(shard, meta, None)
                        log.info("transactional id %s expired", meta.transactional_id)

    def verify(self, transactional_id: str, producer_id: int, epoch: int,
               partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Whether each partition is in the producer's open transaction (KIP-890
        verification): NONE, else INVALID_TXN_STATE; NOT_ENOUGH_REPLICAS (retriable)
        when this broker cannot say now."""
        try:
            shard = self._shard_for(transactional_id)
        except TxnError:
            return dict.fromkeys(partitions, int(ErrorCode.not_enough_replicas))
        meta = shard.txns.get(transactional_id)
        current = (meta is not None and meta.producer_id == producer_id
                   and meta.producer_epoch == epoch and meta.state is TxnState.ONGOING)
        return {tp: ErrorCode.none if current and meta is not None and tp in meta.partitions
                else int(ErrorCode.invalid_txn_state) for tp in partitions}

    # ================================================================== describing

    def describe(self, transactional_id: str) -> TransactionMetadata:
        """An id's state; raises TxnError (TRANSACTIONAL_ID_NOT_FOUND, NOT_COORDINATOR)."""
        shard = self._shard_for(transactional_id)
        meta = shard.txns.get(transactional_id)
        if meta is None or meta.producer_epoch < 0:
            raise TxnError(ErrorCode.transactional_id_not_found)
        return meta

    def transactions(self) -> Iterator[TransactionMetadata]:
        """Every id this broker coordinates."""
        for shard in self._shards.values():
            yield from (m for m in shard.txns.values() if m.producer_epoch >= 0)


def _batches(data: bytes) -> Iterator[tuple[list[Record], int]]:
    """The records of each whole batch in ``data`` (none for a control batch or an
    unreadable one), with the offset after the batch."""
    for header in iter_batches(data):
        records: list[Record] = []
        if not header.is_control:
            try:
                records = decode_records(data, header)
            except (CorruptBatch, UnsupportedMagic) as error:
                log.warning("%s: skipping an unreadable batch at offset %d: %s", TXN_TOPIC,
                            header.base_offset, error)
        yield records, header.next_offset
