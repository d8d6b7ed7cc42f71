"""Renderers are pure: the same Result always gives the same text (golden files)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson
import pytest

from kcli.errors import BadInput
from kcli.output import FORMATS, Column, Result, Table, get_format
from kcli.output.model import fields_table
from kcli.output.table import TableFormat, human_bytes

GOLDEN = Path(__file__).parent / "golden"

ROWS = [
    {"name": "orders", "partitions": 12, "replication": 3, "records": 1234567,
     "size": 987654321, "tags": ["a", "b"], "internal": False},
    {"name": "a-much-longer-topic-name.with.dots", "partitions": 1, "replication": 1,
     "records": 0, "size": None, "tags": [], "internal": True},
]
RESULT = Result(
    data=ROWS,
    tables=(
        fields_table([("cluster", "local"), ("topics", 2)]),
        Table((Column("name", "NAME"), Column("partitions", "PARTITIONS", "int"),
               Column("replication", "RF", "int"), Column("records", "RECORDS", "int"),
               Column("size", "SIZE", "bytes"), Column("tags", "TAGS", "list"),
               Column("internal", "INTERNAL", "bool")), ROWS, title="Topics"),
        Table((Column("name", "NAME"),), [], title="Empty", empty="(nothing here)"),
    ),
)


def render(name: str) -> str:
    out = io.StringIO()
    fmt = TableFormat(width=100, color=False) if name == "table" else get_format(name)
    fmt.write(RESULT, out)
    return out.getvalue()


@pytest.mark.parametrize("name", FORMATS)
def test_golden(name: str) -> None:
    actual = render(name)
    path = GOLDEN / f"result.{name}.txt"
    if os.environ.get("KCLI_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def test_json_is_the_data() -> None:
    assert orjson.loads(render("json")) == ROWS
    assert [orjson.loads(line) for line in render("jsonl").splitlines()] == ROWS


def test_jsonl_of_an_object_is_one_line() -> None:
    out = io.StringIO()
    get_format("jsonl").write(Result({"a": 1}), out)
    assert out.getvalue() == '{"a":1}\n'


def test_unknown_format_lists_the_valid_names() -> None:
    with pytest.raises(BadInput, match=r"unknown output format 'xml' \(choose from table, "
                                        r"json, jsonl\)"):
        get_format("xml")


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"),
                                            (5 * 1024**3, "5.0 GiB")])
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text
