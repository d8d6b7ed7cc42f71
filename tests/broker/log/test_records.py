"""Record encoding and decoding, for every codec."""

from __future__ import annotations

import contextlib
import struct

import cramjam
import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import (
    BatchError,
    CorruptBatch,
    Record,
    decode_records,
    encode_batch,
    read_header,
    validate_client_batch,
)
from kcli.broker.log.records import XERIAL_MAGIC, compress, decompress
from tests.broker.log.helpers import FUZZ, PROPERTY, record_lists

CODECS = [0, 1, 2, 3, 4]


def _with_body(template: bytes, body: bytes, codec: int, count: int) -> bytes:
    """`template`'s header around another records section."""
    out = bytearray(template[:61]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">h", out, 21, codec)
    struct.pack_into(">i", out, 57, count)
    struct.pack_into(">i", out, 23, count - 1)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


@PROPERTY
@given(
    record_lists(),
    st.sampled_from(CODECS),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=1),
)
def test_round_trip(records: list[Record], codec: int, base_offset: int, ts_type: int) -> None:
    shifted = [
        Record(r.offset + base_offset, r.timestamp, r.key, r.value, r.headers) for r in records
    ]
    batch = encode_batch(
        shifted, base_offset=base_offset, compression=codec, timestamp_type=ts_type
    )
    header = read_header(batch)
    assert header.compression == codec
    assert header.records_count == len(records)
    assert header.last_offset == shifted[-1].offset
    assert header.base_timestamp == shifted[0].timestamp
    assert header.max_timestamp == max(r.timestamp for r in shifted)
    assert header.crc == crc32c.crc32c(batch[21:])
    decoded = decode_records(batch, header)
    if ts_type:  # LogAppendTime: every record carries the batch's maxTimestamp
        shifted = [
            Record(r.offset, header.max_timestamp, r.key, r.value, r.headers) for r in shifted
        ]
    assert decoded == shifted


@pytest.mark.parametrize("codec", CODECS)
def test_null_and_empty_stay_apart(codec: int) -> None:
    records = [
        Record(0, 1, None, None, []),
        Record(1, 2, b"", b"", [("h", None), ("h", b""), ("h", b"x")]),
    ]
    batch = encode_batch(records, compression=codec)
    decoded = decode_records(batch, validate_client_batch(batch, 1 << 20))
    assert decoded == records
    assert decoded[0].key is None
    assert decoded[1].key == b""
    assert decoded[1].headers == [("h", None), ("h", b""), ("h", b"x")]


@pytest.mark.parametrize("codec", CODECS)
def test_large_values_cross_compression_blocks(codec: int) -> None:
    records = [Record(i, i, None, bytes(range(256)) * 400, []) for i in range(5)]
    batch = encode_batch(records, compression=codec)
    assert decode_records(batch, read_header(batch)) == records


def test_decode_at_a_position_inside_a_larger_buffer() -> None:
    first = encode_batch([Record(0, 1, b"a", b"b")])
    second = encode_batch([Record(1, 2, b"c", b"d")], base_offset=1, compression=4)
    buf = first + second
    header = read_header(buf, len(first))
    assert decode_records(buf, header) == [Record(1, 2, b"c", b"d", [])]


def test_snappy_is_xerial_framed_on_encode_and_raw_snappy_decodes_too() -> None:
    records = [Record(i, 100 + i, None, b"value %d" % i, []) for i in range(20)]
    framed = encode_batch(records, compression=2)
    assert framed[61 : 61 + 8] == XERIAL_MAGIC
    plain = encode_batch(records)
    raw_body = bytes(cramjam.snappy.compress_raw(plain[61:]))
    raw = _with_body(plain, raw_body, 2, len(records))
    assert decode_records(raw, validate_client_batch(raw, 1 << 20)) == records


def test_xerial_with_a_repeated_stream_header() -> None:
    records = [Record(i, i, None, b"v" * 50, []) for i in range(10)]
    body = encode_batch(records)[61:]
    half = len(body) // 2
    framed = compress(2, body[:half]) + compress(2, body[half:])
    batch = _with_body(encode_batch(records), framed, 2, len(records))
    assert decode_records(batch, read_header(batch)) == records


def test_lz4_frames_have_independent_blocks_as_kafka_requires() -> None:
    data = compress(3, bytes(range(256)) * 2000)
    assert data[:4] == b"\x04\x22\x4d\x18"
    flags = data[4]
    assert flags & 0x20, "block independence flag must be set"
    assert (flags >> 6) == 1


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_decompression_is_bounded(codec: int) -> None:
    records = [Record(0, 0, None, bytes(4_000_000), [])]
    batch = encode_batch(records, compression=codec)
    header = read_header(batch)
    with pytest.raises(CorruptBatch):
        decode_records(batch, header, max_decompressed_bytes=1_000_000)
    assert decode_records(batch, header, max_decompressed_bytes=5_000_000) == records


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_garbage_compressed_sections_are_corrupt(codec: int) -> None:
    with pytest.raises(CorruptBatch):
        decompress(codec, b"definitely not compressed data", 1 << 20)


def test_encode_checks_its_input() -> None:
    with pytest.raises(ValueError, match="rise"):
        encode_batch([Record(1, 0, None, None), Record(1, 0, None, None)])
    with pytest.raises(ValueError, match="rise"):
        encode_batch([Record(0, 0, None, None)], base_offset=5)
    with pytest.raises(ValueError, match="empty"):
        encode_batch([])


def test_an_empty_batch_as_compaction_leaves_it() -> None:
    batch = encode_batch([], base_offset=10, last_offset_delta=4, producer_id=3)
    header = read_header(batch)
    assert (header.records_count, header.last_offset) == (0, 14)
    assert decode_records(batch, header) == []


def test_control_and_transactional_flags() -> None:
    batch = encode_batch(
        [Record(0, 0, b"\0\0\0\1", b"")], is_control=True, is_transactional=True, producer_id=1
    )
    header = read_header(batch)
    assert header.is_control
    assert header.is_transactional


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 40), st.sampled_from(CODECS))
def test_malformed_records_raise_only_batch_errors(body: bytes, count: int, codec: int) -> None:
    template = encode_batch([Record(0, 0, None, None)])
    batch = _with_body(template, body, codec, max(count, 1))
    with contextlib.suppress(BatchError):
        decode_records(batch, read_header(batch), max_decompressed_bytes=1 << 16)


@FUZZ
@given(
    st.sampled_from(
        [
            encode_batch(
                [Record(i, i, b"key", b"value" * i, [("h", b"v"), ("n", None)]) for i in range(4)],
                compression=c,
            )
            for c in CODECS
        ]
    ),
    st.lists(st.tuples(st.integers(61, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_mutated_records_raise_only_batch_errors(
    batch: bytes, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(batch)
    for pos, value in edits:
        data[61 + (pos - 61) % (len(data) - 61)] = value
    with contextlib.suppress(BatchError):
        decode_records(data, read_header(data), max_decompressed_bytes=1 << 16)


def test_decode_refuses_a_header_that_overruns_the_buffer() -> None:
    batch = encode_batch([Record(0, 0, None, b"x")])
    header = read_header(batch)
    with pytest.raises(CorruptBatch):
        decode_records(batch[:-1], header)
