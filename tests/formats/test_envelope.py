"""The record envelope: lossless round trips and one-line errors with line numbers."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.errors import BadInput
from kcli.formats import envelope
from kcli.formats.envelope import Record

maybe_bytes = st.none() | st.binary(max_size=64) | st.text(max_size=32).map(str.encode)
headers = st.lists(st.tuples(st.text(max_size=8), maybe_bytes), max_size=5)
records = st.builds(
    Record, key=maybe_bytes, value=maybe_bytes, headers=headers,
    partition=st.none() | st.integers(0, 1000),
    timestamp=st.none() | st.integers(0, 2**53),
    topic=st.text(min_size=1, max_size=10), offset=st.integers(0, 2**40),
    timestamp_type=st.sampled_from([None, "CreateTime", "LogAppendTime"]),
)


@given(records)
def test_round_trip_keeps_every_byte(record: Record) -> None:
    line = envelope.dumps(record)
    assert b"\n" not in line
    back = envelope.loads(line, 1)
    assert back.key == record.key
    assert back.value == record.value
    assert back.headers == record.headers
    assert back.partition == record.partition
    assert back.timestamp == record.timestamp


def test_null_and_empty_stay_apart() -> None:
    obj = envelope.to_dict(Record(key=None, value=b"", headers=[("a", None), ("a", b"")]))
    assert obj["key"] is None
    assert obj["value"] == ""
    assert obj["headers"] == [["a", None], ["a", ""]]
    assert "key_encoding" not in obj
    assert "value_encoding" not in obj


def test_binary_is_base64_with_an_encoding_field() -> None:
    raw = b"\xff\x00\xfe"
    obj = envelope.to_dict(Record(key=raw, value=b"ok", headers=[("h", raw)]))
    assert obj["key"] == base64.b64encode(raw).decode()
    assert obj["key_encoding"] == "base64"
    assert obj["value"] == "ok"
    assert obj["headers"] == [["h", base64.b64encode(raw).decode(), "base64"]]


def test_field_order_is_documented_order() -> None:
    obj = envelope.to_dict(Record(key=b"k", value=b"v", partition=1, offset=2, timestamp=3,
                                  timestamp_type="CreateTime", topic="t"))
    assert list(obj) == ["topic", "partition", "offset", "timestamp", "timestamp_type",
                         "key", "value", "headers"]


def test_reader_ignores_topic_offset_and_accepts_conveniences() -> None:
    record = envelope.loads(orjson.dumps({
        "topic": "elsewhere", "offset": 9, "timestamp_type": "CreateTime",
        "key": 42, "value": {"a": [1, 2]}, "headers": {"x": "1", "y": None},
        "timestamp": "2024-01-02T03:04:05Z",
    }))
    assert record.key == b"42"
    assert record.value == b'{"a":[1,2]}'
    assert record.headers == [("x", b"1"), ("y", None)]
    assert record.timestamp == 1704164645000
    assert record.partition is None


@pytest.mark.parametrize(("line", "message"), [
    (b"{not json", r"^line 7: not valid JSON"),
    (b"[1, 2]", r"^line 7: expected a JSON object"),
    (b'{"value": "x", "val": 1}', r"^line 7: unknown field 'val'"),
    (b'{"value": "!!", "value_encoding": "base64"}', r"^line 7: value is not valid base64"),
    (b'{"value": "x", "value_encoding": "rot13"}', r"^line 7: value_encoding must be one of"),
    (b'{"value": "x", "partition": -1}', r"^line 7: partition must be a non-negative"),
    (b'{"value": "x", "partition": true}', r"^line 7: partition must be a non-negative"),
    (b'{"value": "x", "timestamp": "yesterday"}', r"^line 7: timestamp must be"),
    (b'{"value": "x", "headers": [["k"]]}', r"^line 7: each header must be"),
    (b'{"value": "x", "headers": "k=v"}', r"^line 7: headers must be a list"),
])
def test_bad_lines_name_the_line(line: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        envelope.loads(line, 7)
