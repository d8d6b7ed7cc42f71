"""Batch header parsing, client batch validation and stamping."""

from __future__ import annotations

import contextlib
import struct

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import (
    BatchError,
    CorruptBatch,
    InvalidBatch,
    MessageTooLarge,
    Record,
    UnsupportedMagic,
    decode_records,
    encode_batch,
    iter_batches,
    read_header,
    stamp_batch,
    validate_client_batch,
)
from tests.broker.log.helpers import FUZZ, client_batch, patch

LIMIT = 1 << 20


def test_read_header_reads_every_field() -> None:
    records = [Record(100 + i, 5_000 + i, b"k", b"v", []) for i in range(3)]
    batch = encode_batch(
        records,
        base_offset=100,
        compression=3,
        producer_id=42,
        producer_epoch=7,
        base_sequence=11,
        partition_leader_epoch=9,
        is_transactional=True,
    )
    header = read_header(batch)
    assert header.base_offset == 100
    assert header.size == len(batch) == header.batch_length + 12
    assert header.partition_leader_epoch == 9
    assert header.magic == 2
    assert header.crc == crc32c.crc32c(batch[21:])
    assert header.last_offset_delta == 2
    assert header.last_offset == 102
    assert header.next_offset == 103
    assert (header.base_timestamp, header.max_timestamp) == (5_000, 5_002)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 7, 11)
    assert header.records_count == 3
    assert header.compression == 3
    assert header.is_transactional
    assert not header.is_control
    assert header.timestamp_type == 0
    assert header.position == 0


def test_read_header_at_a_position_and_truncated() -> None:
    batch = client_batch(2)
    buf = b"\0" * 7 + bytes(batch)
    assert read_header(buf, 7).position == 7
    with pytest.raises(CorruptBatch):
        read_header(batch[:60])
    with pytest.raises(CorruptBatch):
        read_header(buf, len(buf) - 10)


def test_iter_batches_yields_positions_and_stops_at_a_partial_tail() -> None:
    batches = [bytes(client_batch(n, value_size=n * 3)) for n in (1, 4, 2)]
    buf = b"".join(batches)
    positions = [0, len(batches[0]), len(batches[0]) + len(batches[1])]
    assert [h.position for h in iter_batches(buf)] == positions
    for cut in range(len(buf)):
        whole = [p for p, b in zip(positions, batches, strict=True) if p + len(b) <= cut]
        assert [h.position for h in iter_batches(buf[:cut])] == whole


def test_iter_batches_refuses_an_impossible_length() -> None:
    bad = patch(client_batch(), ">i", 8, 10, fix_crc=False)
    with pytest.raises(CorruptBatch):
        list(iter_batches(bad))


# ---------------------------------------------------------------- validate_client_batch


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_good_batch_passes_as_any_buffer(kind: type) -> None:
    batch = bytes(client_batch(5, compression=4))
    header = validate_client_batch(kind(batch), LIMIT)
    assert header.records_count == 5
    assert header.size == len(batch)


def _rebuilt(batch: bytes, fmt: str, pos: int, value: int) -> bytes:
    return patch(batch, fmt, pos, value, fix_crc=True)


GOOD = bytes(client_batch(3))


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        pytest.param(b"", CorruptBatch, 2, id="empty"),
        pytest.param(GOOD[:16], CorruptBatch, 2, id="shorter-than-magic"),
        pytest.param(GOOD[:40], CorruptBatch, 2, id="shorter-than-header"),
        pytest.param(GOOD[:-1], CorruptBatch, 2, id="truncated"),
        pytest.param(patch(GOOD, ">b", 16, 1, fix_crc=False), UnsupportedMagic, 43, id="magic-1"),
        pytest.param(patch(GOOD, ">b", 16, 0, fix_crc=False), UnsupportedMagic, 43, id="magic-0"),
        pytest.param(patch(GOOD, ">i", 8, 20, fix_crc=False), CorruptBatch, 2, id="length-tiny"),
        pytest.param(patch(GOOD, ">i", 8, -1, fix_crc=False), CorruptBatch, 2, id="length-neg"),
        pytest.param(
            patch(GOOD, ">i", 8, 2**31 - 1, fix_crc=False), CorruptBatch, 2, id="length-huge"
        ),
        pytest.param(patch(GOOD, ">I", 17, 12345, fix_crc=False), CorruptBatch, 2, id="crc"),
        pytest.param(
            GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF]), CorruptBatch, 2, id="flipped-record-byte"
        ),
        pytest.param(GOOD + GOOD, InvalidBatch, 87, id="two-batches"),
        pytest.param(GOOD + b"\0", InvalidBatch, 87, id="trailing-byte"),
        pytest.param(_rebuilt(GOOD, ">i", 57, 0), InvalidBatch, 87, id="zero-records"),
        pytest.param(_rebuilt(GOOD, ">i", 57, -4), InvalidBatch, 87, id="negative-records"),
        pytest.param(_rebuilt(GOOD, ">i", 23, 5), InvalidBatch, 87, id="last-delta-mismatch"),
        pytest.param(_rebuilt(GOOD, ">i", 23, -1), InvalidBatch, 87, id="last-delta-negative"),
        pytest.param(_rebuilt(GOOD, ">q", 0, 10), InvalidBatch, 87, id="base-offset-set"),
        pytest.param(_rebuilt(GOOD, ">h", 21, 0x20), InvalidBatch, 87, id="control"),
        pytest.param(_rebuilt(GOOD, ">h", 21, 5), InvalidBatch, 87, id="codec-5"),
        pytest.param(_rebuilt(GOOD, ">h", 21, 0x10), InvalidBatch, 87, id="txn-without-pid"),
    ],
)
def test_bad_batches_are_refused_with_the_right_code(
    data: bytes, error: type[BatchError], code: int
) -> None:
    with pytest.raises(error) as caught:
        validate_client_batch(data, LIMIT)
    assert type(caught.value) is error
    assert caught.value.error_code == code


def test_base_offset_is_checked_outside_the_crc() -> None:
    # bytes 0-7 are not covered by the CRC, so the batch stays "valid" but is refused
    bad = patch(GOOD, ">q", 0, 1, fix_crc=False)
    with pytest.raises(InvalidBatch):
        validate_client_batch(bad, LIMIT)


def test_too_large() -> None:
    with pytest.raises(MessageTooLarge) as caught:
        validate_client_batch(GOOD, len(GOOD) - 1)
    assert caught.value.error_code == 10
    assert validate_client_batch(GOOD, len(GOOD)).size == len(GOOD)


def test_a_transactional_batch_with_a_producer_id_passes() -> None:
    batch = encode_batch(
        [Record(0, 1, None, b"x")],
        producer_id=5,
        producer_epoch=0,
        base_sequence=0,
        is_transactional=True,
    )
    assert validate_client_batch(batch, LIMIT).is_transactional


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_batch_errors(data: bytes) -> None:
    with contextlib.suppress(BatchError):
        validate_client_batch(data, LIMIT)


@FUZZ
@given(
    st.sampled_from([bytes(client_batch(3, compression=c)) for c in range(5)]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 400),
)
def test_mutated_batches_raise_only_batch_errors(
    batch: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(batch)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(len(data) - cut, 0)] if cut % 3 == 0 else data
    try:
        header = validate_client_batch(data, LIMIT)
    except BatchError:
        return
    assert header.size == len(data)


@FUZZ
@given(st.binary(min_size=61, max_size=200))
def test_random_bytes_with_a_v2_magic_raise_only_batch_errors(data: bytes) -> None:
    buf = bytearray(data)
    buf[16] = 2
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    with contextlib.suppress(BatchError):
        validate_client_batch(buf, LIMIT)


# ---------------------------------------------------------------- stamp_batch


def test_stamp_patches_offset_and_epoch_outside_the_crc() -> None:
    batch = client_batch(4)
    crc_before = read_header(batch).crc
    stamp_batch(batch, 1_000, 7, None)
    header = read_header(batch)
    assert (header.base_offset, header.partition_leader_epoch) == (1_000, 7)
    assert header.crc == crc_before == crc32c.crc32c(bytes(batch[21:]))
    assert header.timestamp_type == 0


def test_stamp_with_log_append_time() -> None:
    batch = client_batch(4, timestamp=500, compression=1)
    before = read_header(batch)
    stamp_batch(batch, 20, 3, 99_999)
    header = read_header(batch)
    assert header.timestamp_type == 1
    assert header.max_timestamp == 99_999
    assert header.base_timestamp == before.base_timestamp
    assert header.compression == 1
    assert header.crc == crc32c.crc32c(bytes(batch[21:]))
    validate_client_batch(patch(batch, ">q", 0, 0, fix_crc=False), LIMIT)
    records = decode_records(batch, header)
    assert [r.offset for r in records] == [20, 21, 22, 23]
    assert {r.timestamp for r in records} == {99_999}
