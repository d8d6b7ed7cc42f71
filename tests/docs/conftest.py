"""Fixtures for the docs tests: a `kcli` command on PATH, as a user's shell would find it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.broker import REPO_ROOT, kcli_env


@pytest.fixture(scope="session")
def kcli_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an executable `kcli` that runs this checkout."""
    directory = tmp_path_factory.mktemp("bin")
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
    for name in ("KCLI_PROFILE", "KCLI_DEBUG", "KCLI_TIMEOUT", "_KCLI_COMPLETE"):
        env.pop(name, None)
    return env
