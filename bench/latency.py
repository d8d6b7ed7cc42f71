"""Produce and end-to-end latency: the embedded broker against Tansu in one run.

    python bench/latency.py [--rate 5000] [--seconds 10] [--size 1000] [--rounds 3]

For each broker, in every round and alternating which goes first: a fresh topic of one
partition; a confluent-kafka Consumer (default settings, bootstrap and group) assigned
to its end, in a process of its own; a Producer with acks=all and linger.ms=0
(otherwise default) sending RATE records of SIZE bytes per second for SECONDS, sleeping
between records as an application that has nothing else to do would. Each
value starts with the time it was handed to the producer, so

- produce latency is that time to its delivery report (acknowledged by the broker);
- end to end is that time to the consumer's receipt.

Prints p50 and p99 in milliseconds, median (min-max) over the rounds. Issue 18's goals:
p99 produce under 5 ms and end to end under 10 ms on loopback, both lower than Tansu's.
kcli's data is on disk with its default flush policy; Tansu's is in memory. Not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.broker import create_topic  # noqa: E402
from bench.peers import Tansu  # noqa: E402
from bench.scale import spread  # noqa: E402
from tests.support.broker import BrokerProcess  # noqa: E402

STAMP = struct.Struct(">q")


def percentile(samples: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the samples lie."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _consume(bootstrap: str, topic: str, count: int, seconds: float,
             results: multiprocessing.Queue[list[float]],
             ready: multiprocessing.synchronize.Event) -> None:
    """In its own process (no GIL shared with the producer): end-to-end latencies."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{topic}"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    consumer.poll(1.0)  # the first (empty) fetch in flight
    ready.set()
    end_to_end: list[float] = []
    deadline = time.monotonic() + seconds + 30
    while len(end_to_end) < count and time.monotonic() < deadline:
        # poll, not consume(n, timeout): that one waits for n records or the timeout
        message = consumer.poll(0.05)
        if message is not None and message.error() is None:
            sent = STAMP.unpack_from(message.value())[0]
            end_to_end.append((time.time_ns() - sent) / 1e6)
    consumer.close()
    results.put(end_to_end)


def run(bootstrap: str, rate: int, seconds: float, size: int) -> tuple[list[float], list[float]]:
    """(produce latencies, end-to-end latencies) in ms for one paced run."""
    from confluent_kafka import Producer

    topic = create_topic(bootstrap, 1)
    count = int(rate * seconds)
    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[float]] = spawn.Queue()
    ready = spawn.Event()
    reader = spawn.Process(target=_consume,
                           args=(bootstrap, topic, count, seconds, results, ready))
    reader.start()
    produced: list[float] = []

    def on_delivery(error: object, message: object) -> None:
        if error is None:
            sent = STAMP.unpack_from(message.value())[0]  # type: ignore[attr-defined]
            produced.append((time.time_ns() - sent) / 1e6)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "on_delivery": on_delivery})
    producer.list_topics(topic, timeout=10)
    ready.wait(30)
    padding = os.urandom(size - STAMP.size)
    interval = 1 / rate
    start = time.perf_counter()
    for index in range(count):
        due = start + index * interval
        if (wait := due - time.perf_counter()) > 0:
            # sleep, not poll(wait): librdkafka takes whole milliseconds, so a poll of
            # the 0.2 ms between records returns at once and the loop spun a core that
            # the broker needed (2 cores here); an application does not spin.
            time.sleep(wait)
        producer.produce(topic, STAMP.pack(time.time_ns()) + padding)
        producer.poll(0)
    producer.flush(30)
    end_to_end = results.get(timeout=seconds + 60)
    reader.join()
    return produced, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=5000, help="records per second [5000]")
    parser.add_argument("--seconds", type=float, default=10, help="per run [10]")
    parser.add_argument("--size", type=int, default=1000, help="record size [1000]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved [3]")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcli-latency-", dir=os.environ.get("TMPDIR")))
    kcli = BrokerProcess(workdir / "data").start()
    tansu = Tansu().start()
    brokers = {"kcli": kcli.bootstrap, "tansu": tansu.bootstrap}
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        for round_ in range(args.rounds):
            for name in brokers if round_ % 2 == 0 else reversed(list(brokers)):
                produced, end_to_end = run(brokers[name], args.rate, args.seconds, args.size)
                for label, samples in (("produce", produced), ("end to end", end_to_end)):
                    for fraction in (0.5, 0.99):
                        key = (f"{label} p{int(fraction * 100)}", name)
                        figures.setdefault(key, []).append(percentile(samples, fraction))
    finally:
        kcli.stop()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.rate} records/s of {args.size} B for {args.seconds:.0f} s, acks=all, "
          f"linger 0, {args.rounds} rounds interleaved; ms, median (min-max)")
    print(f"{'':16}{'kcli':>24} {'tansu':>26}{'ratio':>7}")
    for label in ("produce p50", "produce p99", "end to end p50", "end to end p99"):
        ours, theirs = figures[(label, "kcli")], figures[(label, "tansu")]
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"{label:16}{spread(ours):>24} {spread(theirs):>26}{ratio:7.2f}")


if __name__ == "__main__":
    main()
