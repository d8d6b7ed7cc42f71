"""Tables for people, via rich: aligned columns, numbers right-aligned, sizes humanised."""

from __future__ import annotations

import io
from typing import Any, TextIO

from kcli.output.model import Column, Result

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'; exact bytes below 1 KiB."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def cell(column: Column, value: Any) -> str:
    """The text of one cell."""
    if value is None:
        return "-"
    if column.kind == "bytes" and isinstance(value, int):
        return human_bytes(value)
    if column.kind == "list" and isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "-"
    if column.kind == "bool" or isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class TableFormat:
    """Every table of a result, one after the other, separated by a blank line."""

    name = "table"

    def __init__(self, width: int | None = None, color: bool | None = None) -> None:
        self.width = width
        self.color = color

    def write(self, result: Result, out: TextIO) -> None:
        """Render ``result`` to ``out``."""
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        isatty = out.isatty() if hasattr(out, "isatty") else False
        color = isatty if self.color is None else self.color
        buffer = io.StringIO()
        target: TextIO = out if color else buffer
        console = Console(
            file=target, width=self.width, force_terminal=color, no_color=not color,
            color_system="auto" if color else None, highlight=False, emoji=False,
            legacy_windows=False, soft_wrap=False,
        )
        for index, table in enumerate(result.tables):
            if index:
                console.print()
            if table.title:
                console.print(Text(table.title, style="bold"))
            if not table.rows:
                console.print(Text(table.empty, style="dim"))
                continue
            view = RichTable(
                box=box.SIMPLE_HEAD if table.show_header else None,
                show_header=table.show_header, header_style="bold", pad_edge=False,
                show_edge=False, expand=False,
            )
            for column in table.columns:
                view.add_column(
                    column.header, justify="right" if column.numeric else "left",
                    overflow="fold", no_wrap=column.numeric,
                    style="bold" if not table.show_header and column.key == "name" else None,
                )
            for row in table.rows:
                view.add_row(*(Text(cell(c, row.get(c.key))) for c in table.columns))
            console.print(view)
        if target is not out:  # plain text: no trailing spaces (stable for diffs and files)
            out.write("".join(line.rstrip() + "\n"
                              for line in buffer.getvalue().splitlines()))
