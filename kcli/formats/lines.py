"""Input lines for `produce`: read in large binary chunks, turned into records.

Three line formats: ``raw`` (the line is the value; with a key separator, the part
before the first separator is the key), ``json`` (the record envelope, see
:mod:`kcli.formats.envelope`) and ``avro`` (a JSON value per line, encoded with a
schema; a key separator works as for raw). Blank lines are skipped in json and avro.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from kcli.formats.envelope import Header, Record, loads

CHUNK = 1 << 20
LINE_FORMATS = ("raw", "json", "avro")


def read_lines(stream: IO[bytes], advance: Callable[[int], None] | None = None,
               ) -> Iterator[list[bytes]]:
    """Complete lines (without the newline) in lists, one list per chunk read. A final
    line without a newline counts; a trailing newline adds no empty line."""
    read = getattr(stream, "read1", stream.read)
    # The pieces of a line begun in earlier chunks, joined once its end arrives:
    # prefixing each chunk with the line so far copied every chunk once more, and a
    # line spanning many chunks once per chunk (a 256 MB line took 28 s).
    begun: list[bytes] = []
    while data := read(CHUNK):
        if advance is not None:
            advance(len(data))
        lines = data.split(b"\n")
        if len(lines) == 1:
            begun.append(data)
            continue
        if begun:
            begun.append(lines[0])
            lines[0] = b"".join(begun)
        last = lines.pop()
        begun = [last] if last else []
        yield lines
    if begun:
        yield [b"".join(begun)]


class ValueEncoder(Protocol):
    """Turns the JSON text of a value into its bytes: bare Avro
    (:class:`kcli.formats.avro.AvroCodec`) or registry-framed Avro."""

    def encode(self, text: bytes | str, where: str = "") -> bytes:
        """The encoded value; BadInput says what is wrong with ``text``."""


@dataclass(frozen=True)
class LineFormat:
    """How one input line becomes a record."""

    kind: str = "raw"
    key_separator: bytes | None = None
    headers: Sequence[Header] = ()
    codec: ValueEncoder | None = None
    key: bytes | None = None
    """The key of every record (kcat's and rpk's -k), when lines carry no key."""

    @property
    def plain_values(self) -> bool:
        """Each line is exactly a value: the fast path applies."""
        return (self.kind == "raw" and self.key_separator is None and self.key is None
                and not self.headers)

    def record(self, line: bytes, lineno: int) -> Record | None:
        """The record of one line (None for a skipped blank line); BadInput names the
        line number when the line is malformed."""
        if self.kind == "json":
            return loads(line, lineno) if line.strip() else None
        key = self.key
        value = line
        if self.key_separator is not None:
            head, found, tail = line.partition(self.key_separator)
            if found:
                key, value = head, tail
        if self.codec is not None:
            if not value.strip():
                return None
            value = self.codec.encode(value, f"line {lineno}")
        return Record(key=key, value=value, headers=list(self.headers))
