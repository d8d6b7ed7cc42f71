"""Replication rules: min.insync.replicas, the high watermark, and divergent followers."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, Producer

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for
from tests.cluster.test_failover import read_all


def produce(bootstrap: str, topic: str, values: list[bytes], **config: Any) -> list[Any]:
    """Produce ``values`` one request at a time; returns (error or None, offset) each."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                         "message.timeout.ms": 10000, **config})
    results: list[Any] = []
    for value in values:
        producer.produce(topic, value, partition=0,
                         on_delivery=lambda e, m: results.append(
                             (e, m.offset() if e is None else None)))
        producer.flush(30)
    return results


def test_acks_all_needs_min_insync_replicas(make_cluster: MakeCluster) -> None:
    cluster = make_cluster().start()
    topic = "guarded"
    cluster.create_topic(topic, 1, 3, {"min.insync.replicas": "2"})
    assert all(e is None for e, _ in produce(cluster.bootstrap, topic, [b"a"], acks="all"))

    leader = cluster.leader(topic, 0)
    survivor = leader
    for node_id in cluster.nodes:
        if node_id != survivor:
            cluster.node(node_id).kill()
    wait_for(lambda: cluster.metadata_file()["topics"][topic]["partitions"][0]["isr"]
             == [survivor], 10, "the ISR shrunk to the survivor")
    bootstrap = cluster.node(survivor).bootstrap
    ((error, _),) = produce(bootstrap, topic, [b"b"], acks="all", retries=0)
    assert error is not None
    assert error.code() == KafkaError.NOT_ENOUGH_REPLICAS
    ((error, offset),) = produce(bootstrap, topic, [b"c"], acks=1)
    assert error is None
    assert offset == 1  # nothing of the refused write was appended


def test_a_diverged_follower_truncates_when_it_returns(make_cluster: MakeCluster) -> None:
    # Long enough a lag time that paused followers stay in the ISR during the drill.
    cluster: TestCluster = make_cluster(settings={"replica.lag.time.max.ms": "60000"}).start()
    topic = "diverging"
    cluster.create_topic(topic, 1, 3, {"min.insync.replicas": "1"})
    committed = [f"committed-{i}".encode() for i in range(20)]
    assert all(e is None for e, _ in produce(cluster.bootstrap, topic, committed, acks="all"))

    old = cluster.leader(topic, 0)
    followers = [n for n in cluster.nodes if n != old]
    for node_id in followers:
        cluster.node(node_id).pause()
    # acks=1: the old leader alone takes these, one request each. A fetch that a paused
    # follower sent before it stopped may carry the first few; no later fetch comes.
    phantoms = [f"phantom-{i:02d}".encode() for i in range(40)]
    acked = produce(cluster.node(old).bootstrap, topic, phantoms, acks=1)
    assert [e for e, _ in acked] == [None] * len(phantoms)
    cluster.node(old).kill()
    for node_id in followers:
        cluster.node(node_id).resume()
    new = wait_for(lambda: cluster.leader(topic, 0) in followers and cluster.leader(topic, 0),
                   15, "a new leader")

    later = [f"later-{i}".encode() for i in range(20)]
    live = ",".join(cluster.node(n).bootstrap for n in followers)
    assert all(e is None for e, _ in produce(live, topic, later, acks="all"))
    seen = [v for _o, v in read_all(live, topic, 1)[0]]
    assert seen[:20] == committed
    assert seen[-20:] == later
    carried = seen[20:-20]  # the phantoms a waiting fetch carried before the crash
    assert carried == phantoms[:len(carried)]
    assert len(carried) < len(phantoms), "every phantom replicated: nothing diverged"

    cluster.start(old)  # it still has the phantoms: it must cut them off and catch up
    cluster.wait_in_sync(topic, 1, 3)
    # Make the returning broker the leader, then read what it has.
    for node_id in followers:
        if cluster.leader(topic, 0) != old:
            cluster.node(node_id).stop()
    wait_for(lambda: cluster.leader(topic, 0) == old, 10, "the old leader leads again")
    # The file changes first; the broker applies it at its next poll, and a client asking
    # it before then would be sent to the stopped leader.
    wait_for(lambda: cluster.partitions(topic, via=old)[0].leader == old, 10,
             "the old leader to know it leads")
    assert new != old
    again = [v for _o, v in read_all(cluster.node(old).bootstrap, topic, 1)[0]]
    assert again == seen


def test_a_stalled_follower_leaves_the_isr_and_rejoins(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(settings={"replica.lag.time.max.ms": "1000"}).start()
    topic = "stalling"
    cluster.create_topic(topic, 1, 3, {"min.insync.replicas": "2"})
    leader = cluster.leader(topic, 0)
    stalled = next(n for n in cluster.nodes if n != leader)
    cluster.node(stalled).pause()  # alive (its lock is held) but not fetching
    try:
        started = time.monotonic()
        # acks=all waits while the stalled follower still counts, then goes through
        results = produce(cluster.node(leader).bootstrap, topic,
                          [f"v{i}".encode() for i in range(20)], acks="all")
        assert [e for e, _ in results] == [None] * 20
        isr = cluster.metadata_file()["topics"][topic]["partitions"][0]["isr"]
        assert stalled not in isr
        assert time.monotonic() - started >= 1.0
    finally:
        cluster.node(stalled).resume()
    cluster.wait_in_sync(topic, 1, 3)
