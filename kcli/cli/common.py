"""Helpers shared by commands: connecting, printing results, progress bars, parsing."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from kcli.config import Options, parse_overrides
from kcli.errors import BadInput

if TYPE_CHECKING:
    from kcli.client.cluster import Cluster
    from kcli.output.model import Result


def connect(opts: Options) -> Cluster:
    """The cluster the options point at (nothing is sent until the first call)."""
    from kcli.client.cluster import Cluster

    config = opts.client_config({"allow.auto.create.topics": False})
    return Cluster(config, timeout=opts.timeout)


def emit(opts: Options, result: Result) -> None:
    """Print a result on stdout in the chosen format."""
    from kcli.output import get_format

    get_format(opts.output).write(result, sys.stdout)
    sys.stdout.flush()


def report(opts: Options, message: str, data: dict[str, Any]) -> None:
    """A command's outcome: ``message`` on stderr (unless -q) and, when -o json or
    -o jsonl was asked for, the same facts as one JSON document on stdout, so that
    every command that reports something can be scripted the same way."""
    from kcli.cli.options import say

    if message:
        say(opts, message)
    if opts.output_explicit and opts.output in ("json", "jsonl"):
        from kcli.output import Result

        emit(opts, Result(data))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 record``, ``2 records`` (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def key_values(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """Repeated ``key=value`` options as a dict; BadInput names the option."""
    try:
        return parse_overrides(values or ())
    except BadInput as error:
        raise BadInput(error.message.replace("-X", option)) from None


class Advance(Protocol):
    """Moves a progress bar forward."""

    def __call__(self, amount: int) -> None:
        """Add ``amount`` completed units."""


def _noop(amount: int) -> None:
    return None


SHOW_AFTER = 1.0
"""Seconds an operation must have run before its progress bar appears."""
_clock = time.monotonic


@contextmanager
def progress(opts: Options, total: int | None, description: str,
             unit: str = "records") -> Iterator[Advance]:
    """A rich progress bar on stderr for an operation of known size, shown only on a
    terminal, never with -q, and only once the operation has run for SHOW_AFTER
    seconds (quick commands never flash a bar)."""
    from kcli.cli.options import stderr_is_terminal

    if opts.quiet or not total or not stderr_is_terminal():
        yield _noop
        return
    started = _clock()
    done = 0
    bar: Any = None
    task: Any = None

    def advance(amount: int) -> None:
        nonlocal done, bar, task
        done += amount
        if bar is None:
            if _clock() - started < SHOW_AFTER:
                return
            bar = _progress_bar(unit)
            bar.start()
            task = bar.add_task(description, total=total, completed=done)
        else:
            bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


def _progress_bar(unit: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(),
               TransferSpeedColumn() if unit == "bytes" else MofNCompleteColumn(),
               TimeRemainingColumn()]
    # only called once stderr is known to be a terminal
    console = Console(file=sys.stderr, force_terminal=True)
    return Progress(*columns, console=console, transient=True)


PASSWORD_ENV = "KCLI_PASSWORD"
"""Where a password may come from instead of a prompt (never from argv: ps shows it)."""


def read_password(from_stdin: bool) -> str:
    """The new password: from stdin, $KCLI_PASSWORD or a prompt (asked twice)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise BadInput("the two passwords differ")
    else:
        raise BadInput(f"no password: give --password-stdin or ${PASSWORD_ENV} (stdin is "
                       "not a terminal to ask on)")
    if not password:
        raise BadInput("the password is empty")
    return password
