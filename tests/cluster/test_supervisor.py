"""`kcli cluster` with three brokers: one cluster, failure drills visible in `status`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import wait_for
from tests.support.broker import free_port, kcli_command, kcli_env, kill_local_cluster

pytestmark = pytest.mark.cluster  # `kcli cluster start`, with its own data-dir fixture


class Kcli:
    """Runs the kcli entry point with a private config and state directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = kcli_env()
        self.env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
        self.env["KCLI_STATE_DIR"] = str(tmp_path / "state")

    def __call__(self, *args: str, codes: tuple[int, ...] = (0,)) -> str:
        done = subprocess.run(kcli_command(*args), capture_output=True, env=self.env,
                              timeout=90, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode in codes, (args, done.stdout, done.stderr)
        return done.stdout.decode()

    def status(self) -> dict[str, Any]:
        """`cluster status`, which exits 1 while the cluster is degraded."""
        doc: dict[str, Any] = json.loads(self("cluster", "status", "-o", "json", codes=(0, 1)))
        assert doc["state"] in ("running", "degraded")
        return doc


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "cluster"
    yield directory
    kill_local_cluster(directory)


def test_three_brokers_one_cluster_through_a_crash(tmp_path: Path, data_dir: Path) -> None:
    kcli = Kcli(tmp_path)
    port = free_port(3)
    out = kcli("cluster", "start", "--brokers", "3", "--data-dir", str(data_dir),
               "--port", str(port))
    assert out.split(",")[0] == f"127.0.0.1:{port}"
    kcli("topic", "create", "drill", "-P", "3")
    status = kcli.status()
    assert [b["process"] for b in status["brokers"]] == ["running"] * 3
    assert status["controller"] in (1, 2, 3)
    wait_for(lambda: kcli.status()["under_replicated_partitions"] == 0, 20, "in sync")
    described = json.loads(kcli("topic", "describe", "drill", "-o", "json"))
    assert described["replication"] == 3  # the local cluster's default
    assert {p["leader"] for p in described["partitions"]} == {1, 2, 3}
    assert all(sorted(p["isr"]) == [1, 2, 3] for p in described["partitions"])

    kcli("cluster", "kill", "2")
    assert kcli.status()["state"] == "degraded"
    kcli("cluster", "status", codes=(1,))  # what scripts test
    wait_for(lambda: kcli.status()["under_replicated_partitions"] > 0, 20, "under-replicated")
    assert kcli.status()["offline_partitions"] == 0  # every partition moved to a live leader
    kcli("cluster", "restart", "2")
    wait_for(lambda: kcli.status()["under_replicated_partitions"] == 0, 30, "back in sync")
    kcli("cluster", "stop")
