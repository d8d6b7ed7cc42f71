"""Failover with real clients: acknowledged records survive a leader's crash, exactly once."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for


def read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    """Every record below the high watermark: partition -> [(offset, value)]."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 30
        while len(done) < partitions and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    continue
                p = message.partition()
                out[p].append((message.offset(), message.value()))
                if message.offset() + 1 >= ends[p]:
                    done.add(p)
        assert len(done) == partitions, f"read only {done} of {partitions} to {ends}"
        return out
    finally:
        consumer.close()


@dataclass
class Acks:
    """What the producer was told: per partition, (offset, value) in acknowledgement order."""

    by_partition: dict[int, list[tuple[int, bytes]]] = field(
        default_factory=lambda: defaultdict(list))
    times: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def callback(self, error: KafkaError | None, message: object) -> None:
        if error is not None:
            self.errors.append(str(error))
            return
        p = message.partition()  # type: ignore[attr-defined]
        self.by_partition[p].append((message.offset(), message.value()))  # type: ignore[attr-defined]
        self.times[p].append(time.monotonic())

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_partition.values())


def produce_continuously(cluster: TestCluster, topic: str, partitions: int, acks: Acks,
                         stop: threading.Event) -> None:
    """Write numbered records round-robin, idempotently with acks=all, until ``stop``."""
    producer = Producer({
        "bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "retry.backoff.ms": 50, "retry.backoff.max.ms": 200,
        "reconnect.backoff.max.ms": 200, "topic.metadata.refresh.interval.ms": 1000,
    })
    seq = 0
    while not stop.is_set():
        for _ in range(50):
            producer.produce(topic, f"{seq:08d}".encode(), partition=seq % partitions,
                             on_delivery=acks.callback)
            seq += 1
        producer.poll(0.005)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records never acknowledged"


def test_acknowledged_records_survive_a_leader_crash_exactly_once(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster().start()
    topic, partitions = "orders", 3
    cluster.create_topic(topic, partitions, 3, {"min.insync.replicas": "2"})
    victim = cluster.leader(topic, 0)
    epoch_before = cluster.metadata_file()["topics"][topic]["partitions"][0]["leader_epoch"]

    acks = Acks()
    stop = threading.Event()
    writer = threading.Thread(target=produce_continuously,
                              args=(cluster, topic, partitions, acks, stop))
    started = time.monotonic()
    writer.start()
    try:
        wait_for(lambda: len(acks.by_partition[0]) >= 500, 20, "records acknowledged")
        killed_at = time.monotonic()
        cluster.node(victim).kill()
        new_leader = wait_for(lambda: cluster.leader(topic, 0) not in (victim, -1) and
                              cluster.leader(topic, 0), 10, "a new leader")
        elected_at = time.monotonic()
        wait_for(lambda: acks.times[0] and acks.times[0][-1] > elected_at + 1.0, 30,
                 "acknowledgements from the new leader")
    finally:
        stop.set()
        writer.join(90)
    elapsed = time.monotonic() - started
    assert not acks.errors, acks.errors[:5]
    served_at = next(t for t in acks.times[0] if t > elected_at)
    print(f"failover: new leader {new_leader} in the metadata after "
          f"{elected_at - killed_at:.3f}s, first acknowledgement from it after "
          f"{served_at - killed_at:.3f}s; {acks.count} records in {elapsed:.1f}s "
          f"({acks.count / elapsed:.0f}/s)")
    state = cluster.metadata_file()["topics"][topic]["partitions"][0]
    assert state["leader_epoch"] > epoch_before
    assert victim not in state["isr"]

    log = read_all(cluster.bootstrap, topic, partitions)
    for p in range(partitions):
        values = [v for _o, v in log[p]]
        offsets = [o for o, _v in log[p]]
        assert values == sorted(set(values)), f"partition {p}: duplicates or disorder"
        assert offsets == sorted(set(offsets))
        acked = dict(acks.by_partition[p])
        stored = dict(log[p])
        missing = {o: v for o, v in acked.items() if stored.get(o) != v}
        assert not missing, f"partition {p}: acknowledged records lost or moved: {missing}"
        assert [v for _o, v in acks.by_partition[p]] == sorted(acked.values())

    cluster.start(victim)
    cluster.wait_in_sync(topic, partitions, 3)  # the victim caught up and is back in the ISR
    views = cluster.partitions(topic)
    assert all(victim in v.isr for v in views.values())
