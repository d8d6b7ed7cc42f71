"""The status line: where the data comes from, how fresh it is, and what went wrong."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rich.text import Text
from textual.widgets import Static

from kcli.tui.widgets.cells import theme_color

SLOW_AFTER = 1.0
"""Seconds a refresh may take before the status line counts them."""


@dataclass(frozen=True)
class PollState:
    """What the poller is doing."""

    phase: Literal["connecting", "ok", "failed"] = "connecting"
    in_flight_since: float | None = None
    """Monotonic time the current refresh started (None when idle)."""
    error: str | None = None
    last_ok: float | None = None
    """Poll time of the last snapshot."""
    took: float | None = None


def clock_time(t: float) -> str:
    """HH:MM:SS in local time."""
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")  # noqa: DTZ006 - local on purpose


class StatusBar(Static):
    """One line at the bottom of every screen, above the footer (in the flow, not
    docked: the footer is docked and would cover it)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text;
    }
    StatusBar.-failed {
        background: $error-muted;
    }
    """

    def __init__(self, *, bootstrap: str = "", interval: float = 2.0) -> None:
        super().__init__("", id="status")
        self.bootstrap = bootstrap
        self.interval = interval
        self._state = PollState()

    def on_mount(self) -> None:
        self.watch(self.app, "poll_state", self.show_state, init=True)
        self.set_interval(SLOW_AFTER, self._tick)

    def _tick(self) -> None:
        if self._state.in_flight_since is not None:
            self.show_state(self._state)

    def show_state(self, state: PollState) -> None:
        """Render a poll state."""
        self._state = state
        self.set_class(state.phase == "failed", "-failed")
        self.update(self.describe(state, time.monotonic()))

    def describe(self, state: PollState, now: float) -> Text:
        """The line for a state at monotonic time ``now``."""
        every = f"every {self.interval:g} s"
        waiting = (now - state.in_flight_since) if state.in_flight_since is not None else 0.0
        slow = f" · waiting {waiting:.0f} s" if waiting >= SLOW_AFTER else ""
        line = Text(no_wrap=True, overflow="ellipsis")
        if state.phase == "failed":
            line.append("✖ ", style=f"bold {theme_color(self.app, 'error')}")
            line.append(state.error or "refresh failed")
            line.append(f" · retrying {every}{slow}")
            if state.last_ok is not None:
                line.append(f" · data from {clock_time(state.last_ok)}")
        elif state.phase == "connecting":
            line.append("… ", style=f"bold {theme_color(self.app, 'warning')}")
            line.append(f"connecting to {self.bootstrap}{slow}")
        else:
            line.append("● ", style=f"bold {theme_color(self.app, 'success')}")
            line.append(f"{self.bootstrap} · polled ")
            line.append(clock_time(state.last_ok or 0.0))
            if state.took is not None:
                line.append(f" in {state.took:.2f} s")
            line.append(f" · {every}{slow}")
        return line
