"""Embedded broker throughput with confluent-kafka, beside the disk it writes to, in one run.

    python bench/broker.py [--megabytes 600] [--rounds 2]

Starts one embedded broker (port 0, a temp dir on disk) and, for 10 KB and 100 B
records into a 4-partition topic:

- produce: an acks=all confluent-kafka Producer (linger 5 ms, 1 MB batches, no
  compression) sends MEGABYTES of values; timed until every record is acknowledged;
- consume: a confluent-kafka Consumer assigned all 4 partitions from the beginning
  reads them all back (no group, no commits);

and, as the peer in the same run, the disk itself: the same number of bytes written
with os.write in 1 MB chunks into the same file system (the ceiling for produce, whose
data also goes to the page cache first) and read back with os.pread (the ceiling for
consume). Prints MB/s for each and the broker/disk ratio. Issue 2's targets: produce
>= 300 MB/s and consume >= 400 MB/s with 10 KB records. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.broker import BrokerProcess  # noqa: E402

MB = 1_000_000
PARTITIONS = 4


def create_topic(bootstrap: str) -> str:
    """A fresh 4-partition topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name


def produce(bootstrap: str, topic: str, size: int, count: int) -> float:
    """Seconds to send `count` values of `size` bytes with acks=all, all acknowledged."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
        "batch.size": 1_000_000, "batch.num.messages": 100_000,
        "queue.buffering.max.kbytes": 1_048_576, "queue.buffering.max.messages": 1_000_000,
        "compression.type": "none", "delivery.report.only.error": True,
        "on_delivery": on_delivery,
    })
    producer.list_topics(topic, timeout=10)  # connected and the leaders known
    payload = os.urandom(size)
    send = producer.produce
    started = time.perf_counter()
    for index in range(count):
        while True:
            try:
                send(topic, payload)
                break
            except BufferError:
                producer.poll(0.005)
        if index % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left or failures:
        raise SystemExit(f"produce failed: {left} unacknowledged, errors {failures[:3]}")
    return elapsed


def consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds to read `count` records from the beginning of all partitions."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 8_388_608,
        "queued.max.messages.kbytes": 262_144, "fetch.wait.max.ms": 10,
        # librdkafka pauses fetching for fetch.queue.backoff.ms (1 s) once
        # queued.min.messages are waiting: with small records that is the bottleneck
        "queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 5,
    })
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    deadline = started + 300
    while seen < count and time.perf_counter() < deadline:
        for message in consumer.consume(10_000, 0.5):
            if message.error() is None:
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    if seen < count:
        raise SystemExit(f"consume read {seen} of {count} records")
    return elapsed


def disk(directory: Path, total: int) -> tuple[float, float]:
    """(write, read) seconds for `total` bytes in 1 MB chunks: the storage peer."""
    chunk = os.urandom(MB)
    path = directory / "disk.bin"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    started = time.perf_counter()
    for _ in range(total // MB):
        os.write(fd, chunk)
    write = time.perf_counter() - started
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    started = time.perf_counter()
    position = 0
    while data := os.pread(fd, MB, position):
        position += len(data)
    read = time.perf_counter() - started
    os.close(fd)
    path.unlink()
    return write, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=600, help="data per run [600]")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many [2]")
    args = parser.parse_args()
    total = args.megabytes * MB
    workdir = Path(tempfile.mkdtemp(prefix="kcli-broker-bench-", dir=os.environ.get("TMPDIR")))
    broker = BrokerProcess(workdir / "data").start()
    try:
        print(f"broker at {broker.bootstrap}, data in {workdir}, {args.megabytes} MB per run, "
              f"{PARTITIONS} partitions, best of {args.rounds}")
        print(f"{'':22}{'broker MB/s':>12}{'disk MB/s':>11}{'ratio':>7}{'records/s':>12}")
        for size in (10_000, 100):
            count = total // size if size > 1000 else total // size // 3  # 100 B: 1/3 the bytes
            nbytes = count * size
            best_produce = best_consume = best_write = best_read = float("inf")
            for _ in range(args.rounds):
                topic = create_topic(broker.bootstrap)
                best_produce = min(best_produce, produce(broker.bootstrap, topic, size, count))
                best_consume = min(best_consume, consume(broker.bootstrap, topic, count))
                write, read = disk(workdir, nbytes)
                best_write, best_read = min(best_write, write), min(best_read, read)
            for label, seconds, peer in (("produce acks=all", best_produce, best_write),
                                         ("consume", best_consume, best_read)):
                rate, peer_rate = nbytes / seconds / MB, nbytes / peer / MB
                print(f"{label + f' {size} B':22}{rate:12.0f}{peer_rate:11.0f}"
                      f"{rate / peer_rate:7.2f}{count / seconds:12,.0f}")
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
