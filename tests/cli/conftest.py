"""Helpers for CLI tests: run the real `kcli` entry point as a subprocess, in an
isolated config/state directory, against the session broker."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.broker import kcli_command, kcli_env, kill_local_cluster

GOLDEN = Path(__file__).parent / "golden"


@dataclass
class Run:
    """The outcome of one kcli process."""

    args: Sequence[str]
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        """stdout as text."""
        return self.out.decode("utf-8")

    def explain(self) -> str:
        """What to print when an assertion fails."""
        return (f"kcli {' '.join(self.args)} -> {self.code}\n--- stdout\n"
                f"{self.out.decode(errors='replace')[:4000]}\n--- stderr\n{self.err[:4000]}")

    def ok(self) -> Run:
        """Assert exit code 0 and return self."""
        assert self.code == 0, self.explain()
        return self

    def fails(self, code: int, pattern: str) -> Run:
        """Assert a failure: exit code, exactly one stderr line matching, no traceback."""
        assert self.code == code, self.explain()
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.explain()
        assert lines[0].startswith("kcli: error: "), self.explain()
        assert re.search(pattern, lines[0]), self.explain()
        assert "Traceback" not in self.err, self.explain()
        return self


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for kcli: this checkout, a private config and state dir, fixed width."""
    env = kcli_env()
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["KCLI_STATE_DIR"] = str(tmp_path / "state")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the default cluster's home
    env["COLUMNS"] = "100"
    env["KCLI_TIMEOUT"] = "15"  # a failure reports in seconds, not the default 30
    for name in ("KCLI_PROFILE", "KCLI_DEBUG"):
        env.pop(name, None)
    return env


Kcli = Callable[..., Run]


@pytest.fixture
def run_kcli(cli_env: dict[str, str]) -> Kcli:
    """Run kcli with no default bootstrap: kcli(*args, input=b"", env={...})."""

    def run(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Run:
        merged = dict(cli_env)
        merged.update(env or {})
        done = subprocess.run(kcli_command(*args), input=input if input is not None else b"",
                              capture_output=True, env=merged, timeout=timeout, check=False)
        return Run(args, done.returncode, done.stdout, done.stderr.decode(errors="replace"))

    return run


@pytest.fixture
def kcli(run_kcli: Kcli, bootstrap: str) -> Kcli:
    """Run kcli against the session broker (-b before the subcommand)."""

    def run(*args: str, **kwargs: object) -> Run:
        return run_kcli("-b", bootstrap, *args, **kwargs)  # type: ignore[arg-type]

    return run


@pytest.fixture
def topic(kcli: Kcli, topic_name: str) -> str:
    """A fresh 3-partition topic."""
    kcli("topic", "create", topic_name, "-P", "3").ok()
    return topic_name


def golden(name: str, actual: str, replacements: dict[str, str] | None = None) -> None:
    """Compare with tests/cli/golden/NAME after replacing volatile strings (padded with
    '_' to the same length, so table columns keep their widths); set
    KCLI_UPDATE_GOLDEN=1 to rewrite the files."""
    for old, new in (replacements or {}).items():
        actual = actual.replace(old, new.ljust(len(old), "_"))
    path = GOLDEN / name
    if os.environ.get("KCLI_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs:\n--- expected\n{expected}\n--- actual\n{actual}"


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir for one test's cluster; any broker left running is killed afterwards."""
    directory = tmp_path / "cluster"
    yield directory
    kill_local_cluster(directory)
