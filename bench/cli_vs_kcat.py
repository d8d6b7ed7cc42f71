"""kcli against kcat on the same private broker, in one run.

    python bench/cli_vs_kcat.py [--records 1000000] [--size 100] [--rounds 3]

Starts an embedded broker (port 0, temp dir), then times, alternating the two tools:

- consume: ``kcat -C -e -o beginning -q -t T > /dev/null`` against
  ``kcli consume T -n RECORDS > /dev/null`` on a topic holding RECORDS records;
- produce: ``kcat -P -t T < file`` against ``kcli produce T < file`` of RECORDS lines
  (each run into a fresh topic; the record count is checked afterwards);
- startup: ``kcli --help``.

Prints each time (best and median of the rounds) and the kcli/kcat ratio (target <= 1.5).
Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.broker import BrokerProcess, kcli_command, kcli_env  # noqa: E402


def timed(argv: list[str], stdin_path: Path | None = None) -> float:
    """Wall time of one command (stdout discarded); fails loudly on a non-zero exit."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        started = time.perf_counter()
        done = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=kcli_env(), check=False)
        elapsed = time.perf_counter() - started
    finally:
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


# The least any Python program using confluent-kafka pays for the same work: no CLI,
# no parsing, no checks. Shows how much of kcli's time is the binding's per-record cost.
FLOOR_PRODUCE = """
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "linger.ms": 20, "batch.size": 1000000,
              "batch.num.messages": 100000, "queue.buffering.max.messages": 1000000})
produce, topic, rest = p.produce, sys.argv[2], b""
read = sys.stdin.buffer.read1
while data := read(1 << 20):
    lines = (rest + data).split(b"\\n")
    rest = lines.pop()
    for line in lines:
        produce(topic, line)
    p.poll(0)
if rest:
    produce(topic, rest)
p.flush()
"""
FLOOR_CONSUME = """
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "floor", "enable.auto.commit": False,
              "enable.partition.eof": True, "fetch.queue.backoff.ms": 5,
              "queued.min.messages": 200000})
c.assign([TopicPartition(sys.argv[2], 0, 0)])
out, left = sys.stdout.buffer, int(sys.argv[3])
while left > 0:
    batch = [m for m in c.consume(min(left, 10000), 0.1) if m.error() is None]
    if batch:
        out.write(b"\\n".join([m.value() for m in batch]) + b"\\n")
        left -= len(batch)
c.close()
"""


def record_count(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


def create(bootstrap: str, topic: str) -> None:
    done = subprocess.run(kcli_command("-b", bootstrap, "-q", "topic", "create", topic,
                                       "-P", "1"), env=kcli_env(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode())


def report(name: str, kcat_times: list[float], kcli_times: list[float],
           floor_times: list[float]) -> float:
    kcat_best, kcli_best, floor_best = min(kcat_times), min(kcli_times), min(floor_times)
    ratio = kcli_best / kcat_best
    print(f"{name:8} kcat {kcat_best:5.2f}s (median {statistics.median(kcat_times):5.2f}s)"
          f" | kcli {kcli_best:5.2f}s (median {statistics.median(kcli_times):5.2f}s)"
          f" | kcli/kcat {ratio:4.2f} {'ok' if ratio <= 1.5 else 'over 1.5x'}"
          f" | bare confluent-kafka loop {floor_best:5.2f}s = {floor_best / kcat_best:4.2f}x kcat")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        raise SystemExit("kcat is not installed")

    with tempfile.TemporaryDirectory(prefix="kcli-bench-") as tmp:
        workdir = Path(tmp)
        lines = workdir / "lines.txt"
        with open(lines, "wb") as f:
            row = b"x" * args.size + b"\n"
            f.write(row * args.records)
        broker = BrokerProcess(workdir / "broker").start()
        bootstrap = broker.bootstrap
        try:
            print(f"broker {bootstrap}; {args.records:,} records of {args.size} bytes; "
                  f"{args.rounds} rounds")
            # consume: one topic filled once (by kcat), read by both tools
            create(bootstrap, "bench-consume")
            timed([kcat, "-P", "-b", bootstrap, "-t", "bench-consume"], lines)
            assert record_count(bootstrap, "bench-consume") == args.records
            consume_kcat: list[float] = []
            consume_kcli: list[float] = []
            consume_floor: list[float] = []
            for _ in range(args.rounds):
                consume_kcat.append(timed([kcat, "-C", "-e", "-q", "-o", "beginning", "-b",
                                           bootstrap, "-t", "bench-consume"]))
                consume_kcli.append(timed(kcli_command("-b", bootstrap, "consume",
                                                       "bench-consume", "-n",
                                                       str(args.records))))
                consume_floor.append(timed([sys.executable, "-c", FLOOR_CONSUME, bootstrap,
                                            "bench-consume", str(args.records)]))
            # produce: a fresh topic per run
            produce_kcat: list[float] = []
            produce_kcli: list[float] = []
            produce_floor: list[float] = []
            for round_ in range(args.rounds):
                for tool, times in (("kcat", produce_kcat), ("kcli", produce_kcli),
                                    ("floor", produce_floor)):
                    topic = f"bench-produce-{tool}-{round_}"
                    create(bootstrap, topic)
                    if tool == "kcat":
                        argv = [kcat, "-P", "-b", bootstrap, "-t", topic]
                    elif tool == "kcli":
                        argv = kcli_command("-b", bootstrap, "-q", "produce", topic)
                    else:
                        argv = [sys.executable, "-c", FLOOR_PRODUCE, bootstrap, topic]
                    times.append(timed(argv, lines))
                    count = record_count(bootstrap, topic)
                    if count != args.records:
                        raise SystemExit(f"{tool} wrote {count} records, not {args.records}")
            startup = [timed(kcli_command("--help")) for _ in range(5)]

            print(f"startup  kcli --help best {min(startup):.3f}s median "
                  f"{statistics.median(startup):.3f}s (target < 0.3s)")
            report("consume", consume_kcat, consume_kcli, consume_floor)
            report("produce", produce_kcat, produce_kcli, produce_floor)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
