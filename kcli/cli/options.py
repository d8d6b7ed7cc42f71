"""The global options, defined once: accepted before the subcommand and on every command.

``kcli -b host:9092 topic list`` and ``kcli topic list -b host:9092`` mean the same.
Commands are plain functions whose first parameter is the resolved
:class:`~kcli.config.Options`; :func:`command` registers them with the global options
appended to their signature, and builds the one Options object when they run.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from kcli.cli.help import KcliCommand
from kcli.config import GlobalFlags, Options, resolve
from kcli.errors import Interrupted

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Global options"

BootstrapOpt = Annotated[str | None, typer.Option(
    "-b", "--bootstrap", metavar="HOST:PORT[,..]", rich_help_panel=PANEL,
    help="Kafka bootstrap servers (env KCLI_BOOTSTRAP; default: the running local "
         "cluster, else localhost:9092).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "-p", "--profile", metavar="NAME", rich_help_panel=PANEL,
    help="Connection profile from config.toml (env KCLI_PROFILE).")]
PropertyOpt = Annotated[list[str] | None, typer.Option(
    "-X", metavar="KEY=VALUE", rich_help_panel=PANEL,
    help="librdkafka property, repeatable; wins over the profile.")]
OutputOpt = Annotated[str | None, typer.Option(
    "-o", "--output", metavar="table|json|jsonl", rich_help_panel=PANEL,
    help="Output format (default: table on a terminal, json when piped).")]
QuietOpt = Annotated[bool, typer.Option(
    "-q", "--quiet", rich_help_panel=PANEL, help="No progress or summaries on stderr.")]
DebugOpt = Annotated[bool, typer.Option(
    "--debug", rich_help_panel=PANEL, help="Client logs and tracebacks on stderr.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", metavar="SECONDS", rich_help_panel=PANEL,
    help="Give up on an unanswered cluster request after this long (env KCLI_TIMEOUT; "
         "default 30).")]

ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", metavar="NAME", rich_help_panel=PANEL,
    help="Local cluster to use when several are known (env KCLI_CLUSTER; see "
         "`kcli cluster status`).")]

_GLOBAL_PARAMS = [
    inspect.Parameter("kcli_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
] + [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("kcli_bootstrap", BootstrapOpt, None),
        ("kcli_profile", ProfileOpt, None),
        ("kcli_x", PropertyOpt, None),
        ("kcli_output", OutputOpt, None),
        ("kcli_quiet", QuietOpt, False),
        ("kcli_debug", DebugOpt, False),
        ("kcli_timeout", TimeoutOpt, None),
        ("kcli_cluster", ClusterOpt, None),
    )
]


def flags_from(values: dict[str, Any]) -> GlobalFlags:
    """Pop the global options out of a command's keyword arguments."""
    return GlobalFlags(
        bootstrap=values.pop("kcli_bootstrap", None),
        profile=values.pop("kcli_profile", None),
        overrides=tuple(values.pop("kcli_x", None) or ()),
        output=values.pop("kcli_output", None),
        quiet=bool(values.pop("kcli_quiet", False)),
        debug=bool(values.pop("kcli_debug", False)),
        timeout=values.pop("kcli_timeout", None),
        cluster=values.pop("kcli_cluster", None),
    )


def root_flags(ctx: typer.Context | None) -> GlobalFlags:
    """The global options given before the subcommand (stored by the root callback)."""
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, GlobalFlags) else GlobalFlags()


def with_global_options(func: Callable[..., Any], *, use_profiles: bool = True,
                        ) -> Callable[..., Any]:
    """Wrap ``func(opts, **own)`` into a typer command taking its own options plus the
    global ones. ``use_profiles=False`` (the profile commands) skips loading a profile,
    so a broken default profile can still be repaired."""
    signature = inspect.signature(func, eval_str=True)
    params = list(signature.parameters.values())
    if not params or params[0].name != "opts":
        raise TypeError(f"{func.__name__}: the first parameter must be 'opts: Options'")
    own = params[1:]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        flags = root_flags(kwargs.pop("kcli_ctx", None)).then(flags_from(kwargs))
        opts = resolve(flags, use_profiles=use_profiles)
        _warn_of_secrets(opts)
        try:
            return func(opts, **kwargs)
        except KeyboardInterrupt:
            # typer would turn it into a silent exit 130; say what happened, once
            raise Interrupted() from None
        except BrokenPipeError:
            # The reader went away (`kcli consume T | head`): that is a normal end.
            # Handled here because typer's click turns EPIPE into exit status 1.
            quiet_stdout()
            raise typer.Exit(0) from None

    new_params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + _GLOBAL_PARAMS
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=new_params, return_annotation=None)
    wrapper.__annotations__ = {p.name: p.annotation for p in new_params}
    del wrapper.__wrapped__
    return wrapper


def _warn_of_secrets(opts: Options) -> None:
    """A secret given with -X is visible to every user (ps) and kept in shell history."""
    from kcli.config import is_secret

    secret = next((item.partition("=")[0].strip() for item in opts.flags.overrides
                   if is_secret(item.partition("=")[0])), None)
    if secret is not None:
        say(opts, f"warning: -X {secret} on the command line is visible to other users "
                  "(ps) and kept in shell history; save it in a profile instead "
                  "(kcli profile add --sasl-mechanism ... asks for the password)")


def command(app: typer.Typer, name: str, *, use_profiles: bool = True,
            **kwargs: Any) -> Callable[[F], F]:
    """Register ``func(opts, ...)`` as ``name`` on ``app``, with the global options."""

    def register(func: F) -> F:
        kwargs.setdefault("cls", KcliCommand)
        app.command(name, **kwargs)(with_global_options(func, use_profiles=use_profiles))
        return func

    return register


def quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that no later flush (ours or
    the interpreter's at exit) can fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def stderr_is_terminal() -> bool:
    """Whether progress bars and prompts may be shown."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived during a command that stops cleanly on them."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT (Ctrl-C) and SIGTERM into :class:`Stopped` inside the block, so the
    command can close what it holds (a consumer leaves its group) and report, then
    exit 130 or 143 quietly: stopping `consume --follow` is how it normally ends."""
    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    try:
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def say(opts: Options, message: str) -> None:
    """A diagnostic line on stderr, unless -q."""
    if not opts.quiet:
        print(message, file=sys.stderr)
