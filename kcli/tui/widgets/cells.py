"""Table cells: numbers, sizes, rates and statuses as rich Text (never markup: topic
names and record keys are shown exactly as they are)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App

from kcli.tui.lag import Status

DASH = "-"


def text(value: object, *, style: str = "") -> Text:
    """Plain text, '-' for None."""
    return Text(DASH if value is None else str(value), style=style, no_wrap=True)


def number(value: int | None) -> Text:
    """1,234,567 right-aligned, '-' for unknown."""
    return Text(DASH if value is None else f"{value:,}", justify="right", no_wrap=True)


def human_size(size: int | None) -> str:
    """Bytes as 512 B, 1.2 KiB, 3.4 MiB..."""
    if size is None:
        return DASH
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return DASH  # pragma: no cover


def size(value: int | None) -> Text:
    """A size cell."""
    return Text(human_size(value), justify="right", no_wrap=True)


def human_rate(value: float | None) -> str:
    """Records per second, compact."""
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def rate(value: float | None) -> Text:
    """A rate cell."""
    return Text(human_rate(value), justify="right", no_wrap=True)


def theme_color(app: App[object], name: str) -> str:
    """A colour of the current theme ($error, $warning, $success...), never a literal."""
    return app.theme_variables.get(name, "")


def status(app: App[object], value: Status | None) -> Text:
    """A Burrow-like status, coloured by severity with the theme's colours."""
    if value is None:
        return text(None)
    color = {0: "success", 1: "warning", 2: "error"}[value.severity]
    return Text(str(value), style=f"bold {theme_color(app, color)}".strip(), no_wrap=True)
