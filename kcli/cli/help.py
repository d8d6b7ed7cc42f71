"""How `--help` reads: like git's or rpk's, not like the framework's defaults.

typer's plain help shows its internals (``{TOPIC}``, ``<list[str]>``, ``<int range>``,
``[x>=1]``), cuts descriptions mid-word, lists commands in registration order and
repeats the global options under every command. These classes render the same click
objects differently:

- usage lines and argument names use the metavars the commands declare;
- option metavars say what to type (``N``, ``a|b``), defaults stay, ranges go (a value
  out of range is still refused with a clear message);
- ``kcli --help`` groups commands by what users do, each with the first sentence of its
  description, and shows the global options once;
- a command's help lists its own options and one line pointing at ``kcli --help`` for
  the global ones.
"""

from __future__ import annotations

import enum
from pathlib import PurePath
from typing import Any

from typer import _click as click  # typer's own copy of click: its objects are these
from typer.core import TyperCommand, TyperGroup

GLOBAL_PREFIX = "kcli_"
"""Parameter names of the global options appended to every command (see options.py)."""
GLOBAL_FLAGS = "-b -p -X -o -q --debug --timeout --cluster"

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Local cluster", ("cluster", "broker")),
    ("Topics and data", ("topic", "produce", "consume", "schema", "txn", "partition")),
    ("Consumer groups", ("group",)),
    ("Backup and migration", ("backup", "restore", "migrate")),
    ("Dashboard", ("tui",)),
    ("Security", ("acl", "user")),
    ("Setup and tools", ("profile", "completion", "bench")),
)
"""The sections of `kcli --help`, in order; a command in none of them goes under More."""


def first_sentence(text: str | None) -> str:
    """The summary a command list shows: the description up to its first full stop."""
    flat = " ".join((text or "").split("\n\n")[0].split())
    for end in (". ", ".\n"):
        cut = flat.find(end)
        if cut >= 0:
            flat = flat[:cut]
    return flat.removesuffix(".")


def _type_metavar(param: click.Parameter) -> str:
    """What to type for an option without a declared metavar, from its annotation."""
    descriptor = getattr(param, "type_descriptor", None)
    kind = getattr(descriptor, "annotation", None)
    for inner in getattr(kind, "__args__", ()) or ():  # list[int] -> int
        kind = inner
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "|".join(str(member.value) for member in kind)
    if kind is int:
        return "N"
    if kind is float:
        return "NUMBER"
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return "PATH"
    return "TEXT"


def _is_argument(param: click.Parameter) -> bool:
    return param.param_type_name == "argument"


def _is_option(param: click.Parameter) -> bool:
    return param.param_type_name == "option"


def argument_name(param: click.Parameter) -> str:
    """An argument as the user reads it: its declared metavar, else its name."""
    return param.metavar or (param.name or "ARG").upper()


def usage_piece(param: click.Parameter) -> str:
    """An argument in the usage line: [NAME] when optional, NAME... when repeatable."""
    name = argument_name(param)
    if not param.required and not name.startswith("["):
        name = f"[{name}]"
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


def _default_text(param: Any) -> str | None:
    default = param.default
    if param.show_default is False or param.is_flag or callable(default):
        return None
    if default is None or default in ((), []):
        return None
    if isinstance(param.show_default, str):
        return param.show_default
    return str(default)


def option_record(param: Any) -> tuple[str, str]:
    """(names and metavar, help) of one option."""
    names = ", ".join([*param.opts, *param.secondary_opts])
    if not param.is_flag and not param.count:
        names += f" {param.metavar or _type_metavar(param)}"
    help_text = " ".join((param.help or "").split())
    default = _default_text(param)
    if default is not None and "[default" not in help_text:
        help_text = f"{help_text} [default: {default}]".strip()
    return names, help_text


class KcliCommand(TyperCommand):
    """A command whose help shows its own options, and the global ones by reference."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """``[OPTIONS]`` and the arguments as declared."""
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [usage_piece(p) for p in self.get_params(ctx) if _is_argument(p)]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Arguments, own options, then one line about the global options."""
        format_parameters(self, ctx, formatter, with_globals=False)
        if any((p.name or "").startswith(GLOBAL_PREFIX) for p in self.get_params(ctx)):
            formatter.write_paragraph()
            formatter.write_text(f"Global options ({GLOBAL_FLAGS}): see kcli --help.")


class KcliGroup(TyperGroup):
    """A command group whose list is ordered and never cut mid-word; the root's is
    sectioned, and its own options are the global ones."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Options (the global ones at the root), then the commands."""
        format_parameters(self, ctx, formatter, with_globals=True,
                          title="Global options" if ctx.parent is None else "Options")
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Commands with the first sentence of their description, in sections at the root."""
        commands = {name: cmd for name in self.list_commands(ctx)
                    if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden}
        if ctx.parent is not None:
            sections: list[tuple[str, list[str]]] = [("Commands", list(commands))]
        else:
            placed = {name for _title, names in SECTIONS for name in names}
            sections = [(title, [n for n in names if n in commands]) for title, names in SECTIONS]
            sections.append(("More", [n for n in commands if n not in placed]))
        width = max((len(name) for name in commands), default=0)
        for title, names in sections:
            # names padded alike, so that every section's descriptions line up
            rows = [(name.ljust(width),
                     first_sentence(commands[name].short_help or commands[name].help))
                    for name in names]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_max=14)


def format_parameters(command: click.Command, ctx: click.Context,
                      formatter: click.HelpFormatter, *, with_globals: bool,
                      title: str = "Options") -> None:
    """The Arguments and Options sections of a command's help."""
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if (param.name or "").startswith(GLOBAL_PREFIX) and not with_globals:
            continue
        if _is_argument(param):
            arguments.append((argument_name(param), " ".join((getattr(
                param, "help", None) or "").split())))
        elif _is_option(param):
            options.append(option_record(param))
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section(title):
            formatter.write_dl(options)


def help_settings() -> dict[str, Any]:
    """Keyword arguments for typer.Typer(): plain help rendered by these classes."""
    return {"cls": KcliGroup, "rich_markup_mode": None}
