"""JSON renderers: an indented document (json) or one compact object per line (jsonl)."""

from __future__ import annotations

from typing import Any, TextIO

from kcli.output.model import Result


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any, *, indent: bool = False) -> str:
    """JSON text of ``value`` (no trailing newline)."""
    import orjson

    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=_default, option=option).decode("utf-8")


class JsonFormat:
    """The whole result as one indented JSON document."""

    name = "json"

    def write(self, result: Result, out: TextIO) -> None:
        """Render ``result`` to ``out``."""
        out.write(dumps(result.data, indent=True) + "\n")


class JsonLinesFormat:
    """One compact JSON value per line: each item of a list, or the value itself."""

    name = "jsonl"

    def write(self, result: Result, out: TextIO) -> None:
        """Render ``result`` to ``out``."""
        items = result.data if isinstance(result.data, list) else [result.data]
        out.write("".join(dumps(item) + "\n" for item in items))
