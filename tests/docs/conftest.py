"""Fixtures for the docs tests: a `kcli` command on PATH, as a user's shell would find it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.broker import REPO_ROOT, kcli_env


@pytest.fixture(scope="session")
def kcli_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an executable `kcli` that runs this checkout, laid out as
    `pip install` lays out a prefix: ``PREFIX/bin/kcli`` and the man pages in
    ``PREFIX/share/man/man1``, where man-db finds them for a ``bin/`` on PATH."""
    prefix = tmp_path_factory.mktemp("prefix")
    (prefix / "share" / "man").mkdir(parents=True)
    (prefix / "share" / "man" / "man1").symlink_to(REPO_ROOT / "man")
    directory = prefix / "bin"
    directory.mkdir()
    script = directory / "kcli"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" '
                      f'exec "{sys.executable}" -m kcli "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return directory


@pytest.fixture
def user_env(kcli_bin: Path, tmp_path: Path) -> dict[str, str]:
    """A user's environment: `kcli` on PATH, a private home, config and state."""
    env = kcli_env()
    env["PATH"] = f"{kcli_bin}{os.pathsep}{env.get('PATH', '')}"
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["XDG_STATE_HOME"] = str(home / ".local" / "state")
    env["KCLI_STATE_DIR"] = str(tmp_path / "state")
    for name in ("KCLI_PROFILE", "KCLI_DEBUG", "KCLI_TIMEOUT", "_KCLI_COMPLETE", "MANPATH"):
        env.pop(name, None)
    return env


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the README commands the tour did not run because their command is still
    being built elsewhere (tests/docs/test_readme.py, PENDING): never a silent skip."""
    ran = any("tests/docs/test_readme.py::test_the_readme_runs" in getattr(report, "nodeid", "")
              for key, reports in terminalreporter.stats.items() if key != "deselected"
              for report in reports)
    if not ran:
        return
    from tests.docs.test_readme import PENDING, not_run

    lines = not_run()
    if lines:
        terminalreporter.section("README.md commands not run: they use pending commands")
        for line, text, names in lines:
            why = "; ".join(f"kcli {name}: {PENDING[name]}" for name in names)
            terminalreporter.write_line(f"line {line}: {text}  ({why})")
