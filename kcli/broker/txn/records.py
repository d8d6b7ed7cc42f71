"""Records of ``__transaction_state``, in Kafka's format (``TransactionLogKey`` and
``TransactionLogValue`` v0), so Kafka's tools can read what this broker writes.

Key: i16 version 0, TransactionalId (i16-length string). Value v0: i16 version,
ProducerId i64, ProducerEpoch i16, TimeoutMs i32, Status i8, Partitions (i32-length
nullable array of {Topic string, PartitionIds [i32]}, null when Empty), LastUpdateMs i64,
StartMs i64. A tombstone (no value) forgets the id. Decoding is bounded: any malformed
bytes raise RecordFormatError.
"""

from __future__ import annotations

import struct

from kcli.broker.txn.metadata import TopicPartition, TransactionMetadata, TxnState

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hqhib")  # version, producer id, epoch, timeout, status
_TIMES = struct.Struct(">qq")


class RecordFormatError(ValueError):
    """Bytes that are not a transaction log record this broker can read."""


def _string(value: str) -> bytes:
    data = value.encode()
    if len(data) > 32767:
        raise ValueError("string too long for a transaction log record")
    return _I16.pack(len(data)) + data


def encode_key(transactional_id: str) -> bytes:
    """The record key of a transactional id."""
    return _I16.pack(0) + _string(transactional_id)


def storable(transactional_id: str) -> bool:
    """Whether the id fits a record key (an i16-length string)."""
    return len(transactional_id.encode()) <= 32767


def encode_value(meta: TransactionMetadata) -> bytes:
    """The record value of a transactional id's state (v0)."""
    out = bytearray(_HEAD.pack(0, meta.producer_id, meta.producer_epoch, meta.timeout_ms,
                               int(meta.state)))
    if meta.state is TxnState.EMPTY and not meta.partitions:
        out += _I32.pack(-1)
    else:
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(index)
        out += _I32.pack(len(by_topic))
        for topic, indexes in by_topic.items():
            out += _string(topic) + _I32.pack(len(indexes))
            out += struct.pack(f">{len(indexes)}i", *indexes)
    out += _TIMES.pack(meta.update_ms, meta.start_ms)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise RecordFormatError("record ends early")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, shape: struct.Struct) -> tuple[int, ...]:
        return shape.unpack(self.take(shape.size))

    def string(self) -> str:
        (length,) = self.unpack(_I16)
        try:
            return self.take(length).decode()
        except UnicodeDecodeError as error:
            raise RecordFormatError(f"not UTF-8: {error}") from None


def decode_key(data: bytes) -> str:
    """The transactional id of a record key."""
    reader = _Reader(data)
    (version,) = reader.unpack(_I16)
    if version != 0:
        raise RecordFormatError(f"unknown key version {version}")
    return reader.string()


def decode_value(transactional_id: str, data: bytes) -> TransactionMetadata:
    """A transactional id's state from its record value (v0)."""
    reader = _Reader(data)
    version, producer_id, epoch, timeout_ms, status = reader.unpack(_HEAD)
    if version != 0:
        raise RecordFormatError(f"unknown value version {version}")
    try:
        state = TxnState(status)
    except ValueError:
        raise RecordFormatError(f"unknown transaction state {status}") from None
    (topics,) = reader.unpack(_I32)
    partitions: set[TopicPartition] = set()
    if topics > len(data):
        raise RecordFormatError(f"{topics} topics in a {len(data)}-byte record")
    for _ in range(max(topics, 0)):
        topic = reader.string()
        (count,) = reader.unpack(_I32)
        if count < 0 or count * 4 > len(data):
            raise RecordFormatError(f"bad partition count {count}")
        ids = struct.unpack(f">{count}i", reader.take(4 * count))
        partitions.update((topic, index) for index in ids)
    update_ms, start_ms = reader.unpack(_TIMES)
    return TransactionMetadata(transactional_id, producer_id, epoch, timeout_ms, state,
                               partitions, start_ms, update_ms)
