"""Transactions on a 3-broker cluster with RF 3: markers reach leaders on other brokers
(WriteTxnMarkers), and a transaction open when its coordinator's broker or a partition
leader is killed still commits (or aborts) whole, under a new coordinator that loaded
its state from the replicated __transaction_state."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kcli.broker.group.records import partition_for_group
from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for

PARTITIONS = 3


def read(bootstrap: str, topic: str, isolation: str) -> list[bytes]:
    """Every value of the topic that a consumer at ``isolation`` gets, to the end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        values: list[bytes] = []
        ended: set[int] = set()
        for _ in range(300):
            for message in consumer.consume(100, 0.2):
                error = message.error()
                if error is None:
                    values.append(message.value())
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
            if len(ended) == PARTITIONS:
                return sorted(values)
        raise AssertionError(f"{topic} did not reach its end at {isolation}")
    finally:
        consumer.close()


def coordinator_of(cluster: TestCluster, transactional_id: str) -> int:
    partitions = cluster.metadata_file()["topics"]["__transaction_state"]["partitions"]
    return int(partitions[partition_for_group(transactional_id, len(partitions))]["leader"])


def producer(cluster: TestCluster, transactional_id: str) -> Producer:
    made = Producer({"bootstrap.servers": cluster.bootstrap,
                     "transactional.id": transactional_id, "transaction.timeout.ms": 60000})
    made.init_transactions(30)
    return made


def write_everywhere(made: Producer, topic: str, tag: str) -> None:
    for p in range(PARTITIONS):
        made.produce(topic, f"{tag}-{p}".encode(), partition=p)
    made.flush(30)


def test_transactions_across_brokers_and_failovers(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, PARTITIONS, 3)
    transactional_id = f"tx-{uuid.uuid4().hex[:8]}"
    made = producer(cluster, transactional_id)
    assert {cluster.leader(topic, p) for p in range(PARTITIONS)} == {1, 2, 3}

    made.begin_transaction()  # markers to three leaders, two of them remote
    write_everywhere(made, topic, "one")
    made.commit_transaction(30)
    made.begin_transaction()
    write_everywhere(made, topic, "aborted")
    made.abort_transaction(30)

    # the coordinator's broker dies with a transaction open: a new one finishes it
    made.begin_transaction()
    write_everywhere(made, topic, "two")
    coordinator = coordinator_of(cluster, transactional_id)
    cluster.node(coordinator).kill()
    wait_for(lambda: coordinator_of(cluster, transactional_id) != coordinator, 30,
             "a new transaction coordinator")
    made.commit_transaction(60)
    successor = cluster.node(coordinator_of(cluster, transactional_id))
    assert "coordinating 1 transactional id(s)" in successor.log()
    cluster.node(coordinator).spawn()
    cluster.node(coordinator).wait_ready()
    cluster.wait_in_sync(topic, PARTITIONS)

    # a partition leader dies with a transaction open: it aborts whole
    made.begin_transaction()
    write_everywhere(made, topic, "three")
    leader = cluster.leader(topic, 0)
    cluster.node(leader).kill()
    wait_for(lambda: cluster.leader(topic, 0) not in (leader, -1), 30, "a new leader")
    made.abort_transaction(60)
    made.begin_transaction()
    write_everywhere(made, topic, "four")
    made.commit_transaction(60)

    expected = sorted(f"{tag}-{p}".encode() for tag in ("one", "two", "four")
                      for p in range(PARTITIONS))
    assert read(cluster.bootstrap, topic, "read_committed") == expected
    everything = read(cluster.bootstrap, topic, "read_uncommitted")
    assert set(expected) <= set(everything)
    assert {f"aborted-{p}".encode() for p in range(PARTITIONS)} <= set(everything)


def test_a_decided_transaction_is_finished_by_the_next_coordinator(
        make_cluster: MakeCluster) -> None:
    """Commit decided (PrepareCommit written) while the partition's leader is down, then
    the coordinator's broker dies too: the coordinator that takes over loads the
    decision and writes the marker once the leader is back."""
    from confluent_kafka.admin import NewTopic

    cluster = make_cluster(3).start()
    transactional_id = f"tx-{uuid.uuid4().hex[:8]}"
    made = producer(cluster, transactional_id)
    coordinator = coordinator_of(cluster, transactional_id)
    holder = next(n for n in (1, 2, 3) if n != coordinator)
    topic = f"prep-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 1, replica_assignment=[[holder]])])[topic].result(15)
    wait_for(lambda: cluster.leader(topic, 0) == holder, 20, "the topic's leader")

    made.begin_transaction()
    made.produce(topic, b"decided", partition=0)
    made.flush(30)
    cluster.node(holder).kill()
    made.commit_transaction(60)  # answered once PrepareCommit is durable
    cluster.node(coordinator).kill()
    survivor = next(n for n in (1, 2, 3) if n not in (holder, coordinator))
    wait_for(lambda: coordinator_of(cluster, transactional_id) == survivor, 30,
             "the surviving broker coordinating")
    cluster.node(holder).spawn()
    cluster.node(holder).wait_ready()

    def committed() -> bool:
        consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "reader",
                             "isolation.level": "read_committed",
                             "enable.partition.eof": True})
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            for _ in range(10):
                for message in consumer.consume(10, 0.3):
                    if message.error() is None:
                        return message.value() == b"decided"
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        return False
            return False
        finally:
            consumer.close()

    wait_for(committed, 60, "the marker from the new coordinator", interval=0.5)
    assert (f"transaction {transactional_id}: finishing its commit, decided by an earlier "
            "coordinator") in cluster.node(survivor).log()
