"""What transactions cost: transactional produce against idempotent produce, and
read_committed against read_uncommitted consume, on one embedded broker, side by side.

    python bench/transactions.py [--megabytes 200] [--rounds 5] [--commit-ms 100]

Starts one broker (temp dir, free port). Every round, alternating which goes first:
- produce MEGABYTES of 1 KB values with a default confluent-kafka Producer with
  enable.idempotence=true, and with a transactional one (default settings plus its
  transactional.id) that commits every COMMIT_MS (issue 14's goal: at least 80% of the
  idempotent rate);
- read the transactional topic back with a default Consumer at read_committed (the
  default) and at read_uncommitted (goal: read_committed at least 90%).
Prints MB/s median (min-max) and the ratios. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.broker import MB, consume, create_topic, produce, spread  # noqa: E402
from tests.support.broker import BrokerProcess  # noqa: E402

SIZE = 1000
PARTITIONS = 4


def produce_in_transactions(bootstrap: str, topic: str, count: int, commit_ms: int) -> float:
    """Seconds to send ``count`` values in transactions committed every ``commit_ms``,
    the last one committed."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:  # as bench.broker.produce
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "on_delivery": on_delivery,
                         "transactional.id": f"bench-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    producer.list_topics(topic, timeout=10)
    payload = os.urandom(SIZE)
    send = producer.produce
    started = time.perf_counter()
    producer.begin_transaction()
    next_commit = started + commit_ms / 1000
    for index in range(count):
        while True:
            try:
                send(topic, payload)
                break
            except BufferError:
                producer.poll(0.005)
        if index % 1000 == 0:
            if index % 10_000 == 0:
                producer.poll(0)
            now = time.perf_counter()
            if now >= next_commit:
                producer.commit_transaction(60)
                producer.begin_transaction()
                next_commit = now + commit_ms / 1000
    producer.commit_transaction(60)
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"transactional produce failed: {failures[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commit-ms", type=int, default=100)
    args = parser.parse_args()
    count = args.megabytes * MB // SIZE
    rates: dict[str, list[float]] = {"idempotent": [], "transactional": [],
                                     "read_uncommitted": [], "read_committed": []}
    with tempfile.TemporaryDirectory(prefix="kcli-bench-txn-") as tmp:
        broker = BrokerProcess(Path(tmp) / "data").start()
        try:
            for round_ in range(args.rounds):
                plain = create_topic(broker.bootstrap, PARTITIONS)
                txn = create_topic(broker.bootstrap, PARTITIONS)
                runs = [
                    ("idempotent", lambda t=plain: produce(
                        broker.bootstrap, t, SIZE, count, False,
                        {"enable.idempotence": "true"})),
                    ("transactional", lambda t=txn: produce_in_transactions(
                        broker.bootstrap, t, count, args.commit_ms)),
                ]
                for name, run in runs if round_ % 2 == 0 else runs[::-1]:
                    rates[name].append(count * SIZE / MB / run())
                reads = [
                    ("read_uncommitted", {"isolation.level": "read_uncommitted"}),
                    ("read_committed", {"isolation.level": "read_committed"}),
                ]
                for name, extra in reads if round_ % 2 == 0 else reads[::-1]:
                    rates[name].append(count * SIZE / MB / consume(
                        broker.bootstrap, txn, count, PARTITIONS, False, extra))
                print(f"round {round_ + 1}: " + ", ".join(
                    f"{name} {values[-1]:.0f}" for name, values in rates.items()),
                    file=sys.stderr)
        finally:
            broker.stop()
    print(f"{args.megabytes} MB of {SIZE} B records, {PARTITIONS} partitions, default "
          f"clients, {args.rounds} rounds, MB/s median (min-max):")
    for name, values in rates.items():
        print(f"  {name:18} {spread(values)}")
    for what, top, bottom, goal in (("transactional / idempotent produce", "transactional",
                                     "idempotent", 0.8),
                                    ("read_committed / read_uncommitted", "read_committed",
                                     "read_uncommitted", 0.9)):
        ratios = [a / b for a, b in zip(rates[top], rates[bottom], strict=True)]
        print(f"  {what}: {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
              f"max {max(ratios):.2f}; goal {goal})")


if __name__ == "__main__":
    main()
