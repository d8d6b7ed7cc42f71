"""`kcli tui`: the live dashboard (kcli/tui/), against the cluster the global options
point at: -b, -p, -X and --timeout work as for every other command."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from kcli.config import ENV_CLUSTER, ENV_TIMEOUT, Options
from kcli.errors import BadInput, KcliError

TUI_TIMEOUT = 10.0
"""Seconds one poll may wait for the cluster unless --timeout or $KCLI_TIMEOUT says
otherwise: a dashboard should say "unreachable" sooner than a batch command gives up."""
MIN_INTERVAL = 0.2


def _is_terminal() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def tui(
    opts: Options,
    interval: Annotated[float, typer.Option(
        "-i", "--interval", metavar="SECONDS",
        help="Seconds between two polls of the cluster.")] = 2.0,
) -> None:
    """Live dashboard: cluster, topics, groups with lag, records.

    Keys are shown at the bottom; q quits."""
    if not interval >= MIN_INTERVAL:  # also refuses nan
        raise BadInput(f"--interval must be at least {MIN_INTERVAL:g} seconds")
    if not _is_terminal():
        raise BadInput("kcli tui needs a terminal (stdin and stdout must be a tty)")
    from kcli.tui.app import KcliApp
    from kcli.tui.service import KafkaService

    explicit = opts.flags.timeout is not None or bool(os.environ.get(ENV_TIMEOUT))
    config = opts.client_config({"allow.auto.create.topics": False})
    if "log_level" not in opts.properties:
        config["log_level"] = 0  # client logs on stderr would scribble over the screen
    service = KafkaService(config, timeout=opts.timeout if explicit else TUI_TIMEOUT,
                           interval=interval, expected_brokers=_local_brokers(opts),
                           registry=opts.registry_config())
    app = KcliApp(service, interval=interval)
    app.run()
    if app.return_code:
        raise typer.Exit(app.return_code)


def _local_brokers(opts: Options) -> dict[int, tuple[str, int]]:
    """The brokers of the local cluster the dashboard watches, so that one that was
    killed is shown as down rather than not at all."""
    if opts.bootstrap_source != "local cluster":
        return {}
    from kcli.local.registry import choose

    try:
        chosen = choose(opts.flags.cluster or os.environ.get(ENV_CLUSTER))
    except KcliError:
        return {}
    return {node_id: ("127.0.0.1", port) for node_id, port in chosen.ports} if chosen else {}
