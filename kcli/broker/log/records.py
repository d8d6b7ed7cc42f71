"""Decoding and encoding the records inside a v2 batch, and checking a client's.

The broker never decodes records to serve Produce or Fetch. Produce does check the
framing of every record of a client's batch (`scan_client_records`, as Kafka's
LogValidator reads them all), without building an object per record, and learns the
batch's real largest timestamp from it. Decoding serves timestamp lookups, the compactor,
internal logs, error reports and tests.

Record layout (zig-zag varints)::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint (-1 = null) | key | valueLength varint | value
    | headerCount varint | (headerKeyLength varint | key utf8 | valueLength varint | value)*
"""

from __future__ import annotations

import array
import struct
import sys
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
from kcli.broker.log.errors import CorruptBatch, InvalidBatch, UnsupportedMagic

__all__ = [
    "COMPRESSION_GZIP",
    "COMPRESSION_LZ4",
    "COMPRESSION_NONE",
    "COMPRESSION_SNAPPY",
    "COMPRESSION_ZSTD",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "Record",
    "RecordSpan",
    "RecordsScan",
    "client_decompression_limit",
    "compress",
    "decode_records",
    "decompress",
    "encode_batch",
    "keyless_records",
    "record_spans",
    "records_section",
    "scan_client_records",
    "scan_records",
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


# --------------------------------------------------------------------------- client records


class RecordsScan(NamedTuple):
    """What `scan_records` learnt from a records section whose framing is sound."""

    min_timestamp_delta: int
    max_timestamp_delta: int
    keyless: int
    """How many records have a null key."""


def _raw_varint(data: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """The unsigned (still zig-zagged) varint at `pos` of at most `max_bytes` bytes, and
    where it ends; IndexError past the end of `data`."""
    raw = 0
    shift = 0
    limit = pos + max_bytes
    while pos < limit:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return raw, pos
        shift += 7
    raise InvalidBatch("overlong varint in a record")


def _skip_headers(data: bytes, pos: int, end: int) -> int:
    """Walk a record's header count and headers from `pos`; where they end."""
    raw, pos = _raw_varint(data, pos, 5)
    count = (raw >> 1) ^ -(raw & 1)
    if count < 0 or count * 2 > end - pos:  # a header takes at least two bytes
        raise InvalidBatch(f"invalid number of record headers {count}")
    for _ in range(count):
        raw, pos = _raw_varint(data, pos, 5)
        length = (raw >> 1) ^ -(raw & 1)
        if length < 0:
            raise InvalidBatch(f"invalid header key length {length}")
        pos += length
        raw, pos = _raw_varint(data, pos, 5)
        length = (raw >> 1) ^ -(raw & 1)
        if length < -1:
            raise InvalidBatch(f"invalid header value length {length}")
        if length > 0:
            pos += length
    return pos


def _offset_column(first: int, m: int, k: int, width: int) -> bytes:
    """Byte `k` of the zig-zag varints of offset deltas first..first+m-1 (each `width`
    bytes long): what a run of records must hold there."""
    last = k == width - 1
    if k == 0:
        if last:
            return bytes(range(2 * first, 2 * (first + m), 2))
        start = first % 64
        return (_LOW_OFFSET_BYTES * ((start + m) // 64 + 1))[start : start + m]
    shift = 7 * k - 1  # byte k of 2 * i is (i >> (7k - 1)) & 0x7F
    flag = 0 if last else 0x80
    out = bytearray()
    i = first
    end = first + m
    while i < end:
        step = min(end, ((i >> shift) + 1) << shift)
        out += bytes((((i >> shift) & 0x7F) | flag,)) * (step - i)
        i = step
    return bytes(out)


_LOW_OFFSET_BYTES = bytes(((2 * i) & 0x7F) | 0x80 for i in range(64))
_OFFSET_WIDTH_ENDS = (64, 8192, 1 << 20, 1 << 27)
"""First offset delta whose varint takes one more byte than the one before it."""
_ZIGZAG_ORDER = bytes(((r >> 1) ^ -(r & 1)) + 64 for r in range(128)) + bytes(128)
"""A one-byte zig-zag varint -> its value + 64, so min() and max() of a translated column
give the smallest and largest values."""


def _first_difference(found: bytes, expected: bytes) -> int:
    """Index of the first byte where `found` and `expected` differ (they do)."""
    for index, (a, b) in enumerate(zip(found, expected, strict=False)):
        if a != b:
            return index
    return min(len(found), len(expected))


class _Shape(NamedTuple):
    """Where the framing bytes of one record lie (relative to its start), so records of
    the same shape after it can be checked a run at a time with strided slices."""

    size: int
    fixed: tuple[int, ...]
    """Bytes that must repeat exactly: length varint, key and value lengths, header count."""
    timestamp: int
    """The timestampDelta: one byte, or two (deltas of 64 ms to 8 s)."""
    timestamp_width: int
    offset: int
    offset_width: int
    keyless: bool


def _check_run(
    data: bytes, pos: int, stop: int, index: int, count: int, shape: _Shape, most: int
) -> tuple[int, int, int]:
    """How many records from `pos` (the `index`th; `most` at most) have exactly `shape`,
    but for their one-byte timestampDelta and their own offsetDelta; and the smallest and
    largest timestampDelta among them. All checks are slices and compares in C."""
    size = shape.size
    width = shape.offset_width
    m = min(most, count - index, (stop - pos) // size,
            _OFFSET_WIDTH_ENDS[width - 1] - index)
    if m <= 0:
        return 0, 0, 0
    stop = pos + m * size
    for rel in shape.fixed:
        column = data[pos + rel : stop : size]
        expected = data[pos - size + rel : pos - size + rel + 1] * m
        if column != expected:
            m = _first_difference(column, expected)
            stop = pos + m * size
    for k in range(width):
        column = data[pos + shape.offset + k : stop : size]
        expected = _offset_column(index, m, k, width)
        if column != expected:
            m = _first_difference(column, expected)
            stop = pos + m * size
    stamps = data[pos + shape.timestamp : stop : size]
    if shape.timestamp_width == 2:
        return _two_byte_timestamps(stamps, data[pos + shape.timestamp + 1 : stop : size])
    if not stamps.isascii():  # a timestampDelta of more than one byte
        m = next(i for i, byte in enumerate(stamps) if byte >= 0x80)
        stamps = stamps[:m]
    if not m:
        return 0, 0, 0
    low, high = _extremes(stamps.translate(_ZIGZAG_ORDER))
    return m, low - 64, high - 64


_EVEN_AND_CONTINUED = bytes(0 if b >= 0x80 and not b & 1 else 0x80 for b in range(256))
"""Maps the first byte of a two-byte varint of a delta >= 0 to 0, anything else to 0x80."""
_LOW_SEVEN_BITS = bytes(b & 0x7F for b in range(256))


def _two_byte_timestamps(first: bytes, second: bytes) -> tuple[int, int, int]:
    """How many of these two-byte timestampDeltas (their first and second bytes) come
    before one that is not a two-byte varint of a delta of 64 to 8191 ms (negative ones
    are walked one by one), and the smallest and largest of them."""
    m = len(first)
    if not (first.translate(_EVEN_AND_CONTINUED).isascii() and second.isascii()):
        m = next(i for i, (a, b) in enumerate(zip(first, second, strict=True))
                 if a < 0x80 or a & 1 or b >= 0x80)
    if not m:
        return 0, 0, 0
    pairs = bytearray(2 * m)  # big-endian (second, first & 0x7F): ordered as the deltas
    pairs[0::2] = second[:m]
    pairs[1::2] = first[:m].translate(_LOW_SEVEN_BITS)
    values = array.array("H", pairs)
    if sys.byteorder == "little":
        values.byteswap()
    low, high = min(values), max(values)
    return m, ((low >> 8) << 6) | ((low & 0x7F) >> 1), ((high >> 8) << 6) | ((high & 0x7F) >> 1)


_BYTES = [bytes((value,)) for value in range(128)]


def _extremes(column: bytes) -> tuple[int, int]:
    """The smallest and largest byte of `column` (not empty, every byte below 0x80): for
    a long column, looked for value by value with `in` (memchr), faster than min() and
    max(), which go through the column an int at a time."""
    if len(column) < 512:
        return min(column), max(column)
    low = next(value for value in range(128) if _BYTES[value] in column)
    high = next(value for value in range(127, low - 1, -1) if _BYTES[value] in column)
    return low, high


def scan_records(data: bytes, count: int, start: int = 0, stop: int | None = None) -> RecordsScan:
    """Check the framing of a decompressed records section from a client, as Kafka's
    LogValidator does by reading every record, without building a Python object per record.

    Each record's length varint, attributes, timestampDelta, offsetDelta (which must be
    its index: 0..count-1 in order), key and value lengths (-1 for null), header count and
    headers must lie inside the record and fill it exactly; the `count` records must fill
    `data` (or data[start:stop]) exactly. InvalidBatch (Kafka's InvalidRecordException:
    INVALID_RECORD) on any inconsistency; nothing else.

    A record is walked varint by varint (those of one and two bytes read inline); then the
    records after it that have its very shape (same length, key and value lengths, no
    headers, one-byte timestampDelta: what most producers send) are checked together with
    strided slices, at C speed.
    """
    n = len(data) if stop is None else stop
    if count < 1 or count * 7 > n - start:  # a record takes at least 7 bytes
        raise InvalidBatch(f"{count} records cannot fit in {n - start} bytes")
    lowest = 1 << 64
    highest = -lowest
    keyless = 0
    pos = start
    index = 0
    retry = backoff = 1  # when to look for a run of alike records next, and how long to wait
    try:
        while index < count:
            first = pos
            # length: one or two bytes for records under 8 KiB
            raw = data[pos]
            if raw < 0x80:
                pos += 1
            else:
                second = data[pos + 1]
                if second < 0x80:
                    raw = (raw & 0x7F) | (second << 7)
                    pos += 2
                else:
                    raw, pos = _raw_varint(data, pos, 5)
            body = pos
            end = pos + ((raw >> 1) ^ -(raw & 1))
            if end - pos < 6 or end > n:  # attributes and five varints at least
                raise InvalidBatch(f"record {index} has an invalid length {end - pos}")
            # attributes (unused in v2), then timestampDelta
            raw = data[pos + 1]
            if raw < 0x80:
                pos += 2
            else:
                raw, pos = _raw_varint(data, pos + 1, 10)
                if raw >> 64:
                    raise InvalidBatch(f"record {index} has a timestamp delta out of range")
            delta = (raw >> 1) ^ -(raw & 1)
            if delta > highest:  # noqa: PLR1730 (max() is a call: slower in this loop)
                highest = delta
            if delta < lowest:  # noqa: PLR1730
                lowest = delta
            # offsetDelta: must be `index`, whose zig-zag is 2 * index
            offset_at = pos
            raw = data[pos]
            if raw < 0x80:
                pos += 1
            else:
                second = data[pos + 1]
                if second < 0x80:
                    raw = (raw & 0x7F) | (second << 7)
                    pos += 2
                else:
                    raw, pos = _raw_varint(data, pos, 5)
            if raw != index << 1:
                raise InvalidBatch(
                    f"record {index} has offset delta {(raw >> 1) ^ -(raw & 1)}"
                )
            key_at = pos
            # key: -1 (null) or a length
            raw = data[pos]
            null_key = raw == 1
            if null_key:
                keyless += 1
                pos += 1
            else:
                if raw < 0x80:
                    pos += 1
                else:
                    second = data[pos + 1]
                    if second < 0x80:
                        raw = (raw & 0x7F) | (second << 7)
                        pos += 2
                    else:
                        raw, pos = _raw_varint(data, pos, 5)
                if raw & 1:
                    raise InvalidBatch(f"record {index} has an invalid key length")
            key_end = pos
            pos += raw >> 1
            value_at = pos
            # value: -1 (null) or a length
            raw = data[pos]
            if raw == 1:
                pos += 1
            else:
                if raw < 0x80:
                    pos += 1
                else:
                    second = data[pos + 1]
                    if second < 0x80:
                        raw = (raw & 0x7F) | (second << 7)
                        pos += 2
                    else:
                        raw, pos = _raw_varint(data, pos, 5)
                if raw & 1:
                    raise InvalidBatch(f"record {index} has an invalid value length")
            value_end = pos
            pos += raw >> 1
            # headers: mostly none
            if pos < end and data[pos] == 0:
                pos += 1
                # a timestampDelta of one or two bytes; an offsetDelta of at most 4
                plain = offset_at <= body + 3 and key_at - offset_at <= 4
            else:
                pos = _skip_headers(data, pos, end)
                plain = False
            if pos != end:
                raise InvalidBatch(f"record {index} does not fill its declared length exactly")
            index += 1
            if plain and index >= retry and index < count and data[pos] == data[first]:
                shape = _Shape(
                    end - first,
                    (*range(body - first), *range(key_at - first, key_end - first),
                     *range(value_at - first, value_end - first), end - first - 1),
                    body + 1 - first,
                    offset_at - body - 1,
                    offset_at - first,
                    key_at - offset_at,
                    null_key,
                )
                most = 16  # then more and more: a short run costs little to find
                while index < count:
                    m, low, high = _check_run(data, pos, n, index, count, shape, most)
                    index += m
                    pos += m * shape.size
                    keyless += m if null_key else 0
                    if m and high > highest:
                        highest = high
                    if m and low < lowest:
                        lowest = low
                    if m < most:  # a record of another shape: walk it
                        break
                    most *= 4
                if most == 16 and m < 8:  # runs this short do not pay: try less often
                    backoff = min(backoff * 2, 1024)
                    retry = index + backoff
                else:
                    backoff = 1
    except IndexError:
        raise InvalidBatch("a record runs past the end of its batch") from None
    if pos != n:
        raise InvalidBatch(f"{n - pos} bytes left over after {count} records")
    return RecordsScan(lowest, highest, keyless)


def scan_client_records(
    buf: bytes | bytearray | memoryview, header: BatchHeader, max_decompressed_bytes: int
) -> RecordsScan:
    """`scan_records` over the batch `header` describes (at `header.position` in `buf`),
    decompressing it first: records that will not decompress within
    `max_decompressed_bytes` are refused as InvalidBatch too (their CRC was right, so
    they are what the client sent: retrying would not help)."""
    start = header.position + HEADER_SIZE
    end = header.position + header.batch_length + LOG_OVERHEAD
    codec = header.attributes & 0x07
    if codec == COMPRESSION_NONE and isinstance(buf, bytes) and end <= len(buf):
        return scan_records(buf, header.records_count, start, end)  # in place: no copy
    with memoryview(buf) as view:
        if codec == COMPRESSION_NONE:
            data = bytes(view[start:end])
        else:
            try:
                data = decompress(codec, view[start:end], max_decompressed_bytes)
            except CorruptBatch as error:
                raise InvalidBatch(
                    f"{error} (records may decompress to at most {max_decompressed_bytes} bytes)"
                ) from None
    return scan_records(data, header.records_count)


def client_decompression_limit(max_message_bytes: int) -> int:
    """How large a client's batch of a topic with this max.message.bytes may decompress."""
    limit = max(max_message_bytes, 1 << 20) * DECOMPRESSION_FACTOR
    return min(DEFAULT_MAX_DECOMPRESSED_BYTES, limit)
