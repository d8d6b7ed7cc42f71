"""A DataTable that is told the whole content on every poll and changes only what
changed: cells are updated in place, and the table is rebuilt only when the rows
themselves (their keys or order) differ, keeping the cursor on the same row."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


@dataclass(frozen=True)
class Col:
    """One column: header, key and a fixed width (None: as wide as the content)."""

    label: str
    key: str
    width: int | None = None


Row = tuple[str, Sequence[Any]]


class SyncTable(DataTable[Any]):
    """A row-cursor table synchronised from (key, cells) rows."""

    DEFAULT_CSS = """
    SyncTable {
        height: 1fr;
    }
    """

    def __init__(self, columns: Sequence[Col], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._spec = tuple(columns)
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Any, ...]] = {}

    def on_mount(self) -> None:
        for col in self._spec:
            self.add_column(Text(col.label, no_wrap=True), width=col.width, key=col.key)

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._keys)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self._keys:
            return None
        row = self.cursor_row
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def sync(self, rows: Sequence[Row]) -> None:
        """Show exactly these rows."""
        cells_by_key = {key: tuple(_cell(c) for c in cells) for key, cells in rows}
        keys = [key for key, _ in rows]
        if keys != self._keys:
            selected = self.selected_key()
            row = self.cursor_row
            self.clear()
            for key in keys:
                self.add_row(*cells_by_key[key], key=key)
            if keys:
                if selected in cells_by_key:
                    row = keys.index(selected)
                self.move_cursor(row=max(0, min(row, len(keys) - 1)), animate=False)
        else:
            for key in keys:
                old, new = self._cells[key], cells_by_key[key]
                for col, before, after in zip(self._spec, old, new, strict=False):
                    if before != after:
                        with suppress(RowDoesNotExist):  # keys were just checked
                            self.update_cell(key, col.key, after, update_width=col.width is None)
        self._keys = keys
        self._cells = cells_by_key

    def append(self, key: str, cells: Sequence[Any], *, keep: int) -> None:
        """Add one row at the bottom, dropping the oldest beyond ``keep`` rows."""
        row = tuple(_cell(c) for c in cells)
        self.add_row(*row, key=key)
        self._keys.append(key)
        self._cells[key] = row
        while len(self._keys) > keep:
            oldest = self._keys.pop(0)
            del self._cells[oldest]
            self.remove_row(oldest)


class OpenTable(SyncTable):
    """A table whose rows open something with enter (shown in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return Text(value, no_wrap=True)  # never parsed as markup
    if value is None:
        return Text("-", no_wrap=True)
    return value
