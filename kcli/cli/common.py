"""Helpers shared by commands: connecting, printing results, progress bars, parsing."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

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


@contextmanager
def progress(opts: Options, total: int | None, description: str,
             unit: str = "records") -> Iterator[Advance]:
    """A rich progress bar on stderr, only for a known size on a terminal, never with -q."""
    from kcli.cli.options import stderr_is_terminal

    if opts.quiet or not total or not stderr_is_terminal():
        yield _noop
        return
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
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(amount: int) -> None:
            bar.advance(task, amount)

        yield advance
