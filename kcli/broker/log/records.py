"""Decoding and encoding the records inside a v2 batch.

The broker never decodes records to serve Produce or Fetch; Produce checks the framing
of a client's records without decoding them (validation.py). Decoding serves timestamp
lookups, the compactor, internal logs, error reports and tests.

Record layout (zig-zag varints)::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint (-1 = null) | key | valueLength varint | value
    | headerCount varint | (headerKeyLength varint | key utf8 | valueLength varint | value)*
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import cramjam

from kcli.broker.log.batch import (
    ATTR_CONTROL,
    ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    batch_crc,
)
from kcli.broker.log.errors import CorruptBatch, UnsupportedMagic

__all__ = [
    "COMPRESSION_GZIP",
    "COMPRESSION_LZ4",
    "COMPRESSION_NONE",
    "COMPRESSION_SNAPPY",
    "COMPRESSION_ZSTD",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "Record",
    "RecordSpan",
    "compress",
    "decode_records",
    "decompress",
    "encode_batch",
    "keyless_records",
    "record_spans",
    "records_section",
    "timestamp_deltas",
    "write_varint",
]

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4

DEFAULT_MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
"""Refuse (CorruptBatch) a batch whose records decompress to more than this."""

DECOMPRESSION_FACTOR = 64
"""A client's batch may decompress to this many times max.message.bytes (at least 1 MiB),
up to DEFAULT_MAX_DECOMPRESSED_BYTES: Kafka streams records and has no such cap, but a
Python broker holds them in memory, so a decompression bomb must stop somewhere."""

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_U32 = struct.Struct(">I")

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Record:
    """One record, with its absolute offset and effective timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


# --------------------------------------------------------------------------- decompression


def _decompress_into_growing(
    fn: Callable[[bytes | memoryview, bytearray], int], data: memoryview, limit: int
) -> bytes:
    """Decompress with an output buffer we size ourselves: nothing trusts a declared size."""
    size = min(limit, max(65536, len(data) * 8))
    while True:
        out = bytearray(size)
        try:
            written = fn(data, out)
        except cramjam.DecompressionError as exc:
            # A too-small buffer and corrupt input look alike: grow, up to the limit.
            if size >= limit:
                raise CorruptBatch(f"cannot decompress records: {exc}") from None
            size = min(limit, size * 8)
            continue
        if written < size:
            del out[written:]
        return bytes(out)


def _gunzip(data: memoryview, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    rest: bytes | memoryview = data
    while True:
        stream = zlib.decompressobj(wbits=31)
        try:
            chunk = stream.decompress(rest, limit - total + 1)
        except zlib.error as exc:
            raise CorruptBatch(f"cannot gunzip records: {exc}") from None
        total += len(chunk)
        if total > limit:
            raise CorruptBatch(f"records decompress to more than {limit} bytes")
        parts.append(chunk)
        if not stream.eof:
            raise CorruptBatch("gzip stream is truncated")
        rest = stream.unused_data
        if not rest:
            return b"".join(parts)


def _snappy_raw(block: memoryview, limit: int) -> bytes:
    try:
        length = int(cramjam.snappy.decompress_raw_len(block))
    except cramjam.DecompressionError as exc:
        raise CorruptBatch(f"cannot decompress snappy records: {exc}") from None
    if length > limit:
        raise CorruptBatch(f"records decompress to more than {limit} bytes")
    out = bytearray(length)
    try:
        written = cramjam.snappy.decompress_raw_into(block, out)
    except cramjam.DecompressionError as exc:
        raise CorruptBatch(f"cannot decompress snappy records: {exc}") from None
    if written != length:
        raise CorruptBatch("snappy block shorter than it declares")
    return bytes(out)


def _unsnappy(data: memoryview, limit: int) -> bytes:
    """Raw snappy (librdkafka) or xerial-framed snappy (the Java client)."""
    if data[:8] != XERIAL_MAGIC:
        return _snappy_raw(data, limit)
    parts: list[bytes] = []
    total = 0
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos : pos + 8] == XERIAL_MAGIC:  # a (possibly concatenated) stream header
            if n - pos < len(_XERIAL_HEADER):
                raise CorruptBatch("xerial snappy header is truncated")
            pos += len(_XERIAL_HEADER)
            continue
        if n - pos < 4:
            raise CorruptBatch("xerial snappy block length is truncated")
        (length,) = _U32.unpack_from(data, pos)
        pos += 4
        if length > n - pos:
            raise CorruptBatch("xerial snappy block is truncated")
        part = _snappy_raw(data[pos : pos + length], limit - total)
        pos += length
        total += len(part)
        parts.append(part)
    return b"".join(parts)


def decompress(
    codec: int, data: bytes | memoryview, limit: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> bytes:
    """Decompress a batch's records section; CorruptBatch on any failure or past `limit`."""
    view = memoryview(data)
    if codec == COMPRESSION_GZIP:
        return _gunzip(view, limit)
    if codec == COMPRESSION_SNAPPY:
        return _unsnappy(view, limit)
    if codec == COMPRESSION_LZ4:
        return _decompress_into_growing(cramjam.lz4.decompress_into, view, limit)
    if codec == COMPRESSION_ZSTD:
        return _decompress_into_growing(cramjam.zstd.decompress_into, view, limit)
    if codec == COMPRESSION_NONE:
        return bytes(view)
    raise CorruptBatch(f"unknown compression codec {codec}")


def compress(codec: int, data: bytes) -> bytes:
    """Compress a records section as Kafka's Java client would read it."""
    if codec == COMPRESSION_NONE:
        return data
    if codec == COMPRESSION_GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == COMPRESSION_SNAPPY:  # xerial framing: what Java consumers expect
        out = bytearray(_XERIAL_HEADER)
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
            out += _U32.pack(len(block))
            out += block
        return bytes(out)
    if codec == COMPRESSION_LZ4:  # Kafka's reader refuses linked blocks
        compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


# --------------------------------------------------------------------------- varints


def _read_varint(data: bytes, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """Zig-zag varint at `pos`, never reading at or past `end`; (value, next pos)."""
    raw = 0
    shift = 0
    limit = min(end, pos + max_bytes)
    while pos < limit:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
    raise CorruptBatch("truncated or overlong varint in a record")


def _read_int32(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _read_varint(data, pos, end, 5)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise CorruptBatch("varint out of int32 range in a record")
    return value, pos


def _write_varint(out: bytearray, value: int) -> None:
    raw = (value << 1) ^ (value >> 63)
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        out.append(1)  # zig-zag -1
        return
    _write_varint(out, len(data))
    out += data


# --------------------------------------------------------------------------- decoding


def _read_nullable(data: bytes, pos: int, end: int) -> tuple[bytes | None, int]:
    length, pos = _read_int32(data, pos, end)
    if length == -1:
        return None, pos
    if length < 0 or length > end - pos:
        raise CorruptBatch(f"record field length {length} out of bounds")
    return data[pos : pos + length], pos + length


def _parse_records(data: bytes, header: BatchHeader) -> list[Record]:
    base_offset = header.base_offset
    log_append = bool(header.attributes & ATTR_LOG_APPEND_TIME)
    base_ts = header.base_timestamp
    max_ts = header.max_timestamp
    n = len(data)
    count = header.records_count
    if count < 0 or count * 7 > n:  # a record takes at least 7 bytes
        raise CorruptBatch(f"{count} records cannot fit in {n} bytes")
    records: list[Record] = []
    pos = 0
    for _ in range(count):
        length, pos = _read_int32(data, pos, n)
        if length < 0 or length > n - pos:
            raise CorruptBatch(f"record length {length} out of bounds")
        end = pos + length
        if pos >= end:
            raise CorruptBatch("empty record")
        pos += 1  # attributes: unused in v2
        ts_delta, pos = _read_varint(data, pos, end, 10)
        if not _INT64_MIN <= ts_delta <= _INT64_MAX:
            raise CorruptBatch("timestamp delta out of range")
        offset_delta, pos = _read_int32(data, pos, end)
        key, pos = _read_nullable(data, pos, end)
        value, pos = _read_nullable(data, pos, end)
        header_count, pos = _read_int32(data, pos, end)
        if header_count < 0 or header_count * 2 > end - pos:
            raise CorruptBatch(f"header count {header_count} out of bounds")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(header_count):
            raw_key, pos = _read_nullable(data, pos, end)
            if raw_key is None:
                raise CorruptBatch("null header key")
            try:
                header_key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptBatch("header key is not UTF-8") from None
            header_value, pos = _read_nullable(data, pos, end)
            headers.append((header_key, header_value))
        if pos != end:
            raise CorruptBatch(f"record declares {length} bytes but uses {length - end + pos}")
        timestamp = max_ts if log_append else base_ts + ts_delta
        records.append(Record(base_offset + offset_delta, timestamp, key, value, headers))
    if pos != n:
        raise CorruptBatch(f"{n - pos} bytes left over after {count} records")
    return records


def decode_records(
    buf: bytes | bytearray | memoryview,
    header: BatchHeader,
    *,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> list[Record]:
    """Decode every record of the batch `header` describes (at `header.position` in `buf`).

    Timestamps are effective: a LogAppendTime batch gives every record its maxTimestamp.
    A malformed batch raises CorruptBatch (UnsupportedMagic if not v2); nothing else.
    The CRC is not checked here (see `batch_crc`).
    """
    if header.magic != 2:
        raise UnsupportedMagic(f"record batch magic {header.magic}")
    start = header.position + HEADER_SIZE
    end = header.position + header.batch_length + LOG_OVERHEAD
    if header.position < 0 or header.batch_length < MIN_BATCH_LENGTH or end > len(buf):
        raise CorruptBatch("batch extends past the buffer")
    with memoryview(buf) as view:
        data = decompress(header.attributes & 0x07, view[start:end], max_decompressed_bytes)
    return _parse_records(data, header)


# --------------------------------------------------------------------------- encoding


def encode_batch(
    records: Iterable[Record],
    *,
    base_offset: int = 0,
    compression: int = COMPRESSION_NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamp_type: int = 0,
    partition_leader_epoch: int = -1,
    is_transactional: bool = False,
    is_control: bool = False,
    last_offset_delta: int | None = None,
    max_timestamp: int | None = None,
) -> bytes:
    """Build a valid v2 batch from records carrying absolute offsets (>= base_offset, rising).

    baseTimestamp is the first record's timestamp, maxTimestamp the largest (or
    `max_timestamp`, e.g. the append time of a LogAppendTime batch). lastOffsetDelta is
    the last record's delta unless given (compacted batches keep their original one);
    an empty batch needs it given.
    """
    items = list(records)
    if items:
        base_ts = items[0].timestamp
        top_ts = max(record.timestamp for record in items)
        last_delta = items[-1].offset - base_offset
    else:
        if last_offset_delta is None:
            raise ValueError("an empty batch needs last_offset_delta")
        base_ts = top_ts = -1
        last_delta = last_offset_delta
    if last_offset_delta is not None:
        if last_offset_delta < last_delta:
            raise ValueError("last_offset_delta is below the last record's offset delta")
        last_delta = last_offset_delta
    if max_timestamp is not None:
        top_ts = max_timestamp
    body = bytearray()
    record = bytearray()
    previous = base_offset - 1
    for item in items:
        if item.offset <= previous:
            raise ValueError("record offsets must rise from base_offset")
        previous = item.offset
        delta = item.offset - base_offset
        if delta > _INT32_MAX:
            raise ValueError("record offset too far from base_offset")
        record.clear()
        record.append(0)
        _write_varint(record, item.timestamp - base_ts)
        _write_varint(record, delta)
        _write_bytes(record, item.key)
        _write_bytes(record, item.value)
        _write_varint(record, len(item.headers))
        for header_key, header_value in item.headers:
            _write_bytes(record, header_key.encode("utf-8"))
            _write_bytes(record, header_value)
        _write_varint(body, len(record))
        body += record
    payload = compress(compression, bytes(body))
    attributes = compression & 0x07
    if timestamp_type:
        attributes |= ATTR_LOG_APPEND_TIME
    if is_transactional:
        attributes |= ATTR_TRANSACTIONAL
    if is_control:
        attributes |= ATTR_CONTROL
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out,
        0,
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(payload),
        partition_leader_epoch,
        2,
        0,
        attributes,
        last_delta,
        base_ts,
        top_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(items),
    )
    out += payload
    _U32.pack_into(out, 17, batch_crc(out, 0, len(out)))
    return bytes(out)


# --------------------------------------------------------------------------- raw record spans


class RecordSpan(NamedTuple):
    """Where one record sits in a decompressed records section, and its key facts."""

    start: int
    """Where the record's length varint starts."""
    body: int
    """Where its attributes byte starts (just after the length varint)."""
    tail: int
    """Where its offsetDelta starts (just after the timestampDelta)."""
    end: int
    """One past its last byte."""
    timestamp_delta: int
    offset_delta: int
    key: bytes | None
    has_value: bool


def _zigzag(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (at most 10 bytes) at `pos`; IndexError past the end."""
    raw = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptBatch("overlong varint in a record")


def record_spans(data: bytes, count: int) -> list[RecordSpan]:
    """Split a decompressed records section into its `count` records without building
    Record objects: offsets, key, whether there is a value, and byte spans to copy.

    A faster, narrower cousin of `decode_records` for the compactor (varints of one and
    two bytes are read inline); CorruptBatch on any inconsistency.
    """
    spans: list[RecordSpan] = []
    n = len(data)
    if count < 0 or count * 7 > n:
        raise CorruptBatch(f"{count} records cannot fit in {n} bytes")
    make = RecordSpan._make
    pos = 0
    try:
        for _ in range(count):
            raw = data[pos]
            if raw < 0x80:
                body = pos + 1
            elif data[pos + 1] < 0x80:
                raw = (raw & 0x7F) | (data[pos + 1] << 7)
                body = pos + 2
            else:
                raw, body = _zigzag(data, pos)
                raw = (raw << 1) ^ (raw >> 63)  # back to the raw varint
            length = (raw >> 1) ^ -(raw & 1)
            end = body + length
            if length < 1 or end > n:
                raise CorruptBatch(f"record length {length} out of bounds")
            p = body + 1  # the attributes byte
            raw = data[p]
            if raw < 0x80:
                tail = p + 1
            elif data[p + 1] < 0x80:
                raw = (raw & 0x7F) | (data[p + 1] << 7)
                tail = p + 2
            else:
                raw, tail = _zigzag(data, p)
                raw = (raw << 1) ^ (raw >> 63)
            ts_delta = (raw >> 1) ^ -(raw & 1)
            raw = data[tail]
            if raw < 0x80:
                p = tail + 1
            elif data[tail + 1] < 0x80:
                raw = (raw & 0x7F) | (data[tail + 1] << 7)
                p = tail + 2
            else:
                raw, p = _zigzag(data, tail)
                raw = (raw << 1) ^ (raw >> 63)
            offset_delta = (raw >> 1) ^ -(raw & 1)
            raw = data[p]
            if raw < 0x80:
                p += 1
            elif data[p + 1] < 0x80:
                raw = (raw & 0x7F) | (data[p + 1] << 7)
                p += 2
            else:
                raw, p = _zigzag(data, p)
                raw = (raw << 1) ^ (raw >> 63)
            key_length = (raw >> 1) ^ -(raw & 1)
            if key_length == -1:
                key = None
            else:
                if not 0 <= key_length <= end - p:
                    raise CorruptBatch(f"key length {key_length} out of bounds")
                key = data[p : p + key_length]
                p += key_length
            if p >= end or offset_delta < 0:
                raise CorruptBatch("record fields out of bounds")
            # a null value's length is -1: the single varint byte 0x01
            spans.append(make((pos, body, tail, end, ts_delta, offset_delta, key,
                               data[p] != 0x01)))
            pos = end
    except IndexError:
        raise CorruptBatch("record runs past the end of its batch") from None
    if pos != n:
        raise CorruptBatch(f"{n - pos} bytes left over after {count} records")
    return spans


def records_section(
    buf: bytes | bytearray | memoryview,
    header: BatchHeader,
    *,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> bytes:
    """The decompressed records of the batch `header` describes (at `header.position`)."""
    if header.magic != 2:
        raise UnsupportedMagic(f"record batch magic {header.magic}")
    start = header.position + HEADER_SIZE
    end = header.position + header.batch_length + LOG_OVERHEAD
    if header.position < 0 or header.batch_length < MIN_BATCH_LENGTH or end > len(buf):
        raise CorruptBatch("batch extends past the buffer")
    with memoryview(buf) as view:
        return decompress(header.attributes & 0x07, view[start:end], max_decompressed_bytes)


def timestamp_deltas(buf: bytes | bytearray | memoryview, header: BatchHeader) -> list[int]:
    """The timestampDelta of each record of the batch (a slow path: error reports)."""
    spans = record_spans(records_section(buf, header), header.records_count)
    return [span.timestamp_delta for span in spans]


def keyless_records(buf: bytes | bytearray | memoryview, header: BatchHeader) -> list[int]:
    """The indexes of the batch's records that have no key (a slow path: error reports)."""
    spans = record_spans(records_section(buf, header), header.records_count)
    return [index for index, span in enumerate(spans) if span.key is None]


def write_varint(out: bytearray, value: int) -> None:
    """Append a zig-zag varint."""
    _write_varint(out, value)
