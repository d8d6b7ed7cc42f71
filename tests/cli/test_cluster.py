"""`kcli cluster`: a local cluster of real broker processes, driven through the entry point."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Kcli
from tests.support.broker import free_port, kill_local_cluster


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
    stopped = run_kcli("cluster", "status", "-o", "json")
    assert stopped.code == 3, stopped.explain()  # scripts can test it, as systemctl's
    assert json.loads(stopped.out)["state"] == "stopped"
    # not a silent fall-back to localhost:9092
    run_kcli("topic", "list").fails(
        3, rf"the local cluster \({cluster_dir}\) is stopped; start it with "
           rf"`kcli cluster start --data-dir {cluster_dir}`")

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
    assert not cluster_dir.exists()  # no lock file or empty directory left behind


def test_kill_restart_and_logs(run_kcli: Kcli, cluster_dir: Path) -> None:
    run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(free_port())).ok()
    run_kcli("cluster", "kill", "1").ok()
    killed = run_kcli("cluster", "status", "-o", "json")
    assert killed.code == 3, killed.explain()
    assert json.loads(killed.out)["brokers"][0]["process"] == "stopped"
    run_kcli("cluster", "kill", "1").fails(1, "not running")
    run_kcli("cluster", "kill", "7").fails(4, "no broker 7")
    run_kcli("cluster", "restart", "1").ok()
    run_kcli("topic", "create", "after-restart").ok()
    logs = run_kcli("cluster", "logs", "1").ok().text
    assert "ready, listening on" in logs
    assert "created topic after-restart" in logs
    run_kcli("cluster", "stop").ok()


def test_start_from_a_folder_holding_a_kcli_folder(cli_env: dict[str, str], cluster_dir: Path,
                                                   tmp_path: Path) -> None:
    """The brokers are not started from whatever `kcli` package the current directory
    holds (`python -m` puts the current directory first on sys.path)."""
    here = tmp_path / "project"
    (here / "kcli").mkdir(parents=True)
    (here / "kcli" / "__init__.py").write_text("raise ImportError('the wrong kcli')\n")
    port = free_port()
    # -P for the command itself: as the installed `kcli` script, it does not run from here
    start = [sys.executable, "-P", "-m", "kcli", "cluster", "start", "--data-dir",
             str(cluster_dir), "--port", str(port)]
    try:
        done = subprocess.run(start, cwd=here, env=cli_env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"127.0.0.1:{port}\n"
    finally:
        subprocess.run([*start[:5], "stop", "--data-dir", str(cluster_dir)], cwd=here,
                       env=cli_env, capture_output=True, timeout=60, check=False)


def test_a_local_cluster_keeps_its_files_to_its_owner(run_kcli: Kcli, cluster_dir: Path) -> None:
    """Records, offsets and metadata are the owner's alone: 0700 directories, 0600 files."""
    run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(free_port())).ok()
    try:
        run_kcli("topic", "create", "private", "-P", "2").ok()
        run_kcli("produce", "private", input=b"one\ntwo\n").ok()
        run_kcli("consume", "private", "-g", "reader").ok()  # __consumer_offsets too
    finally:
        run_kcli("cluster", "stop").ok()
    paths = [cluster_dir, *cluster_dir.rglob("*")]
    assert any(p.suffix == ".log" for p in paths)
    assert any("__consumer_offsets" in p.name for p in paths)
    open_to_others = [f"{p} {p.stat().st_mode & 0o777:o}" for p in paths
                      if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert open_to_others == []


def test_two_local_clusters(run_kcli: Kcli, cli_env: dict[str, str], tmp_path: Path) -> None:
    """A second cluster neither hijacks bare commands nor, once stopped, loses the first;
    a bare command never guesses between running clusters."""
    first, second = Path(cli_env["XDG_DATA_HOME"]) / "kcli" / "cluster", tmp_path / "c2"
    try:
        run_kcli("cluster", "start", "--port", str(free_port())).ok()  # the default cluster
        run_kcli("topic", "create", "in-first").ok()
        run_kcli("cluster", "start", "--data-dir", str(second), "--port", str(free_port())).ok()

        run_kcli("topic", "list").fails(
            2, r"2 local clusters are running: c2 .*; default .*; choose one with --cluster")
        assert "in-first" in run_kcli("topic", "list", "--cluster", "default").ok().text
        assert "in-first" not in run_kcli("--cluster", "c2", "topic", "list").ok().text
        listed = run_kcli("cluster", "status", "-o", "json").ok()
        assert [(c["name"], c["state"]) for c in json.loads(listed.out)["clusters"]] == [
            ("c2", "running"), ("default", "running")]
        run_kcli("cluster", "stop").fails(2, "choose one with --cluster NAME or --data-dir")

        run_kcli("cluster", "stop", "--cluster", "c2").ok()
        assert "in-first" in run_kcli("topic", "list").ok().text  # the first one again
        run_kcli("cluster", "start", "--brokers", "2").fails(
            2, rf"the cluster in {first} is running with 1 broker; to have 2, add brokers "
               r"to it with `kcli cluster add-broker`")
        again = run_kcli("cluster", "start").ok()
        assert "already running" in again.err

        run_kcli("cluster", "stop").ok()
        run_kcli("topic", "list").fails(3, r"no local cluster is running \(known: c2 .*default")
        status = run_kcli("cluster", "status", "--cluster", "default", "-o", "json")
        assert status.code == 3
        assert json.loads(status.out)["state"] == "stopped"
        run_kcli("cluster", "purge", "--yes", "--cluster", "c2").ok()
        run_kcli("produce", "in-first", input=b"x\n").fails(
            3, r"the local cluster \(.*\) is stopped; start it with `kcli cluster start`, or")
    finally:
        for directory in (first, second):
            kill_local_cluster(directory)


def test_a_running_cluster_grows_by_one_broker(run_kcli: Kcli, cluster_dir: Path) -> None:
    """`cluster start --brokers 2` on a running 1-broker cluster says how to grow it;
    `add-broker` does, and partitions move onto the new broker on request."""
    first = free_port(2)  # add-broker takes the next port
    run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(first)).ok()
    try:
        run_kcli("topic", "create", "grown", "-P", "2").ok()
        run_kcli("produce", "grown", input=b"one\ntwo\nthree\n").ok()
        run_kcli("cluster", "start", "--brokers", "2").fails(2, "kcli cluster add-broker")
        added = json.loads(run_kcli("cluster", "add-broker", "-o", "json").ok().out)
        assert added["broker"] == 2
        status = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
        assert [(b["broker"], b["process"]) for b in status["brokers"]] == [
            (1, "running"), (2, "running")]
        moved = json.loads(run_kcli("partition", "move", "grown", "--to", "2,1", "--wait",
                                    "-o", "json").ok().out)
        assert [m["status"] for m in moved["moves"]] == ["done", "done"]
        described = json.loads(run_kcli("topic", "describe", "grown", "-o", "json").ok().out)
        assert [p["replicas"] for p in described["partitions"]] == [[2, 1], [2, 1]]
        values = run_kcli("consume", "grown").ok().text.split()
        assert sorted(values) == ["one", "three", "two"]
    finally:
        run_kcli("cluster", "stop")
