"""Idempotent producer state of one partition: epochs, sequences, retry dedup.

Follows Kafka's rules (ProducerStateManager): the last five batches of each producer
are remembered so a retried batch is answered with its original offsets; a batch
must continue its producer's sequence; a new epoch starts at sequence 0; an unknown
producer (never seen, or its state aged out) may start anywhere.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kcli.broker.errors import ErrorCode
from kcli.durable import write_atomically

log = logging.getLogger("kcli.broker")

BATCHES_KEPT = 5
INT32_MAX = 2147483647
SNAPSHOT_FILE = "producer-state.json"


class ProducerStateError(Exception):
    """A batch breaks its producer's sequence or epoch; carries the Kafka error code."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """The sequence of a batch's last record, wrapping past INT32_MAX like Kafka."""
    if base_sequence > INT32_MAX - last_offset_delta:
        return last_offset_delta - (INT32_MAX - base_sequence) - 1
    return base_sequence + last_offset_delta


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (last_seq == INT32_MAX and next_seq == 0)


@dataclass(slots=True)
class BatchRecord:
    """What is remembered of one appended batch."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    """A producer's current epoch and its recent batches."""

    epoch: int
    batches: deque[BatchRecord] = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))
    last_timestamp: int = 0


class ProducerStateTable:
    """Sequence state per producer id for one partition."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self._snapshot: bytes | None = None
        """The snapshot file's content as last read or written: a stop that would write
        the same bytes again writes nothing (two fsyncs per partition)."""

    def check(
        self, producer_id: int, epoch: int, base_sequence: int, last_offset_delta: int
    ) -> BatchRecord | None:
        """Validate a batch before it is appended.

        Returns the earlier batch when this one is a retry of it (answer with its
        offsets, append nothing); raises ProducerStateError when out of order or fenced.
        """
        if producer_id < 0:
            return None
        entry = self.entries.get(producer_id)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise ProducerStateError(
                ErrorCode.invalid_producer_epoch,
                f"producer {producer_id} epoch {epoch} is older than {entry.epoch}",
            )
        if epoch > entry.epoch:
            if base_sequence != 0:
                raise ProducerStateError(
                    ErrorCode.out_of_order_sequence_number,
                    f"new epoch {epoch} of producer {producer_id} must start at sequence 0, "
                    f"not {base_sequence}",
                )
            return None
        last_seq = last_sequence(base_sequence, last_offset_delta)
        for batch in entry.batches:
            if batch.first_seq == base_sequence and batch.last_seq == last_seq:
                return batch
        if entry.batches and not _in_sequence(entry.batches[-1].last_seq, base_sequence):
            raise ProducerStateError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {producer_id} sent sequence {base_sequence}, expected "
                f"{(entry.batches[-1].last_seq + 1) & INT32_MAX}",
            )
        return None

    def update(
        self,
        producer_id: int,
        epoch: int,
        base_sequence: int,
        last_offset_delta: int,
        first_offset: int,
        timestamp: int,
    ) -> None:
        """Remember a batch that was appended at ``first_offset``."""
        if producer_id < 0:
            return
        entry = self.entries.get(producer_id)
        if entry is None or entry.epoch != epoch:
            entry = ProducerEntry(epoch)
            self.entries[producer_id] = entry
        entry.batches.append(
            BatchRecord(
                base_sequence,
                last_sequence(base_sequence, last_offset_delta),
                first_offset,
                first_offset + last_offset_delta,
                timestamp,
            )
        )
        entry.last_timestamp = max(entry.last_timestamp, timestamp)

    def fence(self, producer_id: int, epoch: int) -> None:
        """A transaction marker at ``epoch`` was written: older epochs are fenced from
        now on, and a newer one starts its sequences afresh."""
        entry = self.entries.get(producer_id)
        if entry is None or epoch > entry.epoch:
            self.entries[producer_id] = ProducerEntry(
                epoch, last_timestamp=entry.last_timestamp if entry else 0)

    def truncate_to(self, offset: int) -> None:
        """Forget batches at or after ``offset`` (the log was cut back)."""
        for producer_id in list(self.entries):
            entry = self.entries[producer_id]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if kept:
                entry.batches = deque(kept, maxlen=BATCHES_KEPT)
            else:
                del self.entries[producer_id]

    def expire(self, now_ms: int, expiration_ms: int) -> None:
        """Drop producers idle for longer than ``expiration_ms``."""
        for producer_id in [
            pid for pid, e in self.entries.items() if now_ms - e.last_timestamp > expiration_ms
        ]:
            del self.entries[producer_id]

    def save(self, directory: Path, log_end_offset: int) -> None:
        """Write a snapshot valid for a log ending at ``log_end_offset``."""
        doc = {
            "log_end_offset": log_end_offset,
            "producers": {
                str(pid): {
                    "epoch": e.epoch,
                    "last_timestamp": e.last_timestamp,
                    "batches": [
                        [b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                        for b in e.batches
                    ],
                }
                for pid, e in self.entries.items()
            },
        }
        data = json.dumps(doc).encode()
        if data == self._snapshot:
            return
        write_atomically(directory / SNAPSHOT_FILE, data)
        self._snapshot = data

    @classmethod
    def load(cls, directory: Path, log_end_offset: int) -> ProducerStateTable | None:
        """The snapshot, if one exists for exactly this log end offset."""
        path = directory / SNAPSHOT_FILE
        try:
            data = path.read_bytes()
            doc = json.loads(data)
            if int(doc["log_end_offset"]) != log_end_offset:
                return None
            table = cls()
            for pid, e in doc["producers"].items():
                entry = ProducerEntry(int(e["epoch"]), last_timestamp=int(e["last_timestamp"]))
                for first_seq, last_seq, first_off, last_off, ts in e["batches"]:
                    entry.batches.append(BatchRecord(first_seq, last_seq, first_off, last_off, ts))
                table.entries[int(pid)] = entry
            table._snapshot = data
            return table
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring unreadable producer snapshot %s: %s", path, error)
            return None

    @classmethod
    def rebuild(cls, batches: Iterable[tuple[int, int, int, int, int, int]]) -> ProducerStateTable:
        """Rebuild from (producer_id, epoch, base_sequence, last_offset_delta, base_offset,
        max_timestamp) of the log's batches, oldest first."""
        table = cls()
        for producer_id, epoch, base_sequence, delta, base_offset, timestamp in batches:
            if producer_id >= 0 and base_sequence >= 0:
                table.update(producer_id, epoch, base_sequence, delta, base_offset, timestamp)
        return table
