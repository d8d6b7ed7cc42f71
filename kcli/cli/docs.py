"""Man pages and shell completion scripts, generated from the app itself.

``scripts/gen-docs`` (``python -m kcli.cli.docs``) writes ``man/kcli.1``, one page per
top-level command (``man/kcli-topic.1``, ...), ``completions/kcli.{bash,zsh,fish}`` and
the table of commands in README.md (between two marker comments);
``--check`` only reports files that differ, which is what the tests assert. Everything
comes from the click tree typer builds: command and option help, metavars, defaults and
ranges exactly as ``--help`` shows them, exit codes from :class:`kcli.errors.ExitCode`'s
docstrings, and the config file example from :mod:`kcli.config`'s docstring. No list of
commands is kept here, only the order to present them in (:data:`READING_ORDER`): a
command added to the app gets its page and its row on the next run, after the others.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from typer._click.core import Command, Context, Parameter

from kcli import __version__

REPO = Path(__file__).resolve().parents[2]
MANUAL = "kcli manual"
GLOBAL_PANEL = "Global options"

ENVIRONMENT = (
    ("KCLI_BOOTSTRAP", "Bootstrap servers (HOST:PORT[,..]) when \\fB-b\\fR is not given; "
     "wins over the profile's."),
    ("KCLI_PROFILE", "The profile to use when \\fB-p\\fR is not given; without either, "
     "the config file's default profile (\\fBkcli profile use\\fR)."),
    ("KCLI_TIMEOUT", "Seconds to wait for an unanswered cluster request when "
     "\\fB--timeout\\fR is not given (default 30)."),
    ("KCLI_CLUSTER", "The local cluster to use (a name from \\fBkcli cluster status\\fR) "
     "when \\fB--cluster\\fR is not given and no bootstrap servers are; needed only when "
     "several local clusters run at once."),
    ("KCLI_STATE_DIR", "Where \\fBkcli cluster start\\fR registers local clusters "
     "(clusters/NAME.json), the default bootstrap of every other command; default: the "
     "user state directory (~/.local/state/kcli on Linux)."),
    ("XDG_CONFIG_HOME", "Base directory of the config file, "
     "$XDG_CONFIG_HOME/kcli/config.toml (default ~/.config)."),
    ("KCLI_DEBUG", "If set, like \\fB--debug\\fR: client logs and tracebacks on stderr."),
)
"""Environment variables (roff markup allowed in the text)."""


# --------------------------------------------------------------------------- roff


def esc(text: str) -> str:
    """Text safe inside a roff line: backslashes, hyphen-minus signs and anything
    outside ASCII escaped, so groff renders it exactly and warns about nothing."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ord(ch) > 126 or (ord(ch) < 32 and ch not in "\t"):
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    return "".join(out)


def _line(text: str) -> str:
    """A text line that roff cannot mistake for a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(text: str | None) -> list[str]:
    """Help text as roff: paragraphs filled, click's ``\\b`` blocks kept verbatim."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", inspect.cleandoc(text or ""))
    for index, block in enumerate(blocks):
        if not block.strip():
            continue
        if index:
            out.append(".PP")
        lines = block.splitlines()
        if lines[0].strip() == "\b":
            out.append(".nf")
            out.extend(_line(esc(line)) for line in lines[1:])
            out.append(".fi")
            continue
        flowing = " ".join(line.strip() for line in lines)
        out.extend(_line(esc(line)) for line in textwrap.wrap(
            flowing, 78, break_on_hyphens=False, break_long_words=False))
    return out


def bold(text: str) -> str:
    """Bold, escaped."""
    return f"\\fB{esc(text)}\\fR"


def italic(text: str) -> str:
    """Italic, escaped."""
    return f"\\fI{esc(text)}\\fR"


def _quoted(text: str) -> str:
    """A macro argument."""
    return '"' + text.replace('"', '\\(dq') + '"'


# --------------------------------------------------------------------------- the tree

READING_ORDER = ("cluster", "topic", "produce", "consume", "schema", "group", "backup",
                 "restore",
                 "migrate", "tui", "profile", "completion", "bench", "broker")
"""The order the main page, the SEE ALSO lists and the README table present top-level
commands in: the order a newcomer meets them. Names missing from the app are ignored;
commands missing from here come last, in the app's order."""


@dataclass(frozen=True)
class Node:
    """One command of the tree with the context click would give it."""

    path: tuple[str, ...]
    command: Command
    ctx: Context

    @property
    def name(self) -> str:
        """``kcli topic create``."""
        return " ".join(self.path)

    @property
    def is_group(self) -> bool:
        """Whether it has subcommands."""
        return hasattr(self.command, "list_commands")

    def children(self) -> Iterator[Node]:
        """Visible subcommands, in the app's order."""
        if not self.is_group:
            return
        group: Any = self.command
        for name in group.list_commands(self.ctx):
            sub = group.get_command(self.ctx, name)
            if sub is None or sub.hidden:
                continue
            yield Node((*self.path, name), sub, Context(sub, info_name=name, parent=self.ctx))

    def leaves(self) -> Iterator[Node]:
        """Every command below (or this one, if it has no subcommands)."""
        if not self.is_group:
            yield self
            return
        for child in self.children():
            yield from child.leaves()

    def params(self) -> list[Parameter]:
        """Its parameters, --help last."""
        return list(self.command.get_params(self.ctx))


def top_level(root: Node) -> list[Node]:
    """The top-level commands in :data:`READING_ORDER`."""
    def rank(node: Node) -> int:
        name = node.path[-1]
        return READING_ORDER.index(name) if name in READING_ORDER else len(READING_ORDER)

    return sorted(root.children(), key=rank)


def root_node() -> Node:
    """The app's click tree."""
    import typer.main

    from kcli.cli.app import app

    command = typer.main.get_command(app)
    return Node(("kcli",), command, Context(command, info_name="kcli"))


def is_global(param: Parameter) -> bool:
    """One of the global options every command accepts (documented in kcli(1))."""
    return getattr(param, "rich_help_panel", None) == GLOBAL_PANEL


def is_help(param: Parameter) -> bool:
    """The --help option."""
    return param.name == "help"


def is_argument(param: Parameter) -> bool:
    """A positional argument."""
    return getattr(param, "param_type_name", "") == "argument"


_VALUE_NAMES = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}


def value_name(param: Parameter) -> str | None:
    """What an option takes: its metavar, else a name from its type; None for flags."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar:
        return param.metavar
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    while annotation is not None and annotation not in _VALUE_NAMES:
        inner = [a for a in get_args(annotation) if a is not type(None)]
        annotation = inner[0] if inner else None
    return _VALUE_NAMES.get(annotation) if annotation is not None else (param.name or "").upper()


def argument_name(param: Parameter) -> str:
    """How an argument appears in a synopsis: ``TOPIC``, ``[BROKER]``, ``GROUP...``."""
    name = param.metavar or (param.name or "").upper()
    if param.nargs == -1 and not name.endswith("..."):
        name += "..."
    if not param.required and not name.startswith("["):
        name = f"[{name}]"
    return name


def synopsis(node: Node) -> str:
    """``kcli topic create [OPTIONS] TOPIC`` in roff."""
    parts = [bold(node.name)]
    if node.is_group:
        parts.append(f"{italic('COMMAND')} [{italic('ARGS')}]...")
        return " ".join(parts)
    own = [p for p in node.params() if not (is_argument(p) or is_help(p) or is_global(p))]
    if own:
        parts.append(f"[{italic('OPTIONS')}]")
    parts += [italic(argument_name(p)) for p in node.params() if is_argument(p)]
    return " ".join(parts)


def help_text(param: Parameter, ctx: Context) -> str:
    """The help ``--help`` shows for a parameter, with its default and range."""
    record = param.get_help_record(ctx)
    text = record[1] if record else (getattr(param, "help", None) or "")
    if is_argument(param):
        text = text.replace("[required]", "")
    return " ".join(text.split())


def option_entry(param: Parameter, ctx: Context) -> list[str]:
    """A ``.TP`` entry for one option or argument."""
    if is_argument(param):
        tag = italic(argument_name(param))
    else:
        names = ", ".join(bold(o) for o in [*param.opts, *param.secondary_opts])
        value = value_name(param)
        tag = f"{names} {italic(value)}" if value else names
    lines = [".TP", tag]
    text = help_text(param, ctx)
    lines += [_line(esc(t)) for t in textwrap.wrap(text, 78, break_on_hyphens=False,
                                                    break_long_words=False)] or ["\\&"]
    return lines


_SENTENCE_END = re.compile(r"(?<!\.)\.(?!\.)(?=\s+[A-Z(]|$)")


def short_help(command: Command) -> str:
    """One line describing a command: its short help, else the first sentence of its
    help (an ellipsis such as ``T..`` ends no sentence, unlike click's own cut)."""
    if command.short_help:
        return " ".join(command.short_help.split()).rstrip(".")
    text = " ".join((command.help or "").split("\n\n")[0].split())
    match = _SENTENCE_END.search(text)
    return (text[:match.start()] if match else text).rstrip(".")


# --------------------------------------------------------------------------- pages


def exit_codes() -> list[tuple[int, str]]:
    """(code, docstring) of every ExitCode member, read from the class's source."""
    from kcli.errors import ExitCode

    tree = ast.parse(textwrap.dedent(inspect.getsource(ExitCode)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, after in itertools.pairwise(body):
        if (isinstance(stmt, ast.Assign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                docs[target.id] = " ".join(after.value.value.split())
    return [(int(code), docs.get(code.name, code.name.replace("_", " ").lower()))
            for code in ExitCode]


def config_example() -> list[str]:
    """The profiles file example from kcli.config's docstring."""
    import kcli.config

    doc = kcli.config.__doc__ or ""
    _head, _sep, tail = doc.partition("::\n")
    return textwrap.dedent(tail).strip("\n").splitlines()


def header(title: str, name: str, summary: str) -> list[str]:
    """.TH and NAME (no hyphenation, ragged right: option names stay whole)."""
    if summary[1:2].islower():
        summary = summary[0].lower() + summary[1:]
    return [
        f'.TH {esc(title.upper())} 1 "" {_quoted("kcli " + __version__)} {_quoted(MANUAL)}',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{esc(name)} \\- {esc(summary)}",
    ]


def _page_name(node: Node) -> str:
    return "-".join(node.path)


def command_section(node: Node, title: bool) -> list[str]:
    """Help, arguments and options of one command (a subsection on a group's page)."""
    lines: list[str] = []
    if title:
        lines.append(f".SS {_quoted(synopsis(node))}")
    lines += paragraphs(node.command.help)
    params = [p for p in node.params() if not is_help(p) and not is_global(p)]
    arguments = [p for p in params if is_argument(p) and help_text(p, node.ctx)]
    options = [p for p in params if not is_argument(p)]
    for label, group in (("Arguments", arguments), ("Options", options)):
        if not group:
            continue
        lines += [".PP", f"{label}:"] if title else [f".SH {label.upper()}"]
        for p in group:
            lines += option_entry(p, node.ctx)
    return lines


def _takes_globals(node: Node) -> bool:
    return any(is_global(p) for leaf in node.leaves() for p in leaf.params())


def command_page(node: Node, siblings: list[Node]) -> str:
    """kcli-NAME.1 for one top-level command or group."""
    lines = header(_page_name(node), _page_name(node), short_help(node.command))
    lines.append(".SH SYNOPSIS")
    if node.is_group:
        for index, leaf in enumerate(node.leaves()):
            lines += [".br"] if index else []
            lines.append(synopsis(leaf))
        lines.append(".SH DESCRIPTION")
        lines += paragraphs(node.command.help)
        lines.append(".SH COMMANDS")
        for leaf in node.leaves():
            lines += command_section(leaf, title=True)
    else:
        lines.append(synopsis(node))
        lines.append(".SH DESCRIPTION")
        lines += command_section(node, title=False)
    if _takes_globals(node):
        lines += [".SH GLOBAL OPTIONS",
                  "Every command also accepts the global options of",
                  ".BR kcli (1),",
                  "before or after the command name:",
                  ", ".join(bold(o) for p in _global_params() for o in p.opts) + "."]
    lines += [".PP", "Every command accepts", ".B \\-\\-help", "and prints its usage."]
    lines += [".SH EXIT STATUS",
              "0 on success; otherwise the codes listed in",
              ".BR kcli (1),",
              "with one line on stderr saying what failed."]
    lines += [".SH SEE ALSO", see_also([s for s in siblings if s is not node])]
    return "\n".join(lines) + "\n"


def _global_params() -> list[Parameter]:
    root = root_node()
    return [p for p in root.params() if is_global(p)]


def see_also(nodes: list[Node], first: tuple[str, ...] = ("kcli",)) -> str:
    """``kcli(1), kcli-topic(1), ...`` as roff."""
    names = [*first, *(_page_name(n) for n in nodes)]
    return ",\n".join(f".BR {esc(n)} (1)" for n in names)


def main_page(root: Node, commands: list[Node]) -> str:
    """kcli.1: the global options, the commands, environment, files, exit status."""
    lines = header("kcli", "kcli", short_help(root.command))
    lines += [".SH SYNOPSIS",
              f"{bold('kcli')} [{italic('GLOBAL OPTIONS')}] {italic('COMMAND')} "
              f"[{italic('ARGS')}]...",
              ".SH DESCRIPTION"]
    lines += paragraphs(root.command.help)
    lines.append(".PP")
    lines += paragraphs(
        "Without -b, -p or KCLI_BOOTSTRAP, commands talk to the local cluster started by "
        "'kcli cluster start', else to localhost:9092. Data goes to stdout; diagnostics "
        "and progress bars go to stderr. Tables are printed on a terminal and JSON when "
        "stdout is a pipe, unless -o says otherwise.")
    lines.append(".SH GLOBAL OPTIONS")
    lines += paragraphs("Accepted before the command name and by every command, so "
                        "'kcli -b HOST:PORT topic list' and 'kcli topic list -b HOST:PORT' "
                        "mean the same.")
    for param in root.params():
        lines += option_entry(param, root.ctx)
    lines.append(".SH COMMANDS")
    for node in commands:
        lines += [".TP", f".BR {esc(_page_name(node))} (1)"]
        lines += paragraphs(short_help(node.command) + ".")
        if node.is_group:
            names = ", ".join(" ".join(leaf.path[2:]) for leaf in node.leaves())
            lines += [_line(f"({esc(names)})")]
    lines.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        lines += [".TP", f".B {name}", text]
    lines += [".SH FILES", ".TP", ".I $XDG_CONFIG_HOME/kcli/config.toml"]
    lines += paragraphs(
        "Connection profiles: bootstrap servers and librdkafka properties (SASL, TLS) "
        "under a name, written by 'kcli profile add' with mode 0600 because it may hold "
        "secrets. Properties given with -X win over the profile's. For example:")
    lines += [".IP", ".nf", *(_line(esc(line)) for line in config_example()), ".fi"]
    lines += [".TP", ".I $KCLI_STATE_DIR/clusters/NAME.json"]
    lines += paragraphs("One per local cluster: its bootstrap address, data directory "
                        "and broker processes (written by 'kcli cluster start'). A command "
                        "without -b uses the one running local cluster; when several run "
                        "it asks for --cluster NAME, and when the only known ones are "
                        "stopped it says so rather than try localhost:9092.")
    lines.append(".SH EXIT STATUS")
    for code, text in exit_codes():
        lines += [".TP", f".B {code}", _line(esc(text))]
    lines += [".SH SEE ALSO", see_also(commands, first=())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- README

README_BEGIN = "<!-- commands: generated by scripts/gen-docs from the app -->"
README_END = "<!-- /commands -->"


def _markdown(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def commands_table(root: Node) -> str:
    """The README's table of commands, one row per top-level command."""
    rows = ["| Command | Subcommands | What it does |", "| --- | --- | --- |"]
    for node in top_level(root):
        subs = " ".join(f"`{' '.join(leaf.path[2:])}`" for leaf in node.leaves()
                        ) if node.is_group else ""
        rows.append(f"| `{node.name}` | {subs} | {_markdown(short_help(node.command))}. |")
    return "\n".join(rows) + "\n"


def readme_with_table(text: str, root: Node) -> str:
    """``text`` with the part between the README markers replaced by the table."""
    head, begin, rest = text.partition(README_BEGIN + "\n")
    _old, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README.md needs the lines {README_BEGIN} and {README_END}")
    return head + begin + commands_table(root) + end + tail


# --------------------------------------------------------------------------- files


def generated(base: Path = REPO) -> dict[str, str]:
    """Every generated file by its path relative to the repository root: man pages,
    completion scripts, and README.md with its table of commands (when ``base`` has
    a README.md)."""
    from kcli.cli.completion import SHELLS, script

    root = root_node()
    commands = top_level(root)
    files = {"man/kcli.1": main_page(root, commands)}
    for node in commands:
        files[f"man/{_page_name(node)}.1"] = command_page(node, commands)
    for shell in SHELLS:
        files[f"completions/kcli.{shell}"] = script(shell)
    readme = base / "README.md"
    if readme.is_file():
        files["README.md"] = readme_with_table(readme.read_text("utf-8"), root)
    return files


STALE_HINT = ("these files are generated from the app and out of date: run scripts/gen-docs "
              "(it rewrites man/, completions/ and README.md's table of commands in one go) "
              "and commit the result")


def stale(base: Path = REPO) -> list[str]:
    """Generated files that are missing or differ under ``base``, and files in man/
    or completions/ that nothing generates any more."""
    files = generated(base)
    out = [name for name, text in files.items()
           if not (base / name).is_file() or (base / name).read_text("utf-8") != text]
    for folder in ("man", "completions"):
        for path in sorted((base / folder).glob("*")) if (base / folder).is_dir() else []:
            if f"{folder}/{path.name}" not in files:
                out.append(f"{folder}/{path.name} (not generated)")
    return out


def write(base: Path = REPO) -> list[str]:
    """Write every generated file, remove leftovers; return the paths that changed."""
    changed = stale(base)
    files = generated(base)
    for name in changed:
        if name.endswith("(not generated)"):
            (base / name.split(" ")[0]).unlink()
            continue
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name], encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """scripts/gen-docs: regenerate man/, completions/ and README.md's table of
    commands (or --check them)."""
    parser = argparse.ArgumentParser(prog="scripts/gen-docs", description=main.__doc__)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if any file is stale")
    parser.add_argument("--root", type=Path, default=REPO, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        out = stale(args.root)
        for name in out:
            print(f"stale: {name}", file=sys.stderr)
        if out:
            print(STALE_HINT, file=sys.stderr)
        return 1 if out else 0
    for name in write(args.root):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
