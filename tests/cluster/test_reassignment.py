"""Partition reassignment and leader elections on a 3-broker cluster, driven by real
admin clients (kafka-python: AlterPartitionReassignments, ListPartitionReassignments;
confluent-kafka: ElectLeaders), under produce load, with no acknowledged record lost."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, ElectionType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import TopicPartition as KafkaPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import NoReassignmentInProgressError

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for


class Load:
    """Acknowledged records written to a partition from a background thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.acked: list[bytes] = []
        self.failed = 0
        self._stop = threading.Event()
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                   "linger.ms": 5, "message.timeout.ms": 60000})
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, error: object, message: object) -> None:
        if error is None:
            self.acked.append(message.value())  # type: ignore[attr-defined]
        else:
            self.failed += 1

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            self._producer.produce(self.topic, b"r%d" % i, partition=0,
                                   on_delivery=self._delivered)
            self._producer.poll(0.005)
            i += 1
        self._producer.flush(60)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(90)


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    try:
        while True:
            message = consumer.poll(15)
            assert message is not None, "no end of partition in 15 s"
            if message.error() is not None:
                if message.error().code() == -191:  # _PARTITION_EOF
                    return values
                continue
            values.append(message.value())
    finally:
        consumer.close()


@contextmanager
def kafka_admin(cluster: TestCluster) -> Iterator[KafkaAdminClient]:
    running = [n.bootstrap for n in cluster.nodes.values() if n.running]
    admin = KafkaAdminClient(bootstrap_servers=",".join(running), request_timeout_ms=30000)
    try:
        yield admin
    finally:
        admin.close()


def move(cluster: TestCluster, admin: KafkaAdminClient, topic: str, target: list[int]) -> None:
    """Reassign partition 0 and wait until the move is done and the ISR is the target."""
    assert admin.alter_partition_reassignments({KafkaPartition(topic, 0): target}) == {
        KafkaPartition(topic, 0): None}

    def done() -> bool:
        if admin.list_partition_reassignments([KafkaPartition(topic, 0)]):
            return False
        view = cluster.partitions(topic)[0]
        return view.replicas == target and sorted(view.isr) == sorted(target)

    wait_for(done, 60, f"{topic}-0 on {target}")


def test_moves_and_replication_changes_under_load(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    topic = "moving"
    cluster.create_topic(topic, partitions=1, replication=1)
    first = cluster.partitions(topic)[0].replicas[0]
    others = [b for b in (1, 2, 3) if b != first]
    with kafka_admin(cluster) as admin, Load(cluster.bootstrap, topic) as load:
        move(cluster, admin, topic, [others[0], others[1], first])  # RF 1 -> 3, new leader
        assert cluster.partitions(topic)[0].leader in (others[0], first)
        move(cluster, admin, topic, [others[1]])  # RF 3 -> 1, on another broker
        assert cluster.partitions(topic)[0].leader == others[1]
        move(cluster, admin, topic, [first, others[0]])  # to a new set entirely
        wait_for(lambda: len(load.acked) > 200, 30, "load")
    assert load.failed == 0
    assert read_all(cluster.bootstrap, topic) == load.acked  # nothing lost, same order
    # the brokers that left keep no copy
    gone = cluster.node(others[1]).data_dir / f"{topic}-0"
    wait_for(lambda: not gone.exists(), 20, "the old replica's data to go")


def test_a_leader_killed_during_a_move(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    topic = "killed"
    cluster.create_topic(topic, partitions=1, replication=2)
    replicas = cluster.partitions(topic)[0].replicas
    leader = cluster.leader(topic, 0)
    spare = next(b for b in (1, 2, 3) if b not in replicas)
    survivor = next(b for b in replicas if b != leader)
    with kafka_admin(cluster) as admin, Load(cluster.bootstrap, topic) as load:
        wait_for(lambda: len(load.acked) > 100, 30, "load")
        admin.alter_partition_reassignments({KafkaPartition(topic, 0): [spare, survivor]})
        cluster.node(leader).kill()

        def moving() -> bool:
            # a new client: the killed broker may have been the controller it asked
            with kafka_admin(cluster) as fresh:
                return bool(fresh.list_partition_reassignments([KafkaPartition(topic, 0)]))

        wait_for(lambda: not moving(), 60, "the move to finish without the old leader")
        wait_for(lambda: len(load.acked) > 300, 30, "more load")
    assert cluster.partitions(topic, via=survivor)[0].replicas == [spare, survivor]
    assert load.failed == 0
    assert read_all(cluster.node(survivor).bootstrap, topic) == load.acked


def test_list_and_cancel_a_move_that_cannot_finish(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    topic = "stuck"
    cluster.create_topic(topic, partitions=1, replication=1)
    home = cluster.partitions(topic)[0].replicas[0]
    away = next(b for b in (1, 2, 3) if b != home)
    cluster.node(away).kill()  # it cannot catch up while down
    # until the others notice, Metadata may still name it (as the controller, even):
    # wait for every survivor, or kafka-python may ask one that still sends it there
    survivors = [n for n in cluster.nodes.values() if n.running]

    def forgotten() -> bool:
        for node in survivors:
            answer = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=5)
            if away in answer.brokers or answer.controller_id == away:
                return False
        return True

    wait_for(forgotten, 20, f"broker {away} to drop out of every broker's Metadata")
    with kafka_admin(cluster) as admin:
        admin.alter_partition_reassignments({KafkaPartition(topic, 0): [away]})
        listed = admin.list_partition_reassignments([KafkaPartition(topic, 0)])
        assert listed == {KafkaPartition(topic, 0): {
            "replicas": [away, home], "adding_replicas": [away], "removing_replicas": [home]}}
        admin.alter_partition_reassignments({KafkaPartition(topic, 0): None})
        assert admin.list_partition_reassignments() == {}
        assert cluster.partitions(topic)[0].replicas == [home]
        refused = admin.alter_partition_reassignments({KafkaPartition(topic, 0): None})
        assert refused == {KafkaPartition(topic, 0): NoReassignmentInProgressError}


def test_preferred_leaders_come_back(make_cluster: MakeCluster) -> None:
    """By request (ElectLeaders, confluent-kafka) and by the controller's rebalance."""
    cluster = make_cluster(3, {"leader.imbalance.check.interval.seconds": "2"}).start()
    topic = "preferred"
    cluster.create_topic(topic, partitions=3, replication=3)
    preferred = {p: v.replicas[0] for p, v in cluster.partitions(topic).items()}
    victim = preferred[0]
    cluster.node(victim).kill()
    wait_for(lambda: cluster.partitions(topic)[0].leader != victim, 20, "a new leader")
    cluster.node(victim).spawn()
    cluster.node(victim).wait_ready()
    # the controller hands leaderships back once the broker is in sync again
    wait_for(lambda: {p: v.leader for p, v in cluster.partitions(topic).items()} == preferred,
             60, "preferred leaders back")

    admin = cluster.admin()
    result = admin.elect_leaders(ElectionType.PREFERRED,
                                 [TopicPartition(topic, p) for p in range(3)]).result(30)
    errors = {tp.partition: error.code() for tp, error in result.items() if error}
    assert errors == dict.fromkeys(range(3), 84)  # ELECTION_NOT_NEEDED: they lead already
