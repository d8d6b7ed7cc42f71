"""Message format v0/v1: what old producers send becomes one v2 batch, and stored
batches go back out as v0/v1 messages, records unchanged."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log.batch import read_header
from kcli.broker.log.errors import CorruptBatch
from kcli.broker.log.message_set import (
    LOG_APPEND_TIME,
    Message,
    ZstdBatch,
    down_convert,
    encode_message,
    messages,
    up_convert,
)
from kcli.broker.log.records import Record, compress, decode_records, encode_batch

fields = st.none() | st.binary(max_size=40)
timestamps = st.integers(0, 2**41)


@st.composite
def message_sets(draw: st.DrawFn) -> tuple[int, list[tuple[int, bytes | None, bytes | None]],
                                              int]:
    magic = draw(st.sampled_from([0, 1]))
    items = draw(st.lists(st.tuples(timestamps, fields, fields), min_size=1, max_size=8))
    codec = draw(st.sampled_from([0, 1, 2, 3]))
    return magic, items, codec


def encode_set(magic: int, items: list[tuple[int, bytes | None, bytes | None]],
               codec: int) -> bytes:
    """What an old producer sends: plain messages, or one compressed wrapper."""
    inner = b"".join(encode_message(i, magic, ts if magic else -1, key, value)
                     for i, (ts, key, value) in enumerate(items))
    if not codec:
        return inner
    return encode_message(len(items) - 1, magic, items[-1][0] if magic else -1, None,
                          compress(codec, inner), attributes=codec)


@given(message_sets())
def test_up_conversion_keeps_every_record(case: tuple[int, list[tuple[int, bytes | None,
                                                                      bytes | None]], int],
                                          ) -> None:
    magic, items, codec = case
    batch = up_convert(encode_set(magic, items, codec))
    records = decode_records(batch, read_header(batch))
    assert [(r.offset, r.key, r.value) for r in records] == [
        (i, key, value) for i, (_ts, key, value) in enumerate(items)]
    assert [r.timestamp for r in records] == [ts if magic else -1 for ts, _k, _v in items]


@given(st.lists(st.tuples(timestamps, fields, fields), min_size=1, max_size=8),
       st.integers(0, 2**40), st.sampled_from([0, 1]), st.sampled_from([0, 1, 2, 3]),
       st.booleans())
def test_down_conversion_keeps_offsets_keys_values(
        items: list[tuple[int, bytes | None, bytes | None]], base: int, magic: int,
        codec: int, append_time: bool) -> None:
    records = [Record(base + i, ts, key, value, [("h", b"dropped")])
               for i, (ts, key, value) in enumerate(items)]
    stored = encode_batch(records, base_offset=base, compression=codec,
                          timestamp_type=1 if append_time else 0, max_timestamp=7)
    converted = list(messages(down_convert(stored + stored[:20], magic)))  # + a partial tail
    stamp = [7] * len(items) if append_time else [ts for ts, _k, _v in items]
    assert converted == [Message(base + i, magic, stamp[i] if magic else -1, key, value)
                         for i, (_ts, key, value) in enumerate(items)]


def test_zstd_batches_have_no_old_form() -> None:
    stored = encode_batch([Record(0, 1, b"k", b"v")], compression=4)
    with pytest.raises(ZstdBatch):
        down_convert(stored, 1)


def test_control_batches_have_no_old_form() -> None:
    marker = encode_batch([Record(5, 1, b"\0\0\0\0", b"\0" * 6)], base_offset=5,
                          is_control=True, is_transactional=True)
    data = encode_batch([Record(4, 1, b"k", b"v")], base_offset=4) + marker
    assert [m.offset for m in messages(down_convert(data, 1))] == [4]


def test_bad_message_sets_are_corrupt() -> None:
    good = encode_message(0, 1, 5, b"k", b"v")
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(CorruptBatch, match="CRC"):
        up_convert(flipped)
    with pytest.raises(CorruptBatch, match="magic 2"):
        up_convert(good[:16] + b"\x02" + good[17:])
    with pytest.raises(CorruptBatch, match="too small"):
        list(messages(struct.pack(">qi", 0, 3) + b"abc"))
    with pytest.raises(CorruptBatch, match="empty"):
        up_convert(good[:-1])  # a partial message only: nothing to append
    nested = encode_message(0, 1, 5, None, compress(1, encode_message(
        0, 1, 5, None, compress(1, good), attributes=1)), attributes=1)
    with pytest.raises(CorruptBatch, match="inside a compressed"):
        up_convert(nested)


def test_log_append_time_wrapper_stamps_its_messages() -> None:
    inner = encode_message(0, 1, 3, None, b"a") + encode_message(1, 1, 4, None, b"b")
    wrapper = encode_message(1, 1, 99, None, compress(1, inner),
                             attributes=1 | LOG_APPEND_TIME)
    assert [m.timestamp for m in messages(wrapper)] == [99, 99]


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_corrupt(data: bytes) -> None:
    with contextlib.suppress(CorruptBatch):
        up_convert(data)
