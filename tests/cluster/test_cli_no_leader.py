"""The CLI against a partition whose only replica is down: exit 3, and why."""

from __future__ import annotations

import subprocess
import uuid

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import wait_for
from tests.support.broker import kcli_command, kcli_env


def test_consuming_a_partition_with_no_leader_is_unreachable(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster(2).start()
    topic = f"leaderless-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, partitions=2, replication=1)
    victim = cluster.leader(topic, 1)
    survivor = 1 if victim == 2 else 2
    cluster.node(victim).kill()
    wait_for(lambda: cluster.partitions(topic, via=survivor)[1].leader < 0, 20, "no leader")

    env = kcli_env()
    env["KCLI_TIMEOUT"] = "5"
    for selection in (("-P", "1"), ()):
        done = subprocess.run(
            kcli_command("-b", cluster.node(survivor).bootstrap, "consume", topic, *selection),
            capture_output=True, env=env, timeout=60, check=False, stdin=subprocess.DEVNULL)
        err = done.stderr.decode()
        assert done.returncode == 3, err
        assert err.strip().splitlines() == [
            f"kcli: error: {topic}[1] has no leader: none of its replicas "
            f"(brokers {victim}) is available"], err
