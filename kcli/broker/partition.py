"""One partition replica on this broker: its log, high watermark and producer state.

Handlers call ``append_client_batch`` and ``read``; both work on stored bytes. The
high watermark is the offset below which every in-sync replica holds the data; with
a single replica it is the log end offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kcli.broker.cluster.metadata import PartitionState
from kcli.broker.configs import Settings
from kcli.broker.log import (
    AppendInfo,
    BatchError,
    LogConfig,
    MessageTooLarge,
    PartitionLog,
    Record,
    all_records_have_keys,
    decode_records,
    encode_batch,
    read_header,
    validate_client_batch,
)
from kcli.broker.producer_state import ProducerStateError, ProducerStateTable

log = logging.getLogger("kcli.broker")

NONE = 0
INVALID_TIMESTAMP = 32
NOT_ENOUGH_REPLICAS = 19
INVALID_RECORD = 87
INVALID_TXN_STATE = 48
LONG_MAX = 9223372036854775807
UNSUPPORTED_COMPRESSION_TYPE = 76
ZSTD = 4


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """A topic's effective configs, parsed once per change, for the hot path."""

    max_message_bytes: int
    log_append_time: bool
    timestamp_before_max_ms: int
    timestamp_after_max_ms: int
    min_insync_replicas: int
    compression: str
    log_config: LogConfig

    @classmethod
    def resolve(cls, settings: Settings, configs: dict[str, str]) -> TopicSettings:
        """Effective settings of a topic with ``configs`` overrides."""

        def value(name: str) -> str:
            return settings.topic_value(configs, name)

        flush_messages = int(value("flush.messages"))
        flush_ms = int(value("flush.ms"))
        policy = {part.strip() for part in value("cleanup.policy").split(",")}
        return cls(
            max_message_bytes=int(value("max.message.bytes")),
            log_append_time=value("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms=int(value("message.timestamp.before.max.ms")),
            timestamp_after_max_ms=int(value("message.timestamp.after.max.ms")),
            min_insync_replicas=int(value("min.insync.replicas")),
            compression=value("compression.type"),
            log_config=LogConfig(
                segment_bytes=int(value("segment.bytes")),
                segment_ms=int(value("segment.ms")),
                index_interval_bytes=int(value("index.interval.bytes")),
                flush_messages=None if flush_messages >= LONG_MAX else flush_messages,
                flush_ms=None if flush_ms >= LONG_MAX else flush_ms,
                delete="delete" in policy,
                compact="compact" in policy,
                retention_ms=int(value("retention.ms")),
                retention_bytes=int(value("retention.bytes")),
                file_delete_delay_ms=int(value("file.delete.delay.ms")),
                delete_retention_ms=int(value("delete.retention.ms")),
                min_cleanable_dirty_ratio=float(value("min.cleanable.dirty.ratio")),
                min_compaction_lag_ms=int(value("min.compaction.lag.ms")),
                max_compaction_lag_ms=int(value("max.compaction.lag.ms")),
            ),
        )


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
    ) -> None:
        self.topic = topic
        self.index = index
        self.node_id = node_id
        self.settings = settings
        self.state = state
        self.log = PartitionLog.open(directory, settings.log_config)
        self.high_watermark = self.log.log_end_offset
        self.producers = self._load_producer_state()
        self._waiters: list[asyncio.Future[None]] = []
        if self.is_leader:
            self.log.leader_epoch_start(state.leader_epoch, self.log.log_end_offset)

    @property
    def is_leader(self) -> bool:
        """Whether this broker leads the partition."""
        return self.state.leader == self.node_id

    @property
    def leader_epoch(self) -> int:
        """The current leader epoch."""
        return self.state.leader_epoch

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

        ``allow_zstd`` is False for Produce below v7, which predates zstd.
        """
        start = self.log.log_start_offset
        if records is None:
            return AppendResult(INVALID_RECORD, log_start_offset=start, message="no records")
        settings = self.settings
        try:
            header = validate_client_batch(records, settings.max_message_bytes)
        except BatchError as error:
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        if header.compression == ZSTD and not allow_zstd:
            return AppendResult(
                UNSUPPORTED_COMPRESSION_TYPE, log_start_offset=start,
                message="zstd needs Produce v7 or later",
            )
        if header.is_transactional:
            return AppendResult(
                INVALID_TXN_STATE, log_start_offset=start,
                message="transactions are not supported by this broker",
            )
        if settings.log_config.compact:  # decodes records: compacted topics only
            try:
                keyed = all_records_have_keys(records, header)
            except BatchError as error:
                return AppendResult(error.error_code, log_start_offset=start, message=str(error))
            if not keyed:
                return AppendResult(
                    INVALID_RECORD, log_start_offset=start,
                    message=f"compacted topic {self.topic} cannot accept a record without a key",
                )
        if acks == -1 and len(self.state.isr) < settings.min_insync_replicas:
            return AppendResult(
                NOT_ENOUGH_REPLICAS, log_start_offset=start,
                message=f"{len(self.state.isr)} in-sync replicas, "
                f"min.insync.replicas is {settings.min_insync_replicas}",
            )
        now = int(time.time() * 1000)
        if not settings.log_append_time and (
            header.max_timestamp - now > settings.timestamp_after_max_ms
            or (header.base_timestamp >= 0
                and now - header.base_timestamp > settings.timestamp_before_max_ms)
        ):
            return AppendResult(
                INVALID_TIMESTAMP, log_start_offset=start,
                message="record timestamp outside message.timestamp.before/after.max.ms",
            )
        try:
            duplicate = self.producers.check(
                header.producer_id, header.producer_epoch, header.base_sequence,
                header.last_offset_delta,
            )
        except ProducerStateError as error:
            return AppendResult(error.error_code, log_start_offset=start, message=str(error))
        if duplicate is not None:
            return AppendResult(NONE, duplicate.first_offset, -1, start)
        batch = bytearray(records)
        if settings.compression not in ("producer", _CODEC_NAMES[header.compression]):
            batch = recompress(batch, settings.compression)
        info = self.log.append(
            batch,
            leader_epoch=self.state.leader_epoch,
            log_append_time=now if settings.log_append_time else None,
        )
        self.producers.update(
            header.producer_id, header.producer_epoch, header.base_sequence,
            header.last_offset_delta, info.base_offset, info.max_timestamp,
        )
        self.maybe_advance_high_watermark()
        return AppendResult(NONE, info.base_offset, info.log_append_time, start)

    def append_records(self, records: Sequence[Record]) -> AppendInfo:
        """Append records the broker writes itself (the group coordinator's), as leader.

        One batch, through the same leader append path as client batches (offsets, leader
        epoch, high watermark), so replication treats it like any other. The records'
        own offsets are ignored: the log assigns them. Raises NotLeader, MessageTooLarge
        (batch over the topic's max.message.bytes), or the log's OSError.
        """
        if not self.is_leader:
            raise NotLeader(f"{self.topic}-{self.index} is not led by broker {self.node_id}")
        if not records:
            raise ValueError("append_records needs at least one record")
        settings = self.settings
        now = int(time.time() * 1000)
        codec = _CODEC_IDS.get(settings.compression, 0)
        batch = bytearray(
            encode_batch(
                [Record(i, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(records)],
                compression=codec,
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
        self.maybe_advance_high_watermark()
        return info

    def maybe_advance_high_watermark(self) -> None:
        """Move the high watermark up to what every in-sync replica has; wake fetchers."""
        new = self.log.log_end_offset
        if new != self.high_watermark:
            self.high_watermark = new
            self.wake_waiters()

    def wake_waiters(self) -> None:
        """Release every Fetch waiting on this partition."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def add_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Have ``waiter`` completed on the next append or high watermark move."""
        self._waiters.append(waiter)

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
        self.producers.save(self.log.directory, self.log.log_end_offset)
        self.log.close()


_CODEC_NAMES = {0: "uncompressed", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_CODEC_IDS = {name: code for code, name in _CODEC_NAMES.items()}


def recompress(batch: bytearray, codec: str) -> bytearray:
    """Re-encode a batch with the topic's ``compression.type`` (a slow path, as in Kafka)."""
    header = read_header(batch, 0)
    records = decode_records(batch, header)
    return bytearray(
        encode_batch(
            records,
            base_offset=0,
            compression=_CODEC_IDS[codec],
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            timestamp_type=header.timestamp_type,
        )
    )
