"""`kcli cluster`: a local cluster of real broker processes, driven through the entry point."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.cli.conftest import Kcli
from tests.support.broker import free_port


def test_start_use_stop_start_purge(run_kcli: Kcli, cluster_dir: Path) -> None:
    port = free_port()
    started = run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(port))
    assert started.ok().text == f"127.0.0.1:{port}\n"

    again = run_kcli("cluster", "start", "--data-dir", str(cluster_dir)).ok()
    assert "already running" in again.err

    # other commands find the cluster without -b
    run_kcli("topic", "create", "kept", "-P", "2").ok()
    run_kcli("produce", "kept", input=b"one\ntwo\n").ok()
    status = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
    assert status["running"] is True
    assert status["controller"] == 1
    assert status["topics"] == 1
    assert status["partitions"] == 2
    assert status["under_replicated_partitions"] == 0
    assert [b["process"] for b in status["brokers"]] == ["running"]

    run_kcli("cluster", "stop").ok()
    stopped = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
    assert stopped["running"] is False
    run_kcli("topic", "list", "--timeout", "2").fails(3, "cannot reach")

    run_kcli("cluster", "start").ok()  # the same cluster again, data kept
    values = run_kcli("consume", "kept", "-f", "raw").ok().text.split()
    assert sorted(values) == ["one", "two"]

    run_kcli("cluster", "purge").fails(2, "confirmation")
    run_kcli("cluster", "purge", "--yes").ok()
    assert not cluster_dir.exists()
    run_kcli("cluster", "status", "--data-dir", str(cluster_dir)).fails(4, "no local cluster")


def test_busy_port_is_a_clear_error(run_kcli: Kcli, cluster_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(port)).fails(
            1, f"port {port} is already in use")


def test_kill_restart_and_logs(run_kcli: Kcli, cluster_dir: Path) -> None:
    run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(free_port())).ok()
    run_kcli("cluster", "kill", "1").ok()
    status = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
    assert status["brokers"][0]["process"] == "stopped"
    run_kcli("cluster", "kill", "1").fails(1, "not running")
    run_kcli("cluster", "kill", "7").fails(4, "no broker 7")
    run_kcli("cluster", "restart", "1").ok()
    run_kcli("topic", "create", "after-restart").ok()
    logs = run_kcli("cluster", "logs", "1").ok().text
    assert "ready, listening on" in logs
    assert "created topic after-restart" in logs
    run_kcli("cluster", "stop").ok()


def test_start_from_a_directory_holding_a_kcli_folder(cli_env: dict[str, str], cluster_dir: Path,
                                                       tmp_path: Path) -> None:
    import shutil
    import stat
    import subprocess
    import sys

    workdir = tmp_path / "project"
    (workdir / "kcli").mkdir(parents=True)
    (workdir / "kcli" / "__init__.py").write_text("# not kcli\n")
    entry = shutil.which("kcli", path=str(Path(sys.executable).parent)) or shutil.which("kcli")
    assert entry is not None, "the kcli console script is not installed"

    def kcli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([entry, *args], cwd=workdir, env=cli_env, capture_output=True,
                              text=True, timeout=90, check=False)

    port = free_port()
    started = kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"127.0.0.1:{port}\n"
    stopped = kcli("cluster", "stop", "--data-dir", str(cluster_dir))
    assert stopped.returncode == 0, stopped.stderr
    for path in [cluster_dir, *cluster_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
