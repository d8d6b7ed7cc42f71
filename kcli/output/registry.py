"""The output formats by name; an unknown name is a BadInput listing the valid ones."""

from __future__ import annotations

from typing import Protocol, TextIO

from kcli.errors import BadInput
from kcli.output.model import Result


class OutputFormat(Protocol):
    """Anything that can write a Result to a text stream."""

    name: str

    def write(self, result: Result, out: TextIO) -> None:
        """Render ``result`` to ``out``."""


def _formats() -> dict[str, OutputFormat]:
    from kcli.output.jsonfmt import JsonFormat, JsonLinesFormat
    from kcli.output.table import TableFormat

    return {"table": TableFormat(), "json": JsonFormat(), "jsonl": JsonLinesFormat()}


FORMATS: tuple[str, ...] = ("table", "json", "jsonl")


def get_format(name: str) -> OutputFormat:
    """The renderer called ``name``."""
    formats = _formats()
    try:
        return formats[name]
    except KeyError:
        raise BadInput(
            f"unknown output format {name!r} (choose from {', '.join(FORMATS)})"
        ) from None
