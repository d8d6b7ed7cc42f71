"""What clients are told about the cluster: leaders, replicas, ISRs, epochs, controller."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from confluent_kafka import TopicCollection
from confluent_kafka.admin import NewTopic
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for
from tests.support.wire import WireClient


def expected(cluster: TestCluster, topic: str) -> dict[int, dict[str, Any]]:
    """Partitions as the shared metadata file has them."""
    doc = cluster.metadata_file()["topics"][topic]["partitions"]
    return dict(enumerate(doc))


def kcat_view(kcat: str, bootstrap: str, topic: str) -> dict[str, Any]:
    done = subprocess.run([kcat, "-b", bootstrap, "-L", "-J", "-t", topic], capture_output=True,
                          timeout=30, check=True)
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def wire_partitions(bootstrap: str, topic: str) -> dict[int, Any]:
    with WireClient(bootstrap) as client:
        response = client.request(3, 12, MetadataRequest(
            topics=(MetadataRequestTopic(topic_id=None, name=topic),),  # type: ignore[arg-type]
            allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    return {int(p.partition_index): p for p in response.topics[0].partitions}


def check_every_view(cluster: TestCluster, kcat: str, topic: str) -> None:
    """kcat -L -J, AdminClient.describe_topics and raw Metadata v12 from every running
    broker agree with the metadata file (leader epochs included)."""
    truth = expected(cluster, topic)
    live = sorted(i for i, n in cluster.nodes.items() if n.running)
    for node_id in live:
        bootstrap = cluster.node(node_id).bootstrap
        doc = kcat_view(kcat, bootstrap, topic)
        assert sorted(b["id"] for b in doc["brokers"]) == live
        assert doc["controllerid"] in live
        (t,) = doc["topics"]
        for p in t["partitions"]:
            want = truth[p["partition"]]
            assert p["leader"] == want["leader"]
            assert [r["id"] for r in p["replicas"]] == want["replicas"]
            assert [r["id"] for r in p["isrs"]] == want["isr"]
        for index, p in wire_partitions(bootstrap, topic).items():
            want = truth[index]
            assert (p.leader_id, p.leader_epoch) == (want["leader"], want["leader_epoch"])
            assert list(p.isr_nodes) == want["isr"]
            assert sorted(p.offline_replicas) == sorted(
                r for r in want["replicas"] if r not in live)
    admin = cluster.admin()
    description = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    for p in description.partitions:
        want = truth[p.id]
        assert p.leader.id == want["leader"]
        assert [r.id for r in p.replicas] == want["replicas"]
        assert [r.id for r in p.isr] == want["isr"]


def test_metadata_is_truthful_before_and_after_a_failover(
        make_cluster: MakeCluster, kcat: str) -> None:
    cluster = make_cluster().start()
    topic = "described"
    cluster.create_topic(topic, 3, 3)
    leaders = {p["leader"] for p in expected(cluster, topic).values()}
    assert leaders == {1, 2, 3}  # leadership spread over the brokers
    check_every_view(cluster, kcat, topic)

    victim = cluster.leader(topic, 0)
    before = expected(cluster, topic)
    cluster.node(victim).kill()
    wait_for(lambda: all(victim not in p["isr"] and p["leader"] != victim
                         for p in expected(cluster, topic).values()), 10, "failover")
    after = expected(cluster, topic)
    for index, p in after.items():
        if before[index]["leader"] == victim:
            assert p["leader_epoch"] == before[index]["leader_epoch"] + 1
        assert p["partition_epoch"] > before[index]["partition_epoch"]
    wait_for(lambda: check_every_view(cluster, kcat, topic) is None, 10, "views agree")


def test_replication_factor_larger_than_the_live_brokers_is_refused(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster(2).start()
    admin = cluster.admin()
    futures = admin.create_topics([NewTopic("too-wide", 1, 3)])
    error = futures["too-wide"].exception(10)
    assert error is not None
    assert error.args[0].name() == "INVALID_REPLICATION_FACTOR"
    cluster.node(2).kill()
    # A client asking in the instant the controller dies is told of the dead one and
    # waits on it until its next metadata refresh, as with any Kafka cluster: wait, with
    # a new client each time, until the survivor names itself.

    def survivor_is_controller() -> bool:
        fresh = cluster.admin()  # kept alive until its answer is in
        return bool(fresh.describe_cluster().result(2).controller.id == 1)

    wait_for(survivor_is_controller, 15, "broker 1 to become the controller")
    admin = cluster.admin()  # on the live broker
    futures = admin.create_topics([NewTopic("two", 1, 2)])
    error = futures["two"].exception(20)
    assert error is not None
    assert error.args[0].name() == "INVALID_REPLICATION_FACTOR"
