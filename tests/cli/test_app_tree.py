"""A run builds only the command argv names; the whole tree answers everything else."""

from __future__ import annotations

import pytest
import typer.main

from kcli.cli import app as root
from kcli.cli.completion import COMPLETE_VAR


def _whole() -> typer.main.TyperGroup:
    command = typer.main.get_command(root.build_app())
    assert isinstance(command, typer.main.TyperGroup)
    return command


def test_the_skippable_root_options_are_the_roots_own() -> None:
    options = [p for p in _whole().params if p.name not in ("version", "help")]
    takes_value = {opt for p in options if not getattr(p, "is_flag", False) for opt in p.opts}
    flags = {opt for p in options if getattr(p, "is_flag", False) for opt in p.opts}
    assert takes_value == root.ROOT_VALUE_OPTIONS
    assert flags == root.ROOT_FLAGS


def test_every_command_is_listed_and_built_alone_the_same() -> None:
    whole = _whole()
    assert sorted(whole.commands) == sorted(root.COMMANDS)
    for name in root.COMMANDS:
        alone = typer.main.get_command(root.build_app(name))
        assert list(alone.commands) == [name]  # type: ignore[attr-defined]
        built, expected = alone.commands[name], whole.commands[name]  # type: ignore[attr-defined]
        assert [p.name for p in built.params] == [p.name for p in expected.params]
        assert sorted(getattr(built, "commands", {})) == sorted(getattr(expected, "commands", {}))


@pytest.mark.parametrize(("argv", "named"), [
    (["produce", "t"], "produce"),
    (["-b", "h:9092", "-q", "consume", "t", "-n", "1"], "consume"),
    (["--bootstrap=h:9092", "--debug", "topic", "list"], "topic"),
    (["-X", "acks=all", "-p", "dev", "--timeout", "5", "--cluster", "c", "group", "list"],
     "group"),
    (["-o", "json", "topic"], "topic"),
    (["-b", "produce", "consume"], "consume"),  # a value that spells a command is a value
    ([], None),
    (["--help"], None),
    (["--version"], None),
    (["prodcue"], None),
    (["-bh:9092", "topic"], None),  # glued short values: the whole tree parses them
    (["--bogus", "topic", "list"], None),
    (["-b"], None),
])
def test_command_named(argv: list[str], named: str | None) -> None:
    assert root.command_named(argv) == named


def test_completion_is_answered_by_the_whole_tree() -> None:
    assert root.COMPLETING == COMPLETE_VAR


def test_the_whole_tree_is_the_modules_app() -> None:
    whole = typer.main.get_command(root.app)
    assert sorted(whole.commands) == sorted(root.COMMANDS)  # type: ignore[attr-defined]
