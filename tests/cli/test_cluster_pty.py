"""`kcli cluster start --foreground` and `kcli cluster logs --follow` in a real terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect

from tests.cli.conftest import Kcli
from tests.support.broker import free_port, kcli_command


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    command = kcli_command(*args)
    return pexpect.spawn(command[0], command[1:], env=env, timeout=60, dimensions=(24, 120))


def test_foreground_cluster_stops_on_ctrl_c_and_logs_follow(
    run_kcli: Kcli, cluster_dir: Path, cli_env: dict[str, str],
) -> None:
    port = free_port()
    attached = spawn(cli_env, "cluster", "start", "--foreground",
                     "--data-dir", str(cluster_dir), "--port", str(port))
    attached.expect_exact(f"127.0.0.1:{port}")
    attached.expect_exact("Ctrl-C stops the cluster")

    follower = spawn(cli_env, "cluster", "logs", "--follow", "--lines", "0")
    # The follower starts at the log's end once it has read it, which may come after
    # a topic created at once: create topics until one is followed.
    for attempt in range(30):
        run_kcli("topic", "create", f"followed-{attempt}").ok()
        if follower.expect_exact(["created topic followed-", pexpect.TIMEOUT], timeout=2) == 0:
            break
    else:
        raise AssertionError(f"no created topic was followed: {follower.before!r}")
    assert b"ready, listening on" not in follower.before  # --lines 0 skips the past
    follower.sendintr()
    follower.expect(pexpect.EOF)
    follower.close()
    assert follower.exitstatus == 130

    attached.sendintr()
    attached.expect_exact("cluster stopped")
    attached.expect(pexpect.EOF)
    attached.close()
    assert attached.exitstatus == 0
    stopped = run_kcli("cluster", "status", "-o", "json")
    assert stopped.code == 3, stopped.explain()
    assert json.loads(stopped.out)["running"] is False
