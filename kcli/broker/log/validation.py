"""Checking a client's records: Kafka's LogValidator, without an object per record.

Produce reads the framing of every record of a client's batch (`scan_client_records`),
decompressing when needed (up to `client_decompression_limit`), and learns the batch's
real largest timestamp from it. Runs of records of one shape are checked a run at a time
with byte slices, which run in C; anything else is walked one record at a time. A topic
whose compression.type is not the producer's gets its batches re-encoded (`recompress`).
"""

from __future__ import annotations

import array
import sys
from typing import NamedTuple

from kcli.broker.log.batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, read_header
from kcli.broker.log.errors import CorruptBatch, InvalidBatch
from kcli.broker.log.records import (
    COMPRESSION_NONE,
    DECOMPRESSION_FACTOR,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    decode_records,
    decompress,
    encode_batch,
)

__all__ = [
    "CODEC_IDS",
    "CODEC_NAMES",
    "RecordsScan",
    "client_decompression_limit",
    "recompress",
    "scan_client_records",
    "scan_records",
]

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


CODEC_NAMES = {0: "uncompressed", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
"""compression.type's name of each batch codec id."""
CODEC_IDS = {name: code for code, name in CODEC_NAMES.items()}


def recompress(batch: bytearray, codec: str) -> bytearray:
    """Re-encode a batch with the topic's ``compression.type`` (a slow path, as in Kafka)."""
    header = read_header(batch, 0)
    records = decode_records(batch, header)
    return bytearray(
        encode_batch(
            records,
            base_offset=0,
            compression=CODEC_IDS[codec],
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            timestamp_type=header.timestamp_type,
        )
    )
