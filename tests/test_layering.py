"""The import rules in pyproject.toml ([tool.importlinter]) hold, and each one bites: a copy
of the package with one bad import added fails `lint-imports`, naming the broken rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import REPO_ROOT

pytestmark = pytest.mark.system  # lint-imports runs in a child, as scripts/test runs it

LINT_IMPORTS = [sys.executable, "-c",
                "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` in ``root``, which finds the package there first on its path."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([*LINT_IMPORTS, "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken." in done.stdout, done.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """This checkout's package and pyproject.toml in a temp dir (sources only)."""
    shutil.copytree(REPO_ROOT / "kcli", tmp_path / "kcli",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add(root: Path, module: str, source: str) -> None:
    """Append ``source`` to kcli/<module>.py (the module is made if it is new)."""
    path = root / "kcli" / f"{module.replace('.', '/')}.py"
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n{source}\n")


def test_the_copy_is_what_gets_checked(copy: Path) -> None:
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr


BAD = [
    ("broker/server", "import typer",
     "kcli.broker imports nothing from typer, rich or textual BROKEN"),
    ("broker/log/segment", "from rich.console import Console",
     "kcli.broker imports nothing from typer, rich or textual BROKEN"),
    ("broker/server", "from kcli import errors",
     "kcli.broker imports nothing else from kcli (but kcli.durable, a leaf) BROKEN"),
    ("output/table", "import confluent_kafka",
     "only kcli.client and kcli.backup import confluent_kafka BROKEN"),
    ("tui/widgets/tables", "from kcli.client import cluster",
     "dashboard screens and widgets never import kcli.client: they hold the service BROKEN"),
    ("client/cluster", "from kcli.cli import common",
     "imports point one way: cli, then tui, then the library, then errors and durable BROKEN"),
]


@pytest.mark.parametrize(("module", "source", "broken"), BAD,
                         ids=[f"{m}:{s}" for m, s, _ in BAD])
def test_a_bad_import_fails_the_check(copy: Path, module: str, source: str,
                                      broken: str) -> None:
    add(copy, module, source)
    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout


def test_the_broker_may_use_kcli_durable_a_leaf(copy: Path) -> None:
    add(copy, "durable", '"""Durable files."""\nimport os')
    add(copy, "broker/server", "from kcli import durable")
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr

    add(copy, "durable", "from kcli import errors")  # no longer a leaf
    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{BAD[-1][2]}" in done.stdout, done.stdout  # the layers contract
