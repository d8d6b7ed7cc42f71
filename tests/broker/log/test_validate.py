"""A client's records checked past the batch header (scan_client_records), as Kafka's
LogValidator reads every record: framing, counts, offset deltas, codecs, and the largest
timestamp recomputed from the records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.errors import ErrorCode
from kcli.broker.log import (
    BatchError,
    InvalidBatch,
    Record,
    client_decompression_limit,
    decode_records,
    encode_batch,
    read_header,
    scan_client_records,
    set_max_timestamp,
    validate_client_batch,
)
from kcli.broker.log.records import record_spans, records_section, write_varint
from kcli.broker.log.validation import scan_records
from tests.broker.log.helpers import FUZZ, PROPERTY, rebuilt, record_lists

CODECS = [0, 1, 2, 3, 4]
LIMIT = 1 << 20


@st.composite
def client_records(draw: st.DrawFn) -> list[Record]:
    """Records as a producer sends them: offsets 0..n-1; sometimes many alike (the runs
    the scan checks a slice at a time), sometimes few and varied."""
    if draw(st.booleans()):
        return [Record(i, r.timestamp, r.key, r.value, r.headers)
                for i, r in enumerate(draw(record_lists()))]
    count = draw(st.integers(min_value=1, max_value=300))
    base = draw(st.integers(min_value=0, max_value=2**41))
    value = draw(st.binary(max_size=150))
    key = draw(st.one_of(st.none(), st.binary(max_size=5)))
    jitter = draw(st.lists(st.integers(min_value=-100, max_value=100), min_size=count,
                           max_size=count))
    odd = draw(st.sets(st.integers(min_value=0, max_value=count - 1), max_size=3))
    return [
        Record(i, base + jitter[i] * (i in odd or i % 7 == 0), key,
               value + b"!" if i in odd else value, [("h", b"v")] if i in odd else [])
        for i in range(count)
    ]


def _batch(records: list[Record], codec: int = 0) -> bytes:
    return encode_batch(records, compression=codec)


def _scan(batch: bytes, limit: int = LIMIT) -> tuple[int, int, int]:
    """(max timestamp, min timestamp, keyless) as the broker computes them on append."""
    header = validate_client_batch(batch, limit)
    scan = scan_client_records(batch, header, client_decompression_limit(limit))
    return (header.base_timestamp + scan.max_timestamp_delta,
            header.base_timestamp + scan.min_timestamp_delta, scan.keyless)


def _refused(batch: bytes, code: int = ErrorCode.invalid_record) -> str:
    with pytest.raises(BatchError) as caught:
        _scan(batch)
    assert caught.value.error_code == code, caught.value
    return str(caught.value)


# --------------------------------------------------------------------------- accepted


@PROPERTY
@given(client_records(), st.sampled_from(CODECS))
def test_any_client_batch_is_accepted_and_its_timestamps_found(
    records: list[Record], codec: int
) -> None:
    assert _scan(_batch(records, codec)) == (
        max(r.timestamp for r in records),
        min(r.timestamp for r in records),
        sum(r.key is None for r in records),
    )


@pytest.mark.parametrize("count", [1, 63, 64, 65, 8191, 8192, 8193, 9000])
def test_long_runs_across_offset_varint_widths(count: int) -> None:
    records = [Record(i, 5_000 + i % 50, None, b"x" * 100, []) for i in range(count)]
    assert _scan(_batch(records), 1 << 22) == (5_049 if count > 49 else 5_000 + count - 1,
                                               5_000, count)


@pytest.mark.parametrize("spread", [0, 1, 60, 200, 5000, 9000])
def test_long_runs_with_deltas_either_side_of_the_first(spread: int) -> None:
    stamps = [5_000 + (i * 7 + spread) % (2 * spread + 1) - spread for i in range(3_000)]
    records = [Record(i, stamps[i], b"key", b"x" * 30, []) for i in range(3_000)]
    assert stamps[0] == 5_000
    assert _scan(_batch(records)) == (max(stamps), min(stamps), 0)


@pytest.mark.parametrize("step", [1, 3, 100, 1000])
def test_long_runs_of_rising_timestamps(step: int) -> None:
    """Deltas past 63 ms take two bytes, past 8191 ms three."""
    stamps = [1_700_000_000_000 + i * step // 10 for i in range(5_000)]
    records = [Record(i, stamps[i], None, b"x" * 100, []) for i in range(5_000)]
    assert _scan(_batch(records)) == (stamps[-1], stamps[0], 5_000)


@pytest.mark.parametrize("run", [1, 2, 3, 17, 70])
def test_runs_of_every_length_between_other_records(run: int) -> None:
    records = [Record(i, 9_000 - (i % 5), None if i % 3 else b"k",
                      b"x" * (100 + 64 * ((i // run) % 2)), []) for i in range(2_000)]
    assert _scan(_batch(records)) == (9_000, 8_996, sum(r.key is None for r in records))


def test_wrong_max_timestamp_is_recomputed_from_the_records() -> None:
    records = [Record(i, 1_700_000_000_000 + i, b"k", b"v", []) for i in range(3)]
    batch = bytearray(encode_batch(records, max_timestamp=-1))  # as Sarama < 1.45 writes
    assert read_header(batch).max_timestamp == -1
    top, _, _ = _scan(bytes(batch))
    assert top == 1_700_000_000_002
    set_max_timestamp(batch, top)
    header = validate_client_batch(batch, LIMIT)  # the CRC is right again
    assert header.max_timestamp == top
    assert decode_records(batch, header) == records


# --------------------------------------------------------------------------- refused


@PROPERTY
@given(client_records(), st.integers(min_value=1, max_value=2**31 - 1 - 300))
def test_a_count_above_the_records_is_refused(records: list[Record], extra: int) -> None:
    batch = _batch(records)
    _refused(rebuilt(batch, batch[61:], count=len(records) + extra))


@PROPERTY
@given(client_records().filter(lambda rs: len(rs) > 1), st.data())
def test_a_count_below_the_records_is_refused(records: list[Record], data: st.DataObject) -> None:
    batch = _batch(records)
    count = data.draw(st.integers(min_value=1, max_value=len(records) - 1))
    assert "left over" in _refused(rebuilt(batch, batch[61:], count=count))


def test_the_count_of_the_issue_moves_nothing() -> None:
    """2^31 - 1 records claimed by a one-record batch: the high watermark would have
    jumped to 2,147,483,649."""
    batch = _batch([Record(0, 1, None, b"x", [])])
    _refused(rebuilt(batch, batch[61:], count=2**31 - 1))


@PROPERTY
@given(client_records(), st.data())
def test_cut_or_padded_records_are_refused(records: list[Record], data: st.DataObject) -> None:
    batch = _batch(records)
    body = batch[61:]
    cut = data.draw(st.integers(min_value=1, max_value=len(body)))
    _refused(rebuilt(batch, body[:-cut]))
    _refused(rebuilt(batch, body + data.draw(st.binary(min_size=1, max_size=20))))


@PROPERTY
@given(client_records(), st.data())
def test_a_wrong_record_length_is_refused(records: list[Record], data: st.DataObject) -> None:
    batch = _batch(records)
    body = records_section(batch, read_header(batch))
    index = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    span = record_spans(body, len(records))[index]
    pos, after, length = span.start, span.body, span.end - span.body
    wrong = length + data.draw(st.integers(min_value=-length - 3, max_value=300).filter(bool))
    varint = bytearray()
    write_varint(varint, wrong)
    _refused(rebuilt(batch, body[:pos] + bytes(varint) + body[after:]))


@PROPERTY
@given(client_records().filter(lambda rs: len(rs) > 1), st.data())
def test_offset_deltas_must_be_0_to_n_minus_1(records: list[Record], data: st.DataObject) -> None:
    i, j = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(records) - 1),
                                     min_size=2, max_size=2, unique=True)))
    swapped = list(records)
    swapped[i], swapped[j] = records[j], records[i]
    body = bytearray()
    for record in swapped:  # encode_batch wants rising offsets: frame the records by hand
        one = bytearray([0])
        write_varint(one, record.timestamp - swapped[0].timestamp)
        write_varint(one, record.offset)
        for field in (record.key, record.value):
            write_varint(one, -1 if field is None else len(field))
            one += field or b""
        write_varint(one, 0)
        write_varint(body, len(one))
        body += one
    header_source = _batch([Record(0, swapped[0].timestamp, None, None, [])])
    assert "offset delta" in _refused(rebuilt(header_source, bytes(body), count=len(records)))


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_codec_flag_over_other_bytes_is_refused(codec: int) -> None:
    batch = _batch([Record(i, 1, None, b"v" * 50, []) for i in range(10)])
    _refused(rebuilt(batch, batch[61:], codec=codec))


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_decompression_bomb_is_refused(codec: int) -> None:
    records = [Record(i, 1, None, bytes(100_000), []) for i in range(40)]  # 4 MB of zeros
    batch = _batch(records, codec)
    header = validate_client_batch(batch, LIMIT)
    assert len(batch) < 1 << 20
    scan_client_records(batch, header, 8 << 20)
    with pytest.raises(InvalidBatch, match="decompress"):
        scan_client_records(batch, header, 1 << 20)


def test_the_decompression_limit_follows_max_message_bytes() -> None:
    assert client_decompression_limit(1_048_588) == 64 * 1_048_588
    assert client_decompression_limit(1000) == 64 << 20
    assert client_decompression_limit(1 << 30) == 256 << 20


# --------------------------------------------------------------------------- fuzzing


@FUZZ
@given(client_records(), st.data())
def test_mutated_records_never_crash_nor_pass_unparsed(
    records: list[Record], data: st.DataObject
) -> None:
    batch = _batch(records)
    body = bytearray(batch[61:])
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        body[data.draw(st.integers(min_value=0, max_value=len(body) - 1))] = data.draw(
            st.integers(min_value=0, max_value=255))
    _accepted_only_if_parsed(rebuilt(batch, bytes(body)))


@FUZZ
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=60),
       st.sampled_from(CODECS))
def test_random_records_never_crash_nor_pass_unparsed(body: bytes, count: int, codec: int) -> None:
    template = _batch([Record(0, 1_000, None, None, [])])
    _accepted_only_if_parsed(rebuilt(template, body, count=count, codec=codec))


def _accepted_only_if_parsed(batch: bytes) -> None:
    """Refused with a BatchError, or every record parses as the header says."""
    try:
        top, _, _ = _scan(batch)
    except BatchError:
        return
    header = read_header(batch)
    try:
        records = decode_records(batch, header)
    except BatchError as error:  # Kafka reads header keys as bytes at produce time
        problem = str(error)
        records = []
    else:
        problem = "UTF-8"
    assert "UTF-8" in problem
    if not records:
        return
    assert [r.offset for r in records] == list(range(header.records_count))
    assert top == max(r.timestamp for r in records)


def test_scan_refuses_an_empty_or_short_section() -> None:
    for data, count in ((b"", 1), (b"\x00" * 6, 1), (b"\x0c" + b"\x00" * 6, 0)):
        with pytest.raises(InvalidBatch):
            scan_records(data, count)

