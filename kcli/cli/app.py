"""The root of the command line: global options, command groups, one error handler.

Command modules stay light: confluent-kafka, rich, fastavro and orjson are imported
inside the commands that need them, so ``kcli --help`` is fast. And a run builds only
the command it runs: typer turns every function of the tree into a click command (about
45 ms for the whole tree here, 2 ms for one), so when argv names a top-level command
plainly, only that one is imported and built (:func:`build_app`).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import typer

from kcli import __version__
from kcli.cli.help import KcliCommand, help_settings
from kcli.cli.options import (
    BootstrapOpt,
    ClusterOpt,
    DebugOpt,
    OutputOpt,
    ProfileOpt,
    PropertyOpt,
    QuietOpt,
    TimeoutOpt,
    quiet_stdout,
    with_global_options,
)
from kcli.config import GlobalFlags
from kcli.errors import (
    ExitCode,
    KcliError,
    exit_code_for,
    from_kafka_error,
    is_kafka_exception,
)

COMMANDS: dict[str, str] = {
    # name: "module" (a group: the module's Typer `app`) or "module:function" (a command)
    "cluster": "cluster",
    "topic": "topic",
    "partition": "partition",
    "produce": "produce:produce",
    "consume": "consume:consume",
    "schema": "schema",
    "txn": "txn",
    "group": "group",
    "profile": "profile",
    "user": "user",
    "acl": "acl",
    "tui": "tui:tui",
    "bench": "bench",
    "broker": "broker",
    "backup": "backup",
    "restore": "restore:restore",
    "migrate": "migrate:migrate",
    "completion": "completion",
}
"""Every top-level command and where it lives."""

ROOT_VALUE_OPTIONS = frozenset(
    {"-b", "--bootstrap", "-p", "--profile", "-X", "-o", "--output", "--timeout", "--cluster"})
ROOT_FLAGS = frozenset({"-q", "--quiet", "--debug"})
"""The root's options that may come before the command name (tests check these against
the root callback): an option not listed here sends argv to the whole tree."""

COMPLETING = "_KCLI_COMPLETE"
"""Set when the shell asks for completions (completion.COMPLETE_VAR): the whole tree
answers, since the command may not be typed yet."""


def build_app(only: str | None = None) -> typer.Typer:
    """The command tree: every command, or only the one named ``only``."""
    tree = typer.Typer(
        name="kcli",
        help="One command line for Apache Kafka: local clusters, topics, produce, consume, "
        "groups, backups and a dashboard.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # plain click help (no rich import: `kcli --help` stays fast), rendered by help.py
        **help_settings(),
    )
    for name, target in COMMANDS.items():
        if only is not None and name != only:
            continue
        module_name, _, function = target.partition(":")
        module = importlib.import_module(f"kcli.cli.{module_name}")
        if function:
            tree.command(name, cls=KcliCommand)(with_global_options(getattr(module, function)))
        else:
            tree.add_typer(module.app, name=name)
    tree.callback()(root)
    return tree


def command_named(argv: list[str]) -> str | None:
    """The top-level command ``argv`` (without the program name) runs, when that is
    plain: only root options listed above come before it. None otherwise (no command,
    --help, --version, a typo, an option spelled some other way): the whole tree then
    parses argv and says what is wrong as it always did."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in COMMANDS:
            return word
        if word in ROOT_FLAGS:
            index += 1
        elif word in ROOT_VALUE_OPTIONS:
            index += 2
        elif word.startswith("--") and word.partition("=")[0] in ROOT_VALUE_OPTIONS:
            index += 1
        else:
            return None
    return None


def __getattr__(name: str) -> Any:
    """``app``: the whole tree, built on first use (docs, completions' tests, help)."""
    if name == "app":
        whole = build_app()
        globals()["app"] = whole
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _print_version(value: bool) -> None:
    if value:
        print(f"kcli {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    bootstrap: BootstrapOpt = None,
    profile: ProfileOpt = None,
    properties: PropertyOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    timeout: TimeoutOpt = None,
    cluster: ClusterOpt = None,
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """kcli: a Kafka command line."""
    ctx.obj = GlobalFlags(bootstrap=bootstrap, profile=profile,
                          overrides=tuple(properties or ()), output=output, quiet=quiet,
                          debug=debug, timeout=timeout, cluster=cluster)


def fail(message: str, code: int) -> None:
    """Print one error line to stderr and exit."""
    print(f"kcli: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(code)


def _debugging() -> bool:
    return "--debug" in sys.argv[1:] or bool(os.environ.get("KCLI_DEBUG"))


def main() -> None:
    """Console entry point: run the app and turn every failure into one line and an exit code."""
    try:
        # completion (typer's entry point answers it) needs the whole tree to complete in
        only = None if COMPLETING in os.environ else command_named(sys.argv[1:])
        code = build_app(only)(prog_name="kcli", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) comes back as a return value
            raise SystemExit(code)
    except KcliError as error:
        if _debugging():
            traceback.print_exc()
        fail(error.one_line(), error.exit_code)
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except typer.Abort:
        fail("interrupted", ExitCode.INTERRUPTED)
    except typer.TyperException as error:  # typer's click: usage errors and the like
        if type(error).__name__ == "NoArgsIsHelpError":  # `kcli`, `kcli topic`: the help
            print(error.format_message(), file=sys.stderr)
            raise SystemExit(ExitCode.USAGE) from None
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        ctx = getattr(error, "ctx", None)
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        fail(message, getattr(error, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        quiet_stdout()
        raise SystemExit(ExitCode.OK) from None
    except Exception as error:
        if _debugging():
            traceback.print_exc()
        if is_kafka_exception(error):
            kcli_error = from_kafka_error(error)
            fail(kcli_error.one_line(), kcli_error.exit_code)
        fail(f"internal error: {type(error).__name__}: {error} (run with --debug for "
             "a traceback)", exit_code_for(error))
