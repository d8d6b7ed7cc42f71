"""Progress bars: on a terminal, for known sizes, only after a second, never with -q."""

from __future__ import annotations

import io

import pytest

from kcli.cli import common, options
from kcli.config import GlobalFlags, resolve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(common, "_clock", fake)
    return fake


def capture_stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Replace sys.stderr in the test body (pytest's own capture would undo a fixture's)."""
    buffer = io.StringIO()
    monkeypatch.setattr(common.sys, "stderr", buffer)
    return buffer


def run(monkeypatch: pytest.MonkeyPatch, quiet: bool, total: int | None, clock: Clock) -> str:
    stderr = capture_stderr(monkeypatch)
    opts = resolve(GlobalFlags(bootstrap="x:1", quiet=quiet), environ={})
    with common.progress(opts, total, "copying") as advance:
        advance(10)
        clock.now += 0.5
        advance(10)
        clock.now += 1.0
        advance(10)
    return stderr.getvalue()


def test_bar_only_after_a_second_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                               clock: Clock) -> None:
    monkeypatch.setattr(options, "stderr_is_terminal", lambda: True)
    assert "copying" in run(monkeypatch, False, 100, clock)


@pytest.mark.parametrize(("terminal", "quiet", "total"), [
    (False, False, 100), (True, True, 100), (True, False, None)])
def test_no_bar(monkeypatch: pytest.MonkeyPatch, clock: Clock, terminal: bool, quiet: bool,
                total: int | None) -> None:
    monkeypatch.setattr(options, "stderr_is_terminal", lambda: terminal)
    assert run(monkeypatch, quiet, total, clock) == ""


def test_quick_operations_never_flash_a_bar(monkeypatch: pytest.MonkeyPatch,
                                            clock: Clock) -> None:
    monkeypatch.setattr(options, "stderr_is_terminal", lambda: True)
    stderr = capture_stderr(monkeypatch)
    opts = resolve(GlobalFlags(bootstrap="x:1"), environ={})
    with common.progress(opts, 100, "copying") as advance:
        advance(100)
    assert stderr.getvalue() == ""
