"""The root of the command line: global options, command groups, one error handler.

Command modules are imported here once and stay light: confluent-kafka, rich, fastavro
and orjson are imported inside the commands that need them, so ``kcli --help`` is fast.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from kcli import __version__
from kcli.cli import acl as acl_cli
from kcli.cli import backup as backup_cli
from kcli.cli import bench as bench_cli
from kcli.cli import broker as broker_cli
from kcli.cli import cluster as cluster_cli
from kcli.cli import completion as completion_cli
from kcli.cli import consume as consume_cli
from kcli.cli import group as group_cli
from kcli.cli import migrate as migrate_cli
from kcli.cli import partition as partition_cli
from kcli.cli import produce as produce_cli
from kcli.cli import profile as profile_cli
from kcli.cli import restore as restore_cli
from kcli.cli import schema as schema_cli
from kcli.cli import topic as topic_cli
from kcli.cli import tui as tui_cli
from kcli.cli import txn as txn_cli
from kcli.cli import user as user_cli
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

app = typer.Typer(
    name="kcli",
    help="One command line for Apache Kafka: local clusters, topics, produce, consume, "
    "groups, backups and a dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help (no rich import: `kcli --help` stays fast), rendered by help.py
    **help_settings(),
)
app.add_typer(cluster_cli.app, name="cluster")
app.add_typer(topic_cli.app, name="topic")
app.add_typer(partition_cli.app, name="partition")
app.command("produce", cls=KcliCommand)(with_global_options(produce_cli.produce))
app.command("consume", cls=KcliCommand)(with_global_options(consume_cli.consume))
app.add_typer(schema_cli.app, name="schema")
app.add_typer(txn_cli.app, name="txn")
app.add_typer(group_cli.app, name="group")
app.add_typer(profile_cli.app, name="profile")
app.add_typer(user_cli.app, name="user")
app.add_typer(acl_cli.app, name="acl")
app.command("tui", cls=KcliCommand)(with_global_options(tui_cli.tui))
app.add_typer(bench_cli.app, name="bench")
app.add_typer(broker_cli.app, name="broker")
app.add_typer(backup_cli.app, name="backup")
app.command("restore", cls=KcliCommand)(with_global_options(restore_cli.restore))
app.command("migrate", cls=KcliCommand)(with_global_options(migrate_cli.migrate))
app.add_typer(completion_cli.app, name="completion")


def _print_version(value: bool) -> None:
    if value:
        print(f"kcli {__version__}")
        raise typer.Exit()


@app.callback()
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
        code = app(prog_name="kcli", standalone_mode=False)
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
