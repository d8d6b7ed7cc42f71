"""kcat-style -F format strings: parser round trip and rendering."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.errors import BadInput
from kcli.formats.format_string import FIELDS, compile_format, parse, unparse


@dataclass
class FakeMessage:
    """The part of confluent_kafka.Message the formatter reads."""

    k: bytes | None = b"key"
    v: bytes | None = b"value"
    hdrs: list[tuple[str, bytes | None]] | None = field(default_factory=lambda: [("a", b"1")])
    ts: tuple[int, int] = (1, 1700000000000)

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 42

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.v

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.hdrs

    def timestamp(self) -> tuple[int, int]:
        return self.ts


def _merge(tokens: list[bytes | str]) -> list[bytes | str]:
    merged: list[bytes | str] = []
    for token in tokens:
        if isinstance(token, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += token
        elif token != b"":
            merged.append(token)
    return merged


tokens = st.lists(st.sampled_from(list(FIELDS))
                 | st.text(st.characters(blacklist_categories=("Cs",)), max_size=6).map(str.encode),
                  max_size=8).map(_merge)


@given(tokens)
def test_parse_inverts_unparse(parsed: list[bytes | str]) -> None:
    assert parse(unparse(parsed)) == parsed


@given(st.text(alphabet=st.characters(blacklist_characters="%\\", blacklist_categories=("Cs",)),
               max_size=20))
def test_text_without_specials_is_literal(text: str) -> None:
    render = compile_format(text)
    assert render(FakeMessage()) == text.encode()


def test_every_token() -> None:
    render = compile_format(r"%t|%p|%o|%k|%s|%h|%T|%K|%S|%%\n\t\\")
    assert render(FakeMessage()) == b"t|2|42|key|value|a=1|1700000000000|3|5|%\n\t\\"


def test_nulls_print_nothing_and_lengths_are_minus_one() -> None:
    message = FakeMessage(k=None, v=None, hdrs=None, ts=(0, 0))
    assert compile_format("[%k][%s][%h][%T][%K][%S]")(message) == b"[][][][-1][-1][-1]"


def test_multiple_headers() -> None:
    message = FakeMessage(hdrs=[("a", b"1"), ("a", None), ("b", b"")])
    assert compile_format("%h")(message) == b"a=1,a=NULL,b="  # as kcat prints them


@pytest.mark.parametrize(("fmt", "message"), [("%x", r"unknown format token %x"),
                                               ("abc%", r"lone '%'")])
def test_bad_formats(fmt: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse(fmt)
