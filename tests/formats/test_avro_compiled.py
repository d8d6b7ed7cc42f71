"""Compiled Avro decoders: the same values as fastavro on any schema and datum, and a
clear exception (never a hang, never a wrong value) on bytes that do not fit."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from kcli.formats.avro_compiled import Unsupported, compile_reader

PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=12),
    "string": st.text(max_size=12),
}
NAME = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@st.composite
def typed(draw: st.DrawFn, names: list[str], depth: int = 0) -> tuple[Any, Any]:
    """An Avro schema and a strategy for its values; ``names`` collects named types."""
    kinds = ["primitive"] if depth >= 3 else [
        "primitive", "record", "enum", "fixed", "array", "map", "union"]
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        name = draw(st.sampled_from(sorted(PRIMITIVES)))
        return name, PRIMITIVES[name]
    if kind in ("record", "enum", "fixed"):
        names.append(f"T{len(names)}")
        name = names[-1]
        if kind == "enum":
            symbols = [f"S{i}" for i in range(draw(st.integers(1, 4)))]
            return {"type": "enum", "name": name, "symbols": symbols}, st.sampled_from(symbols)
        if kind == "fixed":
            size = draw(st.integers(0, 6))
            return ({"type": "fixed", "name": name, "size": size},
                    st.binary(min_size=size, max_size=size))
        fields = draw(st.lists(NAME, max_size=5, unique=True))
        parts = {field: draw(typed(names, depth + 1)) for field in fields}
        schema = {"type": "record", "name": name,
                  "fields": [{"name": f, "type": s} for f, (s, _) in parts.items()]}
        return schema, st.fixed_dictionaries({f: v for f, (_, v) in parts.items()})
    if kind == "union":
        branches = draw(st.lists(st.sampled_from(sorted(PRIMITIVES)), min_size=1, max_size=4,
                                 unique=True))
        return branches, st.one_of([PRIMITIVES[b] for b in branches])
    inner, values = draw(typed(names, depth + 1))
    if kind == "array":
        return {"type": "array", "items": inner}, st.lists(values, max_size=4)
    return ({"type": "map", "values": inner},
            st.dictionaries(st.text(max_size=6), values, max_size=4))


@st.composite
def bodies(draw: st.DrawFn) -> tuple[Any, bytes]:
    """A parsed schema and one body written with it."""
    schema, values = draw(typed([]))
    parsed = parse_schema(schema)
    out = io.BytesIO()
    schemaless_writer(out, parsed, draw(values))
    return parsed, out.getvalue()


def fastavro_read(parsed: Any, body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), parsed, None)


def exact(datum: Any) -> bytes:
    """JSON that tells True from 1, 1.0 from 1 and bytes from str (== does not)."""
    return orjson.dumps(datum, default=lambda v: {"bytes": v.hex()})


@settings(max_examples=300)
@given(bodies())
def test_same_values_as_fastavro(case: tuple[Any, bytes]) -> None:
    parsed, body = case
    read = compile_reader(parsed)
    expected = exact(fastavro_read(parsed, body))
    assert exact(read(body, 0)) == expected
    assert exact(read(b"\0\0\0\0\7" + body, 5)) == expected  # after the frame


@settings(max_examples=200)
@given(bodies(), st.data())
def test_cut_or_padded_bodies_raise(case: tuple[Any, bytes], data: st.DataObject) -> None:
    parsed, body = case
    read = compile_reader(parsed)
    if body:  # a body is self-delimiting: no strict prefix decodes
        cut = data.draw(st.integers(0, len(body) - 1))
        with pytest.raises(Exception):  # noqa: B017, PT011  # IndexError, struct.error, ...
            read(body[:cut], 0)
    with pytest.raises(ValueError, match="left over"):
        read(body + b"\0", 0)


@settings(max_examples=300)
@given(bodies(), st.binary(max_size=64))
def test_foreign_bytes_raise_or_decode(case: tuple[Any, bytes], noise: bytes) -> None:
    # any ordinary exception is the caller's "not Avro"; a hang fails the test's timeout
    parsed, _ = case
    with contextlib.suppress(Exception):
        compile_reader(parsed)(noise, 0)


RECURSIVE = {"type": "record", "name": "Node", "fields": [
    {"name": "value", "type": "long"},
    {"name": "next", "type": ["null", "Node"]}]}


def test_recursive_types() -> None:
    parsed = parse_schema(RECURSIVE)
    datum = {"value": 1, "next": {"value": 2, "next": {"value": -3, "next": None}}}
    out = io.BytesIO()
    schemaless_writer(out, parsed, datum)
    assert compile_reader(parsed)(out.getvalue(), 0) == datum


@pytest.mark.parametrize(("schema", "body", "message"), [
    ("string", b"\x01", "negative or overlong length"),  # length -1
    ("string", b"\x10ab", "negative or overlong length"),  # length 8, 2 bytes left
    ("long", b"\xff" * 11, "varint longer than 10 bytes"),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, b"\x01", "negative enum index"),
    (["null", "int"], b"\x04", "union index out of range"),
    # two billion nulls would loop for minutes; a count no body could carry is refused
    ({"type": "array", "items": "null"}, b"\xfe\xff\xff\xff\x0f\x00", "block count"),
    ({"type": "array", "items": "long"}, b"\x14\x02\x00", "block count"),
    ({"type": "fixed", "name": "F", "size": 4}, b"\x00\x01", "fixed runs past the end"),
])
def test_refuses_what_cannot_be_this_schema(schema: Any, body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_reader(parse_schema(schema))(body, 0)


def test_too_deep_for_python_is_declined() -> None:
    schema: Any = "long"
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    with pytest.raises(Unsupported):
        compile_reader(parse_schema(schema))
