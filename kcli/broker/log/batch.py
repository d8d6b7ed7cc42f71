"""Record batch (magic v2) headers: pure functions on bytes, never decoding a record.

Layout, big endian (offsets in bytes)::

    0  baseOffset i64        21 attributes i16         43 producerId i64
    8  batchLength i32       23 lastOffsetDelta i32    51 producerEpoch i16
    12 partitionLeaderEpoch  27 baseTimestamp i64      53 baseSequence i32
    16 magic i8              35 maxTimestamp i64       57 recordsCount i32
    17 crc u32 (CRC32C of bytes 21..end)               61 records

`batchLength` counts the bytes after itself, so a batch takes `batchLength + 12` bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c

from kcli.broker.log.errors import (
    BatchError,
    CorruptBatch,
    InvalidBatch,
    MessageTooLarge,
    UnsupportedMagic,
)

__all__ = [
    "ATTR_CONTROL",
    "ATTR_LOG_APPEND_TIME",
    "ATTR_TRANSACTIONAL",
    "COMPRESSION_MASK",
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "MIN_BATCH_LENGTH",
    "BatchError",
    "BatchHeader",
    "CorruptBatch",
    "InvalidBatch",
    "MessageTooLarge",
    "UnsupportedMagic",
    "batch_crc",
    "iter_batches",
    "read_header",
    "set_max_timestamp",
    "stamp_batch",
    "validate_client_batch",
]

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD  # 49
CRC_START = 21
MAGIC_POS = 16

COMPRESSION_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_OFFSET_AND_LENGTH = struct.Struct(">qi")


class BatchHeader(NamedTuple):
    """The 61-byte header of one v2 record batch, and where it starts in its buffer."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    position: int = 0
    """Byte position of the batch in the buffer (or segment file) it was read from."""

    @property
    def size(self) -> int:
        """Bytes the whole batch takes: batchLength + 12."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        """0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return 1 if self.attributes & ATTR_LOG_APPEND_TIME else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)


# Where each field sits in the plain tuple HEADER.unpack_from returns (BatchHeader's order),
# for hot paths that index that tuple rather than build a BatchHeader.
BATCH_LENGTH = BatchHeader._fields.index("batch_length")
LAST_OFFSET_DELTA = BatchHeader._fields.index("last_offset_delta")
MAX_TIMESTAMP = BatchHeader._fields.index("max_timestamp")
RECORDS_COUNT = BatchHeader._fields.index("records_count")


def unpack_header(buf: bytes | bytearray | memoryview, offset: int, position: int) -> BatchHeader:
    """The header at `offset` in `buf`, labelled with `position`; the caller checked the size."""
    return BatchHeader(*HEADER.unpack_from(buf, offset), position)  # type: ignore[call-arg]


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the batch header at `pos` (no CRC or magic check); CorruptBatch if cut short."""
    if pos < 0 or len(buf) - pos < HEADER_SIZE:
        raise CorruptBatch(f"batch header at {pos} is truncated")
    return unpack_header(buf, pos, pos)


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[BatchHeader]:
    """Yield the header of every whole batch in `buf`, in order, stopping at a partial tail.

    A batch length too small to hold a header is corruption, not a tail: CorruptBatch.
    """
    pos = 0
    end = len(buf)
    while end - pos >= HEADER_SIZE:
        header = unpack_header(buf, pos, pos)
        if header.batch_length < MIN_BATCH_LENGTH:
            raise CorruptBatch(f"batch at {pos} has impossible length {header.batch_length}")
        size = header.batch_length + LOG_OVERHEAD
        if end - pos < size:
            return
        yield header
        pos += size


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC32C of the bytes the batch at `pos` covers with its crc field."""
    with memoryview(buf) as view:
        return int(crc32c.crc32c(view[pos + CRC_START : pos + size]))


def _as_bytes_view(buf: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(buf)
    if view.ndim != 1 or view.format != "B":
        with view:
            return view.cast("B")
    return view


def validate_client_batch(buf: bytes | bytearray | memoryview, max_batch_bytes: int) -> BatchHeader:
    """Check a Produce (v3+) partition's `records`: exactly one sound v2 batch from a client.

    Raises only BatchError subclasses: CorruptBatch (crc, length, truncation),
    UnsupportedMagic, MessageTooLarge, InvalidBatch (several batches, counts, base offset,
    control batch, unknown codec).
    """
    try:
        view = _as_bytes_view(buf)
    except (TypeError, ValueError) as exc:
        raise CorruptBatch(f"records are not a byte buffer: {exc}") from None
    with view:
        n = len(view)
        if n <= MAGIC_POS:
            raise CorruptBatch(f"records of {n} bytes are too short for a batch")
        magic = view[MAGIC_POS]
        if magic != 2:
            raise UnsupportedMagic(f"record batch magic {magic}, only magic 2 is accepted")
        if n < HEADER_SIZE:
            raise CorruptBatch(f"records of {n} bytes are too short for a v2 batch header")
        header = unpack_header(view, 0, 0)
        if header.batch_length < MIN_BATCH_LENGTH:
            raise CorruptBatch(f"impossible batch length {header.batch_length}")
        size = header.batch_length + LOG_OVERHEAD
        if size > n:
            raise CorruptBatch(f"batch claims {size} bytes but only {n} were sent")
        if size < n:
            raise InvalidBatch(
                f"produce records must hold exactly one batch ({size} of {n} bytes used)"
            )
        if size > max_batch_bytes:
            raise MessageTooLarge(f"batch of {size} bytes exceeds the limit of {max_batch_bytes}")
        if int(crc32c.crc32c(view[CRC_START:])) != header.crc:
            raise CorruptBatch("record batch CRC32C mismatch")
    attributes = header.attributes
    if attributes & ATTR_CONTROL:
        raise InvalidBatch("clients may not produce control batches")
    if attributes & COMPRESSION_MASK > 4:
        raise InvalidBatch(f"unknown compression codec {attributes & COMPRESSION_MASK}")
    if header.records_count < 1:
        raise InvalidBatch(f"batch holds {header.records_count} records")
    if header.last_offset_delta != header.records_count - 1:
        raise InvalidBatch(
            f"lastOffsetDelta {header.last_offset_delta} does not match "
            f"{header.records_count} records"
        )
    if header.base_offset != 0:
        raise InvalidBatch(f"client batch base offset must be 0, not {header.base_offset}")
    if attributes & ATTR_TRANSACTIONAL and header.producer_id < 0:
        raise InvalidBatch("transactional batch without a producer id")
    return header


def stamp_batch(
    buf: bytearray | memoryview, base_offset: int, leader_epoch: int, log_append_time: int | None
) -> None:
    """Assign the batch at the start of `buf` its offsets and leader epoch, in place.

    baseOffset and partitionLeaderEpoch sit outside the CRC. With `log_append_time`, the
    batch becomes LogAppendTime: the attribute bit and maxTimestamp are set (baseTimestamp
    is left alone, as Kafka does) and the CRC is recomputed.
    """
    _I64.pack_into(buf, 0, base_offset)
    _I32.pack_into(buf, 12, leader_epoch)
    if log_append_time is not None:
        (attributes,) = _I16.unpack_from(buf, CRC_START)
        _I16.pack_into(buf, CRC_START, attributes | ATTR_LOG_APPEND_TIME)
        set_max_timestamp(buf, log_append_time)


def set_max_timestamp(buf: bytearray | memoryview, max_timestamp: int) -> None:
    """Write `max_timestamp` into the header of the batch at the start of `buf` and
    recompute its CRC, in place (Kafka's ``setMaxTimestamp``)."""
    _I64.pack_into(buf, 35, max_timestamp)
    (batch_length,) = _I32.unpack_from(buf, 8)
    with memoryview(buf) as view:
        crc = crc32c.crc32c(view[CRC_START : batch_length + LOG_OVERHEAD])
    _U32.pack_into(buf, 17, crc)


def batch_extent(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(baseOffset, size) of the batch at `pos`; the caller guarantees 12 bytes are there."""
    base_offset, batch_length = _OFFSET_AND_LENGTH.unpack_from(buf, pos)
    return base_offset, batch_length + LOG_OVERHEAD
