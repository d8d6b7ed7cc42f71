"""`pip install .` into a fresh venv gives a working `kcli`, its man pages and completions.

The package goes in with ``--no-deps``: installing the dependencies themselves would
download textual, confluent-kafka, kio and the rest on every run, and they are already
installed for the test suite. The venv sees them through a ``.pth`` line naming the
running interpreter's site-packages, not ``--system-site-packages``: run from inside a
virtualenv (scripts/test's own), ``venv`` builds on the *base* interpreter, whose
site-packages lack them. A ``.pth`` line adds the directory without running the
``.pth`` files in it, so the checkout's own editable install cannot shadow the one
under test. The build is isolated (pip's default): this builds the same wheel a user's
``pip install .`` builds. The sources are copied first, so the in-tree build leaves
nothing in the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.broker import REPO_ROOT

SOURCES = ("pyproject.toml", "README.md", "kcli", "man", "completions")


def test_pip_install_gives_a_working_kcli(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    where_packages = "import sysconfig; print(sysconfig.get_path('purelib'))"
    venv_site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", where_packages],
                                    capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (venv_site / "test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", "--no-deps", str(source)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr

    kcli = venv / "bin" / "kcli"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "LANG": "C.UTF-8"}
    version = subprocess.run([str(kcli), "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=False)
    assert version.returncode == 0, version.stderr
    from kcli import __version__

    assert version.stdout == f"kcli {__version__}\n"
    usage = subprocess.run([str(kcli), "--help"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, check=False)
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("Usage: kcli ")
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import kcli; print(kcli.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert where.stdout.startswith(str(venv)), "kcli was imported from outside the venv"

    # man-db finds the pages next to the bin/ on PATH; the completions are where
    # bash-completion and fish look under a prefix
    share = venv / "share"
    assert sorted(p.name for p in (share / "man" / "man1").iterdir()) == sorted(
        p.name for p in (REPO_ROOT / "man").iterdir())
    assert (share / "bash-completion" / "completions" / "kcli.bash").is_file()
    assert (share / "fish" / "vendor_completions.d" / "kcli.fish").is_file()
    found = subprocess.run(["man", "-w", "kcli-topic"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, check=False)
    assert found.stdout.strip() == str(share / "man" / "man1" / "kcli-topic.1"), found.stderr
