"""A cluster keeps everything across a full stop, and groups keep consuming across a crash."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for
from tests.cluster.test_failover import read_all


def produce_values(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})
    errors: list[object] = []
    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions,
                         on_delivery=lambda e, _m: errors.append(e) if e else None)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]


def group_offsets(cluster: TestCluster, group: str) -> dict[tuple[str, int], int]:
    admin = cluster.admin()
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset for tp in future.result(10).topic_partitions}


def test_a_full_stop_and_start_keeps_topics_records_and_offsets(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster().start()
    cluster.create_topic("kept", 3, 3, {"min.insync.replicas": "2"})
    cluster.create_topic("small", 1, 2)
    kept = [f"kept-{i}".encode() for i in range(3000)]
    produce_values(cluster.bootstrap, "kept", kept, 3)
    produce_values(cluster.bootstrap, "small", [b"one", b"two"], 1)
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "keeper",
                         "enable.auto.commit": False})
    commits = [TopicPartition("kept", 0, 700), TopicPartition("kept", 1, 800),
               TopicPartition("kept", 2, 1000), TopicPartition("small", 0, 1)]
    consumer.commit(offsets=commits, asynchronous=False)
    consumer.close()
    before_file = cluster.metadata_file()

    cluster.stop()  # every broker at once, as `kcli cluster stop` does
    cluster.start()

    after_file = cluster.metadata_file()
    assert {t: len(d["partitions"]) for t, d in after_file["topics"].items()} == {
        t: len(d["partitions"]) for t, d in before_file["topics"].items()}
    assert after_file["cluster_id"] == before_file["cluster_id"]
    cluster.wait_in_sync("kept", 3, 3)
    cluster.wait_in_sync("small", 1, 2)
    stored = read_all(cluster.bootstrap, "kept", 3)
    assert sorted(v for p in stored.values() for _o, v in p) == sorted(kept)
    assert [v for _o, v in read_all(cluster.bootstrap, "small", 1)[0]] == [b"one", b"two"]
    offsets = wait_for(lambda: group_offsets(cluster, "keeper"), 20, "committed offsets")
    assert offsets == {(tp.topic, tp.partition): tp.offset for tp in commits}


def test_a_group_keeps_consuming_when_its_coordinator_dies(make_cluster: MakeCluster) -> None:
    cluster = make_cluster().start()
    topic = "work"
    cluster.create_topic(topic, 3, 3, {"min.insync.replicas": "2"})
    first = [f"first-{i}".encode() for i in range(300)]
    produce_values(cluster.bootstrap, topic, first, 3)
    consumer = Consumer({
        "bootstrap.servers": cluster.bootstrap, "group.id": "workers",
        "auto.offset.reset": "earliest", "enable.auto.commit": True,
        "auto.commit.interval.ms": 100, "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300, "reconnect.backoff.max.ms": 200,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.subscribe([topic])
    seen: list[bytes] = []

    def consume_until(count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(set(seen)) < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    seen.append(message.value())

    try:
        consume_until(len(first), 30)
        assert set(seen) == set(first)
        admin = cluster.admin()
        group = admin.describe_consumer_groups(["workers"])["workers"].result(10)
        victim = group.coordinator.id
        cluster.node(victim).kill()
        second = [f"second-{i}".encode() for i in range(300)]
        produce_values(",".join(n.bootstrap for n in cluster.nodes.values() if n.running),
                       topic, second, 3)
        consume_until(len(first) + len(second), 60)
        assert set(seen) == set(first) | set(second)
        consumer.commit(asynchronous=False)
        admin = cluster.admin()  # on the live brokers
        group = admin.describe_consumer_groups(["workers"])["workers"].result(10)
        assert group.coordinator.id != victim
        assert len(group.members) == 1
        ends = {p: sum(1 for i in range(600) if i % 3 == p) for p in range(3)}
        offsets = group_offsets(cluster, "workers")
        assert offsets == {(topic, p): end for p, end in ends.items()}
    finally:
        consumer.close()
