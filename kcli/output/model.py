"""What a command hands to a renderer: JSON-ready data plus how to show it as tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ColumnKind = Literal["text", "int", "bytes", "list", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of a table: which key of a row it shows and how."""

    key: str
    header: str
    kind: ColumnKind = "text"

    @property
    def numeric(self) -> bool:
        """Right-aligned columns."""
        return self.kind in ("int", "bytes")


@dataclass(frozen=True)
class Table:
    """Rows (mappings) shown under column headers; ``empty`` replaces a table of no rows."""

    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    title: str | None = None
    empty: str = "(none)"
    show_header: bool = True


@dataclass(frozen=True)
class Result:
    """A command's output. ``data`` is what json/jsonl print (jsonl: one line per item
    when ``data`` is a list); ``tables`` are what the table format prints."""

    data: Any
    tables: Sequence[Table] = field(default_factory=tuple)


def fields_table(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> Table:
    """A two-column, headerless table of name/value pairs (a describe header)."""
    columns = (Column("name", "name"), Column("value", "value"))
    rows = [{"name": name, "value": value} for name, value in pairs]
    return Table(columns, rows, title=title, show_header=False)
