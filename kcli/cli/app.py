"""The root of the command line: global options, command groups, one error handler."""

from __future__ import annotations

import sys

import click
import typer

from kcli import __version__
from kcli.cli import broker as broker_cli
from kcli.errors import ExitCode, KcliError

app = typer.Typer(
    name="kcli",
    help="One command line for Apache Kafka: local clusters, topics, produce, consume, "
    "groups, backups and a dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(broker_cli.app, name="broker")


def _print_version(value: bool) -> None:
    if value:
        print(f"kcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """kcli: a Kafka command line."""


def fail(message: str, code: int) -> None:
    """Print one error line to stderr and exit."""
    print(f"kcli: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main() -> None:
    """Console entry point: run the app and turn every failure into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except KcliError as error:
        message = error.message if not error.hint else f"{error.message} ({error.hint})"
        fail(message, error.exit_code)
    except click.exceptions.Exit as done:
        raise SystemExit(done.exit_code) from None
    except click.exceptions.Abort:
        fail("interrupted", ExitCode.INTERRUPTED)
    except click.ClickException as error:
        fail(error.format_message(), ExitCode.USAGE)
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(ExitCode.OK) from None
