"""`kcli partition` on a 3-broker cluster, through the real entry point."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from kafka import TopicPartition as KafkaPartition
from kafka.admin import KafkaAdminClient

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for
from tests.support.broker import kcli_command, kcli_env


def kcli(cluster: TestCluster, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    running = ",".join(n.bootstrap for n in cluster.nodes.values() if n.running)
    done = subprocess.run(kcli_command("-b", running, *args), capture_output=True, text=True,
                          env=kcli_env(), timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    return done


def doc(cluster: TestCluster, *args: str) -> Any:
    return json.loads(kcli(cluster, *args, "-o", "json").stdout)


def test_move_change_replication_and_elect(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, {"auto.leader.rebalance.enable": "false"}).start()
    cluster.create_topic("orders", partitions=2, replication=1)
    before = cluster.partitions("orders")

    plan = doc(cluster, "partition", "move", "orders", "-r", "3", "--dry-run")
    assert [m["status"] for m in plan["moves"]] == ["planned", "planned"]
    assert all(len(m["target"].split(",")) == 3 for m in plan["moves"])
    assert cluster.partitions("orders") == before  # a dry run changes nothing

    done = doc(cluster, "partition", "move", "orders", "-r", "3", "--wait")
    assert [m["status"] for m in done["moves"]] == ["done", "done"]
    views = cluster.partitions("orders")
    assert all(sorted(v.replicas) == [1, 2, 3] and sorted(v.isr) == [1, 2, 3]
               for v in views.values())
    assert doc(cluster, "partition", "reassignments") == {"reassignments": []}

    moved = doc(cluster, "partition", "move", "orders", "-P", "1", "--to", "3,1", "--wait")
    assert moved["moves"] == [{"topic": "orders", "partition": 1,
                               "current": ",".join(map(str, views[1].replicas)),
                               "target": "3,1", "status": "done"}]
    wait_for(lambda: cluster.partitions("orders")[1].replicas == [3, 1], 10, "replicas 3,1")
    # partition 0 leaves broker 3, so that 3's crash below moves only partition 1
    doc(cluster, "partition", "move", "orders", "-P", "0", "--to", "2,1", "--wait")
    doc(cluster, "partition", "elect", "orders", "-P", "0")
    wait_for(lambda: cluster.partitions("orders")[0].leader == 2, 10, "2 to lead partition 0")
    # a leader in the new set keeps leading (as in Kafka); an election hands it to 3
    doc(cluster, "partition", "elect", "orders")
    wait_for(lambda: cluster.partitions("orders")[1].leader == 3, 10, "3 to lead")

    # broker 3 crashes and comes back: partition 1 stays led elsewhere until elected
    cluster.node(3).kill()
    wait_for(lambda: cluster.partitions("orders")[1].leader == 1, 20, "a new leader")
    cluster.node(3).spawn()
    cluster.node(3).wait_ready()
    wait_for(lambda: 3 in cluster.partitions("orders")[1].isr, 30, "3 back in sync")
    dry = doc(cluster, "partition", "elect", "orders", "--dry-run")
    assert [(e["partition"], e["leader"], e["preferred"], e["result"])
            for e in dry["elections"]] == [(1, 1, 3, "to the preferred replica")]
    assert cluster.partitions("orders")[1].leader == 1
    elected = doc(cluster, "partition", "elect", "orders")
    assert [e["result"] for e in elected["elections"]] == ["elected"]
    # every broker rereads the shared metadata within its poll interval
    wait_for(lambda: cluster.partitions("orders")[1].leader == 3, 10, "3 to lead")


def test_bad_moves_and_cancelling(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    cluster.create_topic("stuck", partitions=1, replication=1)
    home = cluster.partitions("stuck")[0].replicas[0]
    away = next(b for b in (1, 2, 3) if b != home)
    bad = kcli(cluster, "partition", "move", "stuck", "--to", "7", code=2)
    assert bad.stderr.startswith("kcli: error: --to 7: give distinct ids of live brokers")
    kcli(cluster, "partition", "move", "stuck", code=2)
    kcli(cluster, "partition", "move", "nope", "--to", "1", code=4)

    cluster.node(away).kill()  # the move cannot finish while it is down
    kcli(cluster, "partition", "move", "stuck", "--to", f"{away},{home}", code=2)  # refused
    # another tool started it anyway: the broker accepts a registered broker
    admin = KafkaAdminClient(bootstrap_servers=cluster.node(home).bootstrap)
    admin.alter_partition_reassignments({KafkaPartition("stuck", 0): [away, home]})
    admin.close()
    shown = doc(cluster, "partition", "reassignments", "stuck")["reassignments"]
    assert [(r["target"], r["adding"], r["done"]) for r in shown] == [
        (f"{away},{home}", str(away), "50%")]
    kcli(cluster, "partition", "reassignments", "--cancel")
    assert doc(cluster, "partition", "reassignments") == {"reassignments": []}
    assert cluster.partitions("stuck")[0].replicas == [home]
