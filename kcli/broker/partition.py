"""One partition replica on this broker: its log, high watermark and producer state.

Requests reach it through the replica manager (``kcli.broker.replicas``), which calls
``append_client_batch`` and ``read``; both work on stored bytes. ``read`` owns what a
Fetch asks of a partition: the leader-epoch checks, the diverging-epoch answer (KIP-320),
a follower's progress (which moves the high watermark) and the isolation level. The
high watermark is the offset below which every in-sync replica holds the data; with
a single replica it is the log end offset.

As leader, a partition tracks each follower's progress from its fetches (Kafka's
``Replica`` state): its log end offset and when it was last caught up. The high
watermark is the smallest log end offset over the ISR; a follower that has not been
caught up for ``replica.lag.time.max.ms`` is lagging (``lagging_replicas``) and one not
in the ISR that reached the high watermark may join it (``record_follower_fetch``); both
become ISR changes through the ``request_isr_change`` callback its owner hands it (Kafka's
AlterPartition manager). As follower, the replica fetcher appends the
leader's batches (``append_replicated``), truncates where the logs diverge and copies
the leader's high watermark and log start offset.

Transactions (``kcli.broker.txn``): transactional batches open a producer's transaction
here, markers (``append_marker`` as leader, or replicated) end it; ``txns`` keeps what
is open and aborted, the last stable offset and the ``.txnindex`` files.

About 720 lines, over the project's ~600 guide: one replica as leader and as follower,
with its transactions, which the replica manager, the fetcher and both coordinators all
see as one object; the transaction state itself lives in ``txn.partition_txns``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kcli.broker.cluster.metadata import PartitionState
from kcli.broker.errors import ErrorCode
from kcli.broker.log import (
    AppendInfo,
    BatchError,
    BatchHeader,
    FileRecords,
    MessageTooLarge,
    OffsetOutOfRange,
    PartitionLog,
    Record,
    RecordsScan,
    StorageError,
    client_decompression_limit,
    encode_batch,
    iter_batches,
    keyless_records,
    scan_client_records,
    set_max_timestamp,
    timestamp_deltas,
    validate_client_batch,
)
from kcli.broker.log.validation import CODEC_IDS, CODEC_NAMES, recompress
from kcli.broker.producer_state import ProducerStateError, ProducerStateTable
from kcli.broker.topic_settings import TopicSettings
from kcli.broker.txn.markers import encode_marker, read_marker
from kcli.broker.txn.partition_txns import PartitionTxns

log = logging.getLogger("kcli.broker")

ZSTD = 4
READ_UNCOMMITTED = 0

IsrChangeRequest = Callable[["Partition", list[int], str], None]
"""Asks the controller to change a partition's ISR (partition, new ISR, why)."""


class NotLeader(Exception):
    """This broker does not lead the partition."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of one partition's part of a Produce request."""

    error_code: int
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    last_offset: int = -1
    """The batch's last offset: acks=all waits until the high watermark passes it."""
    record_errors: tuple[tuple[int, str], ...] = ()
    """(index in the batch, why) of each record that made the batch fail (Produce v8+)."""


@dataclass(slots=True)
class PartitionRead:
    """One partition's part of a Fetch answer."""

    error_code: int = ErrorCode.none
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes | FileRecords = b""
    diverging: tuple[int, int] | None = None
    """(epoch, end offset) where the fetcher's log diverges from ours (KIP-320)."""
    leader: tuple[int, int] | None = None
    """(leader id, leader epoch) as this replica knows them."""
    aborted_transactions: tuple[tuple[int, int], ...] | None = None
    """None for read_uncommitted; for read_committed (producer id, first offset) of the
    aborted transactions in range."""


@dataclass(slots=True)
class FollowerProgress:
    """What a leader knows of one follower, from its fetches (Kafka's Replica state)."""

    log_end_offset: int = -1
    """The follower's fetch offset: everything before it is in its log (-1: unknown)."""
    last_fetch_leader_end: int = -1
    """The leader's log end offset when the follower fetched last."""
    last_fetch_time: float = 0.0
    last_caught_up_time: float = 0.0
    """Kafka's rule: caught up at time T when its fetch at T asked for the leader's log
    end offset, or for at least what that was at its previous fetch."""


class Partition:
    """A replica of one topic partition hosted by this broker."""

    def __init__(
        self,
        topic: str,
        index: int,
        directory: Path,
        state: PartitionState,
        settings: TopicSettings,
        node_id: int,
        high_watermark: int | None = None,
        request_isr_change: IsrChangeRequest | None = None,
    ) -> None:
        self.topic = topic
        self.index = index
        self.node_id = node_id
        self.settings = settings
        self.state = state
        self.log = PartitionLog.open(directory, settings.log_config)
        end = self.log.log_end_offset
        self.high_watermark = (  # a checkpointed one, else everything counts as committed
            end if high_watermark is None
            else max(min(high_watermark, end), self.log.log_start_offset)
        )
        self.producers = self._load_producer_state()
        self.txns = (PartitionTxns.load(directory, self.log.log_start_offset,
                                        self.log.log_end_offset)
                     or PartitionTxns.rebuild(directory, self.log))
        self._waiters: list[asyncio.Future[None]] = []  # high watermark moves, role changes
        self._append_waiters: list[asyncio.Future[None]] = []  # followers' fetches: appends
        self.followers: dict[int, FollowerProgress] = {}
        self.leader_epoch_start_offset = -1
        self._request_isr_change = request_isr_change
        self.closed = False
        self._leading = False
        if self.is_leader:
            self._become_leader()

    @property
    def is_leader(self) -> bool:
        """Whether this broker leads the partition."""
        return self.state.leader == self.node_id

    # ================================================================== roles

    def update_state(self, state: PartitionState) -> None:
        """Apply new metadata for this partition: become leader, follower, or follow an
        ISR change."""
        old = self.state
        self.state = state
        if self.is_leader:
            if not self._leading or old.leader_epoch != state.leader_epoch:
                self._become_leader()
            else:
                self.maybe_advance_high_watermark()  # the ISR may have shrunk
        elif self._leading:
            self._leading = False
            self.followers = {}
            self.wake_waiters()  # acks=all and consumers' fetches learn it at once

    def _become_leader(self) -> None:
        """Start leading at the current epoch: the epoch starts at our log end; followers'
        progress is unknown until they fetch (in-sync ones count as caught up now)."""
        now = time.monotonic()
        end = self.log.log_end_offset
        epoch = self.state.leader_epoch
        self.log.leader_epoch_start(epoch, end)
        self.leader_epoch_start_offset = next(  # earlier when we led this epoch before
            (start for e, start in reversed(self.log.leader_epochs) if e == epoch), end
        )
        self.followers = {
            r: FollowerProgress(last_caught_up_time=now if r in self.state.isr else 0.0)
            for r in self.state.replicas
            if r != self.node_id
        }
        self._leading = True
        self.maybe_advance_high_watermark()
        self.wake_waiters()

    @property
    def leader_epoch(self) -> int:
        """The current leader epoch."""
        return self.state.leader_epoch

    def check_leader_epoch(self, current_leader_epoch: int) -> int:
        """The error for a request made at ``current_leader_epoch`` (-1: not checked):
        FENCED_LEADER_EPOCH when the asker is behind us, UNKNOWN_LEADER_EPOCH when ahead."""
        if current_leader_epoch < 0 or current_leader_epoch == self.state.leader_epoch:
            return ErrorCode.none
        if current_leader_epoch < self.state.leader_epoch:
            return ErrorCode.fenced_leader_epoch
        return ErrorCode.unknown_leader_epoch

    @property
    def last_stable_offset(self) -> int:
        """Where read_committed consumers stop: the first offset of the earliest
        transaction that is open or whose marker is not yet replicated, capped at the
        high watermark (Kafka's ``UnifiedLog.lastStableOffset``)."""
        first = self.txns.first_unstable_offset(self.high_watermark)
        return self.high_watermark if first is None else min(first, self.high_watermark)

    def update_settings(self, settings: TopicSettings) -> None:
        """Apply changed topic configs."""
        self.settings = settings
        self.log.update_config(settings.log_config)

    def _load_producer_state(self) -> ProducerStateTable:
        table = ProducerStateTable.load(self.log.directory, self.log.log_end_offset)
        if table is not None:
            return table
        return ProducerStateTable.rebuild(
            (h.producer_id, h.producer_epoch, h.base_sequence, h.last_offset_delta,
             h.base_offset, h.max_timestamp)
            for h in self.log.batch_headers()
        )

    def append_client_batch(
        self, records: bytes | None, acks: int, *, allow_zstd: bool = True
    ) -> AppendResult:
        """Validate, deduplicate and append a producer's batch as leader.

        As Kafka's LogValidator: the header, then every record (framing, count, offset
        deltas; INVALID_RECORD), keys on a compacted topic and each record's timestamp
        (INVALID_TIMESTAMP), the failing records named in ``record_errors``. The batch's
        maxTimestamp is what its records say: a wrong one (-1 from Sarama before 1.45) is
        rewritten, CRC and all, before the append. ``allow_zstd`` is False for Produce
        below v7, which predates zstd.
        """
        start = self.log.log_start_offset
        if records is None:
            return AppendResult(ErrorCode.invalid_record, log_start_offset=start,
                                message="no records")
        settings = self.settings
        try:
            header = validate_client_batch(records, settings.max_message_bytes)
        except BatchError as error:
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        if header.compression == ZSTD and not allow_zstd:
            return AppendResult(
                ErrorCode.unsupported_compression_type, log_start_offset=start,
                message="zstd needs Produce v7 or later",
            )
        if header.is_control:
            return AppendResult(ErrorCode.invalid_record, log_start_offset=start,
                                message="clients are not allowed to write control records")
        if not header.is_transactional and header.producer_id in self.txns.open:
            return AppendResult(
                ErrorCode.invalid_txn_state, log_start_offset=start,
                message=f"producer {header.producer_id} has a transaction open on "
                f"{self.topic}-{self.index}: its batches must be transactional")
        try:
            scan = scan_client_records(
                records, header, client_decompression_limit(settings.max_message_bytes)
            )
        except BatchError as error:
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        if scan.keyless and settings.log_config.compact:
            why = f"Compacted topic cannot accept message without key in {self.topic}-{self.index}"
            return _record_errors(ErrorCode.invalid_record, start, [
                (index, why) for index in keyless_records(records, header)
            ])
        if acks == -1 and len(self.state.isr) < settings.min_insync_replicas:
            return AppendResult(
                ErrorCode.not_enough_replicas, log_start_offset=start,
                message=f"{len(self.state.isr)} in-sync replicas, "
                f"min.insync.replicas is {settings.min_insync_replicas}",
            )
        now = int(time.time() * 1000)
        max_timestamp = -1  # Kafka's NO_TIMESTAMP: the largest record timestamp, if above
        if not settings.log_append_time:
            bad = self._timestamp_errors(records, header, scan, now)
            if bad:
                return _record_errors(ErrorCode.invalid_timestamp, start, bad)
            max_timestamp = max(-1, header.base_timestamp + scan.max_timestamp_delta)
        try:
            duplicate = self.producers.check(
                header.producer_id, header.producer_epoch, header.base_sequence,
                header.last_offset_delta,
            )
        except ProducerStateError as error:
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        if duplicate is not None:
            return AppendResult(ErrorCode.none, duplicate.first_offset, -1, start,
                                last_offset=duplicate.last_offset)
        # The batch as sent (the log copies what it stamps: the header, or for
        # LogAppendTime the whole batch) unless it must change here first: a wrong
        # maxTimestamp, or the topic's own compression.
        batch: bytes | bytearray = records
        fix_max_timestamp = (max_timestamp != header.max_timestamp
                             and not settings.log_append_time)
        recompressing = settings.compression not in ("producer",
                                                     CODEC_NAMES[header.compression])
        if fix_max_timestamp or recompressing:
            rewritten = bytearray(records)
            if fix_max_timestamp:
                set_max_timestamp(rewritten, max_timestamp)  # some clients write -1 there
            if recompressing:
                try:  # decodes every record: a header key that is not UTF-8 is refused here
                    rewritten = recompress(rewritten, settings.compression)
                except BatchError as error:
                    return AppendResult(error.error_code, log_start_offset=start,
                                        message=str(error))
            batch = rewritten
        try:
            info = self.log.append(
                batch,
                leader_epoch=self.state.leader_epoch,
                log_append_time=now if settings.log_append_time else None,
            )
        except StorageError as error:  # nothing of it stays, unless the log went offline
            log.error("%s-%d: %s", self.topic, self.index, error)
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        self.producers.update(
            header.producer_id, header.producer_epoch, header.base_sequence,
            header.last_offset_delta, info.base_offset, info.max_timestamp,
        )
        if header.is_transactional:
            self.txns.on_data(header.producer_id, info.base_offset)
        self._appended()
        return AppendResult(ErrorCode.none, info.base_offset, info.log_append_time, start,
                            last_offset=info.last_offset)

    def append_marker(self, producer_id: int, producer_epoch: int, *, commit: bool,
                      coordinator_epoch: int) -> AppendResult:
        """Write the marker that ends ``producer_id``'s transaction here, as leader
        (WriteTxnMarkers). Refused with TRANSACTION_COORDINATOR_FENCED from a coordinator
        older than one that wrote here before, and INVALID_PRODUCER_EPOCH for an epoch
        older than the producer's (Kafka's ``ProducerAppendInfo.appendEndTxnMarker``)."""
        start = self.log.log_start_offset
        if not self.is_leader or self.closed:
            return AppendResult(ErrorCode.not_leader_or_follower, log_start_offset=start)
        if coordinator_epoch < self.txns.coordinator_epochs.get(producer_id, -1):
            return AppendResult(ErrorCode.transaction_coordinator_fenced, log_start_offset=start,
                                message=f"coordinator epoch {coordinator_epoch} is older "
                                f"than {self.txns.coordinator_epochs[producer_id]}")
        entry = self.producers.entries.get(producer_id)
        if entry is not None and producer_epoch < entry.epoch:
            return AppendResult(ErrorCode.invalid_producer_epoch, log_start_offset=start,
                                message=f"marker epoch {producer_epoch} is older than "
                                f"{entry.epoch}")
        now = int(time.time() * 1000)
        batch = encode_marker(producer_id, producer_epoch, commit=commit,
                              coordinator_epoch=coordinator_epoch, timestamp=now)
        try:
            info = self.log.append(bytearray(batch), leader_epoch=self.state.leader_epoch,
                                   log_append_time=now if self.settings.log_append_time
                                   else None)
        except StorageError as error:
            log.error("%s-%d: %s", self.topic, self.index, error)
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        self._ended(producer_id, producer_epoch, commit, coordinator_epoch, info.base_offset)
        self._appended()
        return AppendResult(ErrorCode.none, info.base_offset, info.log_append_time, start,
                            last_offset=info.last_offset)

    def _ended(self, producer_id: int, producer_epoch: int, commit: bool,
               coordinator_epoch: int, marker_offset: int) -> None:
        """A marker is in the log: the producer's epoch is at least the marker's and its
        transaction here is over (indexed if aborted)."""
        self.producers.fence(producer_id, producer_epoch)
        self.txns.on_marker(producer_id, commit, coordinator_epoch, marker_offset,
                            self.last_stable_offset, self.log.active_base_offset)

    def _timestamp_errors(
        self, records: bytes, header: BatchHeader, scan: RecordsScan, now: int
    ) -> list[tuple[int, str]]:
        """Records of a client's batch whose timestamps break message.timestamp.before/
        after.max.ms, as Kafka's LogValidator checks every record (but -1, no timestamp),
        and a batch claiming LogAppendTime, which no producer may set."""
        if header.timestamp_type:
            return [(index, "Invalid timestamp type in message: a producer should not set "
                     "timestamp type to LogAppendTime")
                    for index in range(header.records_count)]
        settings = self.settings
        earliest = now - settings.timestamp_before_max_ms
        latest = now + settings.timestamp_after_max_ms
        base = header.base_timestamp
        if earliest <= base + scan.min_timestamp_delta <= base + scan.max_timestamp_delta <= latest:
            return []
        stamps = [base + delta for delta in timestamp_deltas(records, header)]  # a slow path
        return [
            (index, f"Timestamp {stamp} of message with offset {index} is out of range. "
             f"The timestamp should be within [{earliest}, {latest}]")
            for index, stamp in enumerate(stamps)
            if stamp != -1 and not earliest <= stamp <= latest  # -1: no timestamp, not checked
        ]

    def append_records(self, records: Sequence[Record],
                       producer: tuple[int, int] | None = None) -> AppendInfo:
        """Append records the broker writes itself (the group coordinator's), as leader.
        With ``producer`` (id, epoch) the batch is that producer's, transactional (a
        TxnOffsetCommit's offsets), part of its open transaction here; an epoch older than
        a marker already fenced raises ProducerStateError.

        One batch, through the same leader append path as client batches (offsets, leader
        epoch, high watermark), so replication treats it like any other. The records'
        own offsets are ignored: the log assigns them. Raises NotLeader, MessageTooLarge
        (batch over the topic's max.message.bytes), or the log's OSError.
        """
        if not self.is_leader:
            raise NotLeader(f"{self.topic}-{self.index} is not led by broker {self.node_id}")
        if not records:
            raise ValueError("append_records needs at least one record")
        if producer is not None:  # a fenced producer's offsets must not wait forever
            entry = self.producers.entries.get(producer[0])
            if entry is not None and producer[1] < entry.epoch:
                raise ProducerStateError(ErrorCode.invalid_producer_epoch,
                                         f"producer {producer[0]} epoch {producer[1]} is "
                                         f"older than {entry.epoch}")
        settings = self.settings
        now = int(time.time() * 1000)
        codec = CODEC_IDS.get(settings.compression, 0)
        batch = bytearray(
            encode_batch(
                [Record(i, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(records)],
                compression=codec,
                producer_id=producer[0] if producer else -1,
                producer_epoch=producer[1] if producer else -1,
                is_transactional=producer is not None,
            )
        )
        if len(batch) > settings.max_message_bytes:
            raise MessageTooLarge(
                f"a batch of {len(batch)} bytes is over max.message.bytes "
                f"{settings.max_message_bytes} of {self.topic}"
            )
        info = self.log.append(
            batch,
            leader_epoch=self.state.leader_epoch,
            log_append_time=now if settings.log_append_time else None,
        )
        if producer is not None:
            self.txns.on_data(producer[0], info.base_offset)
        self._appended()
        return info

    def _appended(self) -> None:
        """The log grew: wake followers' fetches, then see whether the high watermark moves
        (at once with no other in-sync replica)."""
        waiters, self._append_waiters = self._append_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.maybe_advance_high_watermark()

    def maybe_advance_high_watermark(self) -> None:
        """As leader, move the high watermark up to the smallest log end offset over the
        ISR (never down); wake consumers' fetches and acks=all waiters when it moves."""
        if not self.is_leader:
            return
        new = self.log.log_end_offset
        for replica in self.state.isr:
            if replica == self.node_id:
                continue
            progress = self.followers.get(replica)
            if progress is None or progress.log_end_offset < 0:
                return  # an in-sync follower that has not fetched yet holds it where it is
            new = min(new, progress.log_end_offset)
        if new > self.high_watermark:
            self.high_watermark = new
            self.wake_waiters()

    def wake_waiters(self) -> None:
        """Release every Fetch (and acks=all produce) waiting on this partition."""
        waiters, self._waiters = self._waiters, []
        waiters += self._append_waiters
        self._append_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def add_waiter(self, waiter: asyncio.Future[None], *, on_append: bool = False) -> None:
        """Have ``waiter`` completed when the high watermark moves (or the partition's
        role changes); with ``on_append`` (a follower's fetch) on every append too."""
        if on_append:
            self._append_waiters.append(waiter)
        else:
            self._waiters.append(waiter)

    # ================================================================== reads

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        current_leader_epoch: int = -1,
        last_fetched_epoch: int = -1,
        replica_id: int = -1,
        isolation_level: int = READ_UNCOMMITTED,
        min_one_message: bool = True,
        record_fetch: bool = True,
        zero_copy: bool = False,
    ) -> PartitionRead:
        """Serve one partition of a Fetch as leader (Kafka's ``Partition.fetchRecords``).

        A follower (``replica_id`` >= 0) reads to the log end and, with ``record_fetch``
        (once per request, not on the re-reads of a long poll), its fetch offset is noted:
        that may move the high watermark and let it join the ISR. A consumer reads to the
        high watermark, or the last stable offset for read_committed. With
        ``min_one_message`` the first batch comes back even when over ``max_bytes``
        (Kafka's rule for the first partition of a response); otherwise such data is left
        for the next fetch. With ``zero_copy`` a large read comes back as FileRecords, to
        be sent from the segment files.
        """
        result = PartitionRead(leader=(self.state.leader, self.state.leader_epoch))
        if not self.is_leader or self.closed:
            result.error_code = ErrorCode.not_leader_or_follower
            return result
        result.error_code = self.check_leader_epoch(current_leader_epoch)
        if result.error_code:
            return result
        log = self.log
        follower = replica_id >= 0
        result.high_watermark = self.high_watermark
        result.last_stable_offset = self.last_stable_offset
        result.log_start_offset = log.log_start_offset
        if last_fetched_epoch >= 0:
            epoch, end_offset = log.end_offset_for_epoch(last_fetched_epoch)
            if epoch < last_fetched_epoch or end_offset < offset:
                result.diverging = (epoch, end_offset)
                return result
        if follower and record_fetch and log.log_start_offset <= offset <= log.log_end_offset:
            # the follower has everything below its fetch offset: this may move the high
            # watermark (and the ISR, through metadata), and the answer carries the moved one
            self._follower_fetched(replica_id, offset)
            if self.closed or not self.is_leader:
                result.error_code = ErrorCode.not_leader_or_follower  # gone meanwhile
                return result
            result.high_watermark = self.high_watermark
            result.last_stable_offset = self.last_stable_offset
        if max_bytes <= 0 and not min_one_message:
            if isolation_level != READ_UNCOMMITTED:
                result.aborted_transactions = ()
            return result
        if follower:
            upper = log.log_end_offset
        elif isolation_level == READ_UNCOMMITTED:
            upper = self.high_watermark
        else:
            upper = result.last_stable_offset
            self.txns.forget_before(log.log_start_offset)
            result.aborted_transactions = tuple(self.txns.aborted_in(offset, upper))
        try:
            read = log.read_for_send if zero_copy else log.read
            data = read(offset, max(max_bytes, 0), upper_bound=upper)
        except OffsetOutOfRange:
            result.error_code = ErrorCode.offset_out_of_range
            return result
        if len(data) > max_bytes and not min_one_message:
            return result
        result.records = data
        return result

    def _follower_fetched(self, replica_id: int, offset: int) -> None:
        """Note a follower's fetch; ask for it to join the ISR once it caught up."""
        if self.record_follower_fetch(replica_id, offset) and self._request_isr_change:
            isr = [r for r in self.state.replicas if r in self.state.isr or r == replica_id]
            self._request_isr_change(self, isr, f"{replica_id} caught up")

    def maybe_shrink_isr(self, max_lag_ms: int) -> None:
        """As leader, ask to take followers that stopped keeping up out of the ISR."""
        lagging = self.lagging_replicas(max_lag_ms)
        if lagging and self._request_isr_change:
            isr = [r for r in self.state.isr if r not in lagging]
            self._request_isr_change(self, isr, f"{lagging} not caught up for {max_lag_ms} ms")

    # ================================================================== as leader

    def record_follower_fetch(self, replica_id: int, offset: int) -> bool:
        """Note a follower's fetch at ``offset`` (its log end); may move the high
        watermark. Returns True when the follower, out of the ISR, may now join it: it
        has reached the high watermark and this leader epoch (Kafka's rule)."""
        if (not self.is_leader or replica_id == self.node_id
                or replica_id not in self.state.replicas):
            return False
        progress = self.followers.get(replica_id)
        if progress is None:
            progress = self.followers[replica_id] = FollowerProgress()
        now = time.monotonic()
        end = self.log.log_end_offset
        if offset >= end:
            progress.last_caught_up_time = max(progress.last_caught_up_time, now)
        elif offset >= progress.last_fetch_leader_end:
            progress.last_caught_up_time = max(progress.last_caught_up_time,
                                               progress.last_fetch_time)
        progress.last_fetch_leader_end = end
        progress.last_fetch_time = now
        progress.log_end_offset = offset
        self.maybe_advance_high_watermark()
        return (
            replica_id not in self.state.isr
            and offset >= self.high_watermark
            and offset >= self.leader_epoch_start_offset
        )

    def lagging_replicas(self, max_lag_ms: int) -> list[int]:
        """In-sync followers that have not been caught up for ``max_lag_ms``."""
        if not self.is_leader:
            return []
        now = time.monotonic()
        end = self.log.log_end_offset
        lagging = []
        for replica in self.state.isr:
            if replica == self.node_id:
                continue
            progress = self.followers.get(replica)
            if progress is None:
                progress = self.followers[replica] = FollowerProgress(last_caught_up_time=now)
            if progress.log_end_offset != end and (
                now - progress.last_caught_up_time > max_lag_ms / 1000
            ):
                lagging.append(replica)
        return lagging

    # ================================================================== as follower

    @property
    def last_fetched_epoch(self) -> int:
        """The leader epoch of the last batch in the log (-1 when there is none): what a
        follower's fetch sends so the leader can tell where the logs diverge."""
        end = self.log.log_end_offset
        for epoch, start in reversed(self.log.leader_epochs):
            if start < end:
                return epoch
        return -1

    def append_replicated(self, data: bytes | bytearray | memoryview) -> int:
        """Append batches fetched from the leader (offsets and epochs already set) and
        keep the producer-state table as the leader does, so a new leader still
        recognises an idempotent retry. Returns the number of batches appended."""
        headers = list(iter_batches(data))
        if not headers:
            return 0
        log = self.log
        first = headers[0]
        if first.base_offset < log.log_end_offset <= first.last_offset:
            # The leader's log start (DeleteRecords) fell inside this batch and our log is
            # empty there: restart the log at the batch, as Kafka's followers do.
            if log.log_end_offset != log.log_start_offset:
                raise BatchError(f"batch {first.base_offset}..{first.last_offset} overlaps "
                                 f"the log end {log.log_end_offset}")
            log.truncate_fully_and_start_at(first.base_offset)
            self.producers = ProducerStateTable()
            self.txns = self.txns.truncated(log)
        log.append_replicated(data)
        for h in headers:
            if h.is_control:
                marker = read_marker(data, h) if h.is_transactional else None
                if marker is not None:
                    self._ended(h.producer_id, h.producer_epoch, marker.commit,
                                marker.coordinator_epoch, h.base_offset)
                continue
            if h.producer_id >= 0 and h.base_sequence >= 0:
                self.producers.update(h.producer_id, h.producer_epoch, h.base_sequence,
                                      h.last_offset_delta, h.base_offset, h.max_timestamp)
            if h.is_transactional:
                self.txns.on_data(h.producer_id, h.base_offset)
        self._appended()
        return len(headers)

    def follow_leader(self, leader_high_watermark: int, leader_log_start: int) -> None:
        """Copy the leader's high watermark (capped at our log end) and log start offset."""
        log = self.log
        if leader_log_start > log.log_start_offset:
            log.delete_records_before(min(leader_log_start, log.log_end_offset))
        self.high_watermark = max(min(leader_high_watermark, log.log_end_offset),
                                  log.log_start_offset)

    def truncate_to(self, offset: int) -> None:
        """Cut the log back to ``offset`` (where it diverged from the leader's)."""
        self.log.truncate_to(offset)
        end = self.log.log_end_offset
        self.producers.truncate_to(end)
        self.txns = self.txns.truncated(self.log)
        self.high_watermark = min(self.high_watermark, end)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Empty the log and restart it at ``offset`` (the leader's log start is past our
        end)."""
        self.log.truncate_fully_and_start_at(offset)
        self.producers = ProducerStateTable()
        self.txns = self.txns.truncated(self.log)
        self.high_watermark = offset

    def aborted_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Producer id -> [first, last] offsets of its aborted transactions (the cleaner
        removes their records)."""
        ranges: dict[int, list[tuple[int, int]]] = {}
        for entry in self.txns.aborted:
            ranges.setdefault(entry.producer_id, []).append((entry.first_offset,
                                                             entry.last_offset))
        return ranges

    def producer_last_offsets(self) -> dict[int, int]:
        """Last offset of the last batch of each producer tracked (the cleaner keeps it)."""
        return {pid: entry.batches[-1].last_offset
                for pid, entry in self.producers.entries.items() if entry.batches}

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset (DeleteRecords); returns the new low watermark."""
        start = self.log.delete_records_before(offset)
        self.wake_waiters()
        return start

    def close(self) -> None:
        """Flush and close the log, keeping a producer-state snapshot."""
        self.closed = True
        if not self.log.offline:  # an offline log is recovered, producer state rebuilt
            self.producers.save(self.log.directory, self.log.log_end_offset)
            self.txns.save(self.log.log_end_offset)
        self.log.close()

    def discard(self) -> None:
        """Close a partition whose data is about to be deleted: no flush, no snapshots."""
        self.closed = True
        self.log.discard()


def _record_errors(error_code: int, log_start_offset: int,
                   errors: list[tuple[int, str]]) -> AppendResult:
    """A batch refused for some of its records, with Kafka's summary message."""
    if error_code == ErrorCode.invalid_timestamp:
        message = "One or more records have been rejected due to invalid timestamp"
    else:
        message = (f"One or more records have been rejected due to {len(errors)} record errors "
                   f"in total, and only showing the first three errors at most: {errors[:3]}")
    return AppendResult(error_code, log_start_offset=log_start_offset, message=message,
                        record_errors=tuple(errors))
