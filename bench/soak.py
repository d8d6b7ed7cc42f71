"""Soak: producers and a consumer group on a 3-broker local cluster, across broker kills.

    python bench/soak.py [--minutes 5] [--producers 3] [--partitions 6] [--kill-every 20]

Not a test (CI does not run it): it runs for minutes and kills processes. A 3-broker
cluster of real `kcli broker run` processes (RF 3, min.insync.replicas 2) takes records
from idempotent acks=all confluent-kafka producers (default settings otherwise) while a
consumer group reads them, and every ``--kill-every`` seconds one broker is SIGKILLed and
started again. At the end every broker runs again, the log is read back from the start,
and the check is Kafka's promise to an idempotent acks=all producer:

- every acknowledged record is in the log (none lost);
- no record is in the log twice (none duplicated);
- each producer's records are in the order it sent them, per partition;
- no record whose delivery failed is in the log unless it was retried to success.

The consumer group is at-least-once by design (it may re-read after a rebalance), so it is
only required to have seen every record. Prints one summary line and exits 1 if any
promise was broken.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402

from tests.cluster.harness import TestCluster, wait_for  # noqa: E402
from tests.cluster.test_failover import read_all  # noqa: E402

TOPIC = "soak"


class ProducerLoop(threading.Thread):
    """One idempotent acks=all producer sending ``p<id>-<seq>`` values, keyed by value."""

    def __init__(self, producer_id: int, bootstrap: str, stop: threading.Event) -> None:
        super().__init__(name=f"producer-{producer_id}", daemon=True)
        self.producer_id = producer_id
        self.stop_event = stop
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True})
        self.sent = 0
        self.acked: set[bytes] = set()
        self.failed: Counter[str] = Counter()

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is None:
            self.acked.add(message.value())  # type: ignore[attr-defined]
        else:
            self.failed[error.name()] += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            value = f"p{self.producer_id}-{self.sent:09d}".encode()
            try:
                self.producer.produce(TOPIC, value, key=value, on_delivery=self._delivered)
            except BufferError:  # the local queue is full while a broker is down
                self.producer.poll(0.1)
                continue
            self.sent += 1
            self.producer.poll(0)
            if self.sent % 50 == 0:
                time.sleep(0.005)  # a steady stream, not a flood the queue cannot hold
        self.producer.flush(120)


class ConsumerLoop(threading.Thread):
    """A member of the soak group, counting what it reads."""

    def __init__(self, bootstrap: str, stop: threading.Event) -> None:
        super().__init__(name="consumer", daemon=True)
        self.stop_event = stop
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak",
                                  "auto.offset.reset": "earliest"})
        self.seen: set[bytes] = set()

    def run(self) -> None:
        self.consumer.subscribe([TOPIC])
        while not self.stop_event.is_set():
            for message in self.consumer.consume(1000, 0.5):
                if message.error() is None:
                    self.seen.add(message.value())
        self.consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to run [5]")
    parser.add_argument("--producers", type=int, default=3, help="producer threads [3]")
    parser.add_argument("--partitions", type=int, default=6, help="partitions [6]")
    parser.add_argument("--kill-every", type=float, default=20.0,
                        help="seconds between broker kills [20]")
    parser.add_argument("--seed", type=int, default=0, help="which brokers die, in order")
    args = parser.parse_args()
    chooser = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kcli-soak-") as tmp:
        cluster = TestCluster(Path(tmp), 3)
        try:
            return soak(cluster, args, chooser)
        finally:
            cluster.kill_all()


def soak(cluster: TestCluster, args: argparse.Namespace, chooser: random.Random) -> int:
    cluster.start()
    cluster.create_topic(TOPIC, args.partitions, 3, {"min.insync.replicas": "2"})
    stop_producing, stop_consuming = threading.Event(), threading.Event()
    producers = [ProducerLoop(i, cluster.bootstrap, stop_producing)
                 for i in range(args.producers)]
    consumer = ConsumerLoop(cluster.bootstrap, stop_consuming)
    for thread in [*producers, consumer]:
        thread.start()
    kills = 0
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() + args.kill_every < deadline:
        time.sleep(args.kill_every)
        victim = chooser.choice(sorted(cluster.nodes))
        cluster.node(victim).kill()
        kills += 1
        time.sleep(min(5.0, args.kill_every / 2))  # clients see it gone, leadership moves
        cluster.start(victim)
        print(f"{time.strftime('%H:%M:%S')} killed and restarted broker {victim} "
              f"({sum(p.sent for p in producers)} sent)", file=sys.stderr)
    time.sleep(max(0.0, deadline - time.monotonic()))
    stop_producing.set()
    for producer in producers:
        producer.join()
    cluster.wait_in_sync(TOPIC, args.partitions, 3, timeout=60)
    log = read_all(cluster.bootstrap, TOPIC, args.partitions)
    acked = set().union(*(p.acked for p in producers))
    wait_for(lambda: acked <= consumer.seen, 60, "the group to read every record")
    stop_consuming.set()
    consumer.join(30)

    in_log = Counter(value for records in log.values() for _offset, value in records)
    lost = acked - in_log.keys()
    duplicated = {v for v, n in in_log.items() if n > 1}
    out_of_order = sum(_out_of_order(records) for records in log.values())
    unread = acked - consumer.seen
    failed = Counter[str]()
    for producer in producers:
        failed.update(producer.failed)
    sent = sum(p.sent for p in producers)
    ok = not (lost or duplicated or out_of_order or unread)
    print(f"soak {'ok' if ok else 'FAILED'}: {args.minutes:g} min, {kills} broker kills, "
          f"{sent} sent, {len(acked)} acknowledged, {sum(in_log.values())} in the log, "
          f"{len(lost)} lost, {len(duplicated)} duplicated, {out_of_order} out of order, "
          f"{len(unread)} not read by the group; failed deliveries: "
          f"{dict(failed) or 'none'}")
    return 0 if ok else 1


def _out_of_order(records: list[tuple[int, bytes]]) -> int:
    """Records of one partition that come before an earlier-sent one of their producer."""
    last: dict[bytes, bytes] = {}
    count = 0
    for _offset, value in records:
        producer = value.split(b"-", 1)[0]
        if producer in last and value < last[producer]:
            count += 1
        last[producer] = max(value, last.get(producer, value))
    return count


if __name__ == "__main__":
    sys.exit(main())
