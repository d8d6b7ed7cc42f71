"""Reading produce input: lines survive any chunking; each format builds the right record."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.errors import BadInput
from kcli.formats.avro import AvroCodec
from kcli.formats.lines import LineFormat, read_lines


class Trickle(io.RawIOBase):
    """A stream handing out its data in the given piece sizes."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.sizes = sizes or [len(data) or 1]
        self.pos = 0
        self.turn = 0

    def read1(self, n: int = -1) -> bytes:
        size = max(1, self.sizes[self.turn % len(self.sizes)])
        self.turn += 1
        piece = self.data[self.pos:self.pos + min(size, n)]
        self.pos += len(piece)
        return piece


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=10))
def test_lines_survive_any_chunking(data: bytes, sizes: list[int]) -> None:
    lines = [line for chunk in read_lines(Trickle(data, sizes)) for line in chunk]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert lines == expected


def test_progress_counts_bytes() -> None:
    seen: list[int] = []
    list(read_lines(io.BytesIO(b"a\nb\nc"), seen.append))
    assert sum(seen) == 5


def test_raw_with_key_separator_and_headers() -> None:
    fmt = LineFormat("raw", b"::", (("h", b"1"), ("h", None)))
    record = fmt.record(b"k::v::w", 1)
    assert record is not None
    assert (record.key, record.value, record.headers) == (b"k", b"v::w", [("h", b"1"),
                                                                          ("h", None)])
    bare = fmt.record(b"no separator", 2)
    assert bare is not None
    assert (bare.key, bare.value) == (None, b"no separator")
    assert not fmt.plain_values
    assert LineFormat().plain_values


def test_json_and_avro_skip_blank_lines_and_name_bad_ones() -> None:
    assert LineFormat("json").record(b"   ", 4) is None
    with pytest.raises(BadInput, match=r"^line 4: not valid JSON"):
        LineFormat("json").record(b"{", 4)
    codec = AvroCodec({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    avro = LineFormat("avro", b"|", (), codec)
    assert avro.record(b"", 1) is None
    record = avro.record(b'key|{"a": 1}', 1)
    assert record is not None
    assert (record.key, record.value) == (b"key", b"\x02")
    with pytest.raises(BadInput, match=r"^line 9: record does not match"):
        avro.record(b'{"a": "x"}', 9)
