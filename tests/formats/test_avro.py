"""Avro values: JSON text in, Avro binary out, and back."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kcli.errors import BadInput
from kcli.formats.avro import AvroCodec

SCHEMA = {"type": "record", "name": "User", "fields": [
    {"name": "name", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "email", "type": ["null", "string"], "default": None},
]}


@pytest.fixture
def codec(tmp_path: Path) -> AvroCodec:
    path = tmp_path / "user.avsc"
    path.write_bytes(orjson.dumps(SCHEMA))
    return AvroCodec.from_file(path)


def test_round_trip(codec: AvroCodec) -> None:
    data = codec.encode(b'{"name": "ada", "age": 36, "email": "a@b"}')
    assert data == b"\x06ada\x48\x02\x06a@b"
    assert orjson.loads(codec.decode(data) or b"") == {"name": "ada", "age": 36, "email": "a@b"}


@pytest.mark.parametrize(("line", "message"), [
    (b'{"name": "ada", "age": "old"}', r"line 3: record does not match the Avro schema: "
                                        r"User.age is 'old', expected int"),
    (b'{"name": "ada"}', r"line 3: record does not match the Avro schema: User.age"),
    (b"not json", r"line 3: not valid JSON"),
])
def test_bad_records(codec: AvroCodec, line: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        codec.encode(line, "line 3")


def test_foreign_bytes_do_not_decode(codec: AvroCodec) -> None:
    with pytest.raises(BadInput, match=r"value is not Avro"):
        codec.decode(b"\x06ad", "t[0]@5")
    with pytest.raises(BadInput, match=r"bytes left over"):
        codec.decode(b"\x06ada\x48\x00extra", "t[0]@5")


def test_bad_schema_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read schema"):
        AvroCodec.from_file(tmp_path / "missing.avsc")
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record"}')
    with pytest.raises(BadInput, match=r"not a valid Avro schema"):
        AvroCodec.from_file(bad)
