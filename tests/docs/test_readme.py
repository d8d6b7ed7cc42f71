"""README.md cannot rot: its runnable blocks run, every other kcli command parses.

The tour runs as a newcomer would type it: each command in a pty (tables, as on a
terminal), through `bash -c` with `kcli` on PATH (and its man pages where `man` finds
them), in a private home, config, data and state directory. The liberties taken:
``kcli cluster start`` gets ``--port`` with a free port (the README's 9092 may be taken)
and ``:9092`` in commands and expected output becomes that port; ``man`` prints without
a pager (MANPAGER=cat). The cluster is purged at the end whatever happened.
tests/docs/readme.py says how blocks, commands and expected output are read.

Commands built on other branches are PENDING: the README may show them (the set-up
line's ``kcli tui``; ``<!-- pending: backup .. -->`` blocks), the tour does not run them,
the parse test asserts they do not parse yet, the terminal summary names every command
not run, and the tests fail as soon as a pending command exists, saying what to change.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.cli.docs import (
    README_BEGIN,
    README_END,
    STALE_HINT,
    is_argument,
    root_node,
    value_name,
)
from tests.docs import readme
from tests.support.broker import REPO_ROOT, free_port

README = REPO_ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = readme.blocks(TEXT)
RUN = [command for block in BLOCKS if block.runnable for command in block.commands]
PARSE = [(command.line, argv) for block in BLOCKS for command in block.commands
         for argv in readme.kcli_invocations(command.text)]

PENDING: dict[str, str] = {}
"""The documented exclusion list: top-level commands the README names before they exist
on this branch. Once one exists, delete its entry and turn its README blocks'
``<!-- pending: .. -->`` marker into ``<!-- run -->``."""



@functools.cache
def _valued_global_options() -> frozenset[str]:
    return frozenset(name for param in root_node().params()
                     if not is_argument(param) and value_name(param) is not None
                     for name in param.opts)


def top_level(argv: list[str]) -> str | None:
    """The top-level command of a kcli command line: its first word that is neither a
    global option nor the value of one (``kcli -p prod topic list`` -> ``topic``)."""
    words = iter(argv[1:])
    for word in words:
        if word in _valued_global_options():
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _pending(argv: list[str]) -> bool:
    return top_level(argv) in PENDING


def not_run() -> list[tuple[int, str, list[str]]]:
    """(line, command, pending commands it uses) of every README command using a pending
    command: the commands of pending blocks, which the tour does not run, and the other
    lines naming one, which are only parsed. The terminal summary names each."""
    out = []
    for block in BLOCKS:
        for command in block.commands:
            names = sorted({str(top_level(argv)) for argv in
                            readme.kcli_invocations(command.text) if _pending(argv)})
            if names or block.pending:
                out.append((command.line, command.text, names))
    return out


_NOISE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r|.\x08")
"""Terminal escapes, carriage returns and man's overstrikes (bold, underline)."""



def adapt(command: str, port: int) -> str:
    """The README's command with the test cluster's port."""
    command = re.sub(r"\bkcli cluster start\b(?![^|;&\n]*--port)",
                     f"kcli cluster start --port {port}", command)
    return command.replace(":9092", f":{port}")


@pytest.fixture
def tour_env(user_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A newcomer's environment; the local cluster it starts is purged at the end."""
    env = dict(user_env, TERM="xterm", COLUMNS="100", LINES="40", MANPAGER="cat")
    env.pop("KCLI_BOOTSTRAP", None)
    yield env
    subprocess.run(["kcli", "cluster", "purge", "--yes"], env=env, capture_output=True,
                   timeout=60, check=False, cwd=env["HOME"])


def run_in_pty(command: str, env: dict[str, str]) -> tuple[int, str]:
    """Exit status and screen output of ``bash -c command`` on a terminal."""
    import pexpect  # here, not at the top: that would put every test here in the pty lane

    child = pexpect.spawn("bash", ["-c", "set -o pipefail\n" + command], env=env,
                          cwd=env["HOME"], encoding="utf-8", timeout=120,
                          dimensions=(40, 100))
    child.expect(pexpect.EOF)
    child.close()
    output = _NOISE.sub("", child.before or "")
    status = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return status, output


@pytest.mark.pty
def test_the_readme_runs(tour_env: dict[str, str]) -> None:
    assert len(RUN) >= 25, "the README lost its runnable tour"
    port = free_port()
    for command in RUN:
        text = adapt(command.text, port)
        expected = [line.replace(":9092", f":{port}") for line in command.expected]
        status, output = run_in_pty(text, tour_env)
        where = f"README.md line {command.line}: {command.text}\n--- output\n{output}"
        assert status == 0, f"exit status {status}\n{where}"
        missing = readme.unmatched(expected, output)
        assert not missing, f"expected lines not printed: {missing}\n{where}"
    home = Path(tour_env["HOME"])
    assert (home / ".zfunc" / "_kcli").read_text() == (REPO_ROOT / "completions" /
                                                       "kcli.zsh").read_text()


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    first = BLOCKS[0]
    assert first.line == 3
    assert [c.text.split("#")[0].strip() for c in first.commands] == [
        "pip install . && kcli cluster start && kcli tui", "./scripts/test"]


def test_the_table_of_commands_is_generated() -> None:
    assert README_BEGIN in TEXT
    assert README_END in TEXT
    for node in root_node().children():
        assert f"| `{node.name}` |" in TEXT, f"no row for {node.name}: {STALE_HINT}"


def _parses(argv: list[str]) -> None:
    """Parse a kcli command line with the app's own parser, running nothing."""
    from typer._click.exceptions import NoArgsIsHelpError
    from typer.exceptions import Exit

    root = root_node().command
    try:
        ctx = root.make_context("kcli", argv[1:])
        command, args = root, ctx._protected_args + ctx.args
        while hasattr(command, "resolve_command") and args:
            name, sub, args = command.resolve_command(ctx, args)
            assert sub is not None
            assert name is not None
            ctx = sub.make_context(name, args, parent=ctx)
            command, args = sub, ctx._protected_args + ctx.args
    except (Exit, NoArgsIsHelpError):  # --help, --version, a bare group: fine
        return


def _landed_message(name: str) -> str:
    lines = [block.line for block in BLOCKS if name in block.pending]
    return (f"kcli {name} exists now: delete PENDING[{name!r}] in tests/docs/test_readme.py"
            + (f" and turn the <!-- pending: .. --> markers above README.md lines {lines} "
               "into <!-- run -->" if lines else ""))


@pytest.mark.parametrize(
    "argv", [pytest.param(argv, id=f"line{line}:{' '.join(argv)[:60]}")
             for line, argv in PARSE if not _pending(argv)])
def test_every_kcli_command_in_the_readme_parses(argv: list[str]) -> None:
    _parses(argv)


def test_pending_commands_do_not_exist_yet() -> None:
    """The exclusion list is exact: each entry is a command still missing here that the
    README names, and each README line using it fails to parse for that reason alone.
    (One test, not one per entry: an empty parameter list would be a silent skip.)"""
    from typer._click.exceptions import UsageError

    existing = {node.path[-1] for node in root_node().children()}
    for name in PENDING:
        assert name not in existing, _landed_message(name)
        assert any(top_level(argv) == name for _line, argv in PARSE), (
            f"the README names no kcli {name} any more: delete PENDING[{name!r}]")
    for line, argv in PARSE:
        if not _pending(argv):
            continue
        where = f"README.md line {line}: {' '.join(argv)}"
        problem = ""
        try:
            _parses(argv)
            problem = f"{where} parses: {_landed_message(str(top_level(argv)))}"
        except UsageError as error:
            if "No such command" not in str(error):
                problem = f"{where}: {error}"
        assert not problem, problem


def test_pending_blocks_name_exactly_their_pending_commands() -> None:
    for block in BLOCKS:
        used = {top_level(argv) for command in block.commands
                for argv in readme.kcli_invocations(command.text) if _pending(argv)}
        where = f"README.md block at line {block.line}"
        if block.runnable:
            assert not used, f"{where} runs pending commands {used}: mark it pending"
        elif block.pending:
            assert set(block.pending) == used, (
                f"{where} is marked pending on {block.pending} but uses {sorted(used)}")
            assert all(command.expected for command in block.commands), (
                f"{where}: show each command's output, so it can be checked once it runs")


def test_top_level_skips_global_options_and_their_values() -> None:
    assert top_level(["kcli", "-p", "prod", "-X", "a=b", "--debug", "topic", "list"]) == "topic"
    assert top_level(["kcli", "--bootstrap=h:1", "consume", "t"]) == "consume"
    assert top_level(["kcli", "--version"]) is None


def test_the_parser_check_has_teeth() -> None:
    from typer._click.exceptions import UsageError

    _parses(["kcli", "-b", "x:1", "topic", "create", "t", "-P", "3"])
    for bad in (["kcli", "topik", "list"], ["kcli", "topic", "create"],
                ["kcli", "topic", "create", "t", "--partitions", "many"],
                ["kcli", "consume", "t", "--no-such-flag"]):
        with pytest.raises(UsageError):
            _parses(bad)


# --------------------------------------------------------------------------- the reader


SAMPLE = """\
# Title

```sh
kcli not-run
```

<!-- run -->
```sh
$ kcli topic list \\
    -o json
[...]
$ echo done
done
```

<!-- run -->
```sh
# a comment
mkdir -p ~/x
KCLI_PROFILE=p kcli completion zsh > ~/x/_kcli && eval "$(kcli completion bash)"
```
"""


def test_blocks_commands_and_expected_output() -> None:
    found = readme.blocks(SAMPLE)
    assert [(b.line, b.runnable) for b in found] == [(3, False), (8, True), (17, True)]
    assert [c.text for c in found[0].commands] == ["kcli not-run"]
    topic, echo = found[1].commands
    assert (topic.line, topic.text, topic.expected) == (9, "kcli topic list \\\n    -o json",
                                                        ["[...]"])
    assert (echo.text, echo.expected) == ("echo done", ["done"])
    assert [c.text for c in found[2].commands] == [
        "mkdir -p ~/x",
        'KCLI_PROFILE=p kcli completion zsh > ~/x/_kcli && eval "$(kcli completion bash)"']


def test_kcli_invocations() -> None:
    line = 'KCLI_PROFILE=p kcli completion zsh > ~/x/_kcli && eval "$(kcli completion bash)"'
    assert sorted(readme.kcli_invocations(line)) == [["kcli", "completion", "bash"],
                                                     ["kcli", "completion", "zsh"]]
    assert readme.kcli_invocations("kcli consume a -o jsonl | kcli produce b -f json") == [
        ["kcli", "consume", "a", "-o", "jsonl"], ["kcli", "produce", "b", "-f", "json"]]
    assert readme.kcli_invocations("printf 'x\\n' | kcli produce t -K : # comment") == [
        ["kcli", "produce", "t", "-K", ":"]]
    assert readme.kcli_invocations("pip install . && kcli cluster start") == [
        ["kcli", "cluster", "start"]]
    assert readme.kcli_invocations("kcli topic list \\\n    -o json") == [
        ["kcli", "topic", "list", "-o", "json"]]


def test_loose_matching() -> None:
    output = "NAME     PARTITIONS\n──────\norders          3   \nproduced 3 in 0.01s\n"
    assert readme.unmatched(["orders 3", "NAME PARTITIONS", "produced 3 in ..."], output) == []
    assert readme.unmatched(["orders 4"], output) == ["orders 4"]
    assert readme.unmatched(["orders ...", "orders ..."], output) == ["orders ..."]


def test_pending_blocks_are_read() -> None:
    text = "<!-- pending: backup restore -->\n```sh\n$ kcli backup t --to d\nok\n```\n"
    (block,) = readme.blocks(text)
    assert (block.runnable, block.pending) == (False, ("backup", "restore"))
    assert [(c.text, c.expected) for c in block.commands] == [("kcli backup t --to d", ["ok"])]
    assert readme.blocks(SAMPLE)[1].pending == ()


def test_man_overstrikes_are_noise() -> None:
    assert _NOISE.sub("", "N\x08NA\x08AM\x08ME\x08E _\x08T_\x08O\r\n") == "NAME TO\n"


def test_the_port_is_substituted_only_where_none_is_given() -> None:
    assert adapt("kcli migrate t --to 127.0.0.1:9092", 7) == "kcli migrate t --to 127.0.0.1:7"
    assert adapt("kcli cluster start", 1234) == "kcli cluster start --port 1234"
    assert adapt("kcli cluster start --port 9", 1234) == "kcli cluster start --port 9"
    assert adapt("kcli cluster start --brokers 3 && kcli topic list", 7) == (
        "kcli cluster start --port 7 --brokers 3 && kcli topic list")
