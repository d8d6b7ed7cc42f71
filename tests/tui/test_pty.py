"""The real `kcli tui` entry point in a real terminal (pexpect): it finds the cluster the
way every command does (local cluster, profile), shows the cluster screen, says so when
the cluster is unreachable, and quits with q. Without a terminal, one line and exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.support.broker import BrokerProcess, free_port, kcli_command, kcli_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """kcli's environment with a private config and state dir and no default cluster."""
    out = kcli_env()
    out["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out["KCLI_STATE_DIR"] = str(tmp_path / "state")
    out["TERM"] = "xterm-256color"
    for name in ("KCLI_PROFILE", "KCLI_DEBUG", "KCLI_TIMEOUT", "TEXTUAL"):
        out.pop(name, None)
    return out


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    command = kcli_command(*args)
    return pexpect.spawn(command[0], command[1:], env=env, timeout=20, dimensions=(24, 80),
                         encoding="utf-8", codec_errors="replace")


def quit_with_q(child: pexpect.spawn) -> str:
    """Press q; the program must end promptly, cleanly, without a traceback."""
    started = time.monotonic()
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    seen = child.before or ""
    assert child.exitstatus == 0, seen[-2000:]
    assert time.monotonic() - started < 5
    assert "Traceback" not in seen
    return seen


def test_tui_finds_the_local_cluster_and_quits_with_q(env: dict[str, str], tmp_path: Path,
                                                       broker: BrokerProcess) -> None:
    # what `kcli cluster start` leaves behind: `kcli tui` needs no flags after it
    assert broker.process is not None
    data_dir = tmp_path / "cluster"
    data_dir.mkdir()
    record = json.dumps({
        "name": "dev", "bootstrap": broker.bootstrap, "data_dir": str(data_dir),
        "brokers": [{"node_id": 1, "port": broker.port, "pid": broker.process.pid}]})
    registry = Path(env["KCLI_STATE_DIR"]) / "clusters"
    registry.mkdir(parents=True)
    (registry / "dev.json").write_text(record)
    (data_dir / "cluster.json").write_text(record)
    child = spawn(env, "tui")
    child.expect_exact("1 Cluster")
    child.expect_exact("Brokers 1")
    child.expect_exact(f"{broker.bootstrap} · polled")
    quit_with_q(child)


def test_tui_honours_the_profile(env: dict[str, str], bootstrap: str) -> None:
    config = Path(env["XDG_CONFIG_HOME"]) / "kcli"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'[profiles.dev]\nbootstrap = "{bootstrap}"\n')
    (config / "config.toml").chmod(0o600)
    child = spawn(env, "-p", "dev", "tui", "--interval", "0.5")
    child.expect_exact("Brokers 1")
    child.expect_exact(f"{bootstrap} · polled")
    child.expect_exact("every 0.5 s")
    quit_with_q(child)


def test_tui_unreachable_cluster_says_so_and_quits(env: dict[str, str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    child = spawn(env, "-b", address, "tui")
    child.expect_exact(f"cannot reach {address}")
    child.expect_exact("retrying every 2 s")
    child.send("2")  # the screen still answers
    child.expect_exact("filter topics")
    quit_with_q(child)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["tui"], 2, "kcli tui needs a terminal"),
    (["tui", "--interval", "0"], 2, "--interval must be at least 0.2 seconds"),
    (["tui", "--interval", "x"], 2, "Invalid value for '-i' / '--interval'"),
    (["-p", "nope", "tui"], 4, "no profile named 'nope'"),
])
def test_tui_bad_invocations_fail_in_one_line(env: dict[str, str], args: list[str], code: int,
                                              message: str) -> None:
    done = subprocess.run(kcli_command(*args), env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30, check=False)
    err = done.stderr.decode()
    assert done.returncode == code, err
    assert err.count("\n") == 1, err
    assert err.startswith("kcli: error: ")
    assert message in err
    assert done.stdout == b""


def test_the_dashboard_is_not_imported_until_run(env: dict[str, str]) -> None:
    code = ("import sys, kcli.cli.app; "
            "print(','.join(m for m in ('textual', 'kcli.tui') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == ""
    help_text = subprocess.run(kcli_command("--help"), capture_output=True, text=True,
                               env=env, check=True).stdout
    assert re.search(r"^\s+tui\s+Live dashboard", help_text, re.MULTILINE), help_text
