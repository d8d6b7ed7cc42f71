"""`--help` reads like git's or rpk's: no framework internals, nothing cut mid-word,
commands in sections, the global options once."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import typer.main

from kcli.cli.app import app
from tests.support.broker import kcli_command, kcli_env

pytestmark = pytest.mark.system  # each help is a fresh kcli process

INTERNALS = re.compile(r"<[a-z][\w\[\], ]*>|\{[A-Z_.|]+\}|\[\[|\]\]|\[x[<>]=|\.\.\.\]\.\.\."
                       r"|\w\.\.\s*$")


def command_paths() -> list[list[str]]:
    """Every group and command of the app, as argv after `kcli`."""
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def help_of(path: list[str]) -> str:
    env = kcli_env()
    env["COLUMNS"] = "200"  # wider than any terminal: the text itself must fit in 80
    done = subprocess.run(kcli_command(*path, "--help"), capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, (path, done.stderr)
    return done.stdout


def test_every_help_is_clean_and_fits_80_columns() -> None:
    paths = command_paths()
    assert ["topic", "create"] in paths
    with ThreadPoolExecutor(4) as pool:
        helps = dict(zip(map(" ".join, paths), pool.map(help_of, paths), strict=True))
    for name, text in helps.items():
        for line in text.splitlines():
            assert len(line) <= 80, (name, line)
            assert not INTERNALS.search(line), (name, line)
        if name:  # a command or group: its own options, the global ones by reference
            assert "--bootstrap" not in text, name
            assert "KCLI_BOOTSTRAP" not in text, name


def test_root_help_groups_commands_and_shows_global_options_once() -> None:
    text = help_of([])
    assert text.count("--bootstrap HOST:PORT") == 1
    sections = re.findall(r"^(\w[\w ]+):$", text, re.MULTILINE)
    assert sections == ["Global options", "Local cluster", "Topics and data",
                        "Consumer groups", "Backup and migration", "Dashboard",
                        "Security", "Setup and tools"]
    listed = re.findall(r"^  ([a-z][a-z-]*) +(\S.*)$", text, re.MULTILINE)
    assert [name for name, _ in listed][:5] == ["cluster", "broker", "topic", "produce",
                                                "consume"]
    starts = {line.index(summary) for line in text.splitlines()
              for name, summary in listed if line.startswith(f"  {name} ")}
    assert len(starts) == 1  # one column across sections
    assert all(not summary.endswith(("...", "..")) for _name, summary in listed)


def test_a_command_help_points_at_the_global_options() -> None:
    text = help_of(["topic", "create"])
    assert text.startswith("Usage: kcli topic create [OPTIONS] TOPIC\n")
    assert "  -P, --partitions N " in text
    assert text.rstrip().endswith(
        "Global options (-b -p -X -o -q --debug --timeout --cluster): see kcli --help.")
    assert help_of(["cluster", "logs"]).startswith("Usage: kcli cluster logs [OPTIONS] [BROKER]")
    assert help_of(["topic", "delete"]).startswith(
        "Usage: kcli topic delete [OPTIONS] TOPIC_OR_GLOB...")


@pytest.mark.parametrize("path", [[], ["topic"], ["-b", "localhost:1", "group"]])
def test_a_missing_command_shows_the_help_as_it_reads(path: list[str]) -> None:
    """`kcli` or `kcli topic` alone: the help, line by line on stderr, and the usage exit
    code; not the help squashed into one `kcli: error:` line."""
    done = subprocess.run(kcli_command(*path), capture_output=True, text=True,
                          env=kcli_env(), timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("Usage: kcli")
    assert "error" not in done.stderr.splitlines()[0]
    assert "\nCommands:\n" in done.stderr or "\nLocal cluster:\n" in done.stderr
