"""kcli against kcat on the same private broker, in one run.

    python bench/cli_vs_kcat.py [--records 1000000] [--size 100] [--rounds 3]

Starts an embedded broker (port 0, temp dir), then times, alternating the two tools:

- consume, on a topic holding RECORDS records, stdout to /dev/null: to the end,
  ``kcat -C -e -o beginning -q -t T`` against ``kcli consume T``; and a count,
  ``kcat -C -c RECORDS ...`` against ``kcli consume T -n RECORDS``. kcat's -e waits for
  an empty fetch at the end (fetch.wait.max.ms, 500 ms by default), which kcli, knowing
  the end offsets, does not: comparing kcli's count with kcat's -e (as this script once
  did) flattered kcli by that half second;
- produce: ``kcat -P -t T < file`` against ``kcli produce T < file`` of RECORDS lines
  (each run into a fresh topic; the record count is checked afterwards);
- startup: ``kcli --help``.

Prints each time as median (min-max) of the rounds and the kcli/kcat ratio of the
medians (target <= 1.5).
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

from bench.broker import record_count  # noqa: E402
from bench.scale import spread  # noqa: E402
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


def create(bootstrap: str, topic: str) -> None:
    done = subprocess.run(kcli_command("-b", bootstrap, "-q", "topic", "create", topic,
                                       "-P", "1"), env=kcli_env(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode())


def report(name: str, kcat_times: list[float], kcli_times: list[float],
           floor_times: list[float]) -> float:
    """One row: each tool's seconds as median (min-max), and kcli/kcat of the medians."""
    kcat_median = statistics.median(kcat_times)
    ratio = statistics.median(kcli_times) / kcat_median
    floor = statistics.median(floor_times) / kcat_median
    print(f"{name}\n    kcat {spread(kcat_times, 's')} | kcli {spread(kcli_times, 's')}"
          f" | kcli/kcat {ratio:4.2f} {'ok' if ratio <= 1.5 else 'over 1.5x'}"
          f" | bare confluent-kafka loop {spread(floor_times, 's')} = {floor:4.2f}x kcat")
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

    # Bytecode, as an installed kcli has it (pip compiles at install): where
    # PYTHONDONTWRITEBYTECODE is set, every run would compile ~40 modules again (~50 ms)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "kcli")], check=True)
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
            # Two pairs that do the same work: to the end (kcat -e must see an empty
            # fetch, a 500 ms long-poll by default; kcli knows the end offsets), and a
            # count (no wait at the end for either). The bare loop reads a count.
            consume: dict[str, list[float]] = {
                "end kcat": [], "end kcli": [], "count kcat": [], "count kcli": [], "floor": []}
            kcat_read = [kcat, "-C", "-q", "-o", "beginning", "-b", bootstrap, "-t",
                         "bench-consume"]
            for _ in range(args.rounds):
                consume["end kcat"].append(timed([*kcat_read, "-e"]))
                consume["end kcli"].append(timed(kcli_command(
                    "-b", bootstrap, "-q", "consume", "bench-consume")))
                consume["count kcat"].append(timed([*kcat_read, "-c", str(args.records)]))
                consume["count kcli"].append(timed(kcli_command(
                    "-b", bootstrap, "-q", "consume", "bench-consume", "-n", str(args.records))))
                consume["floor"].append(timed([sys.executable, "-c", FLOOR_CONSUME, bootstrap,
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

            print(f"startup  kcli --help median {statistics.median(startup):.3f}s "
                  f"({min(startup):.3f}-{max(startup):.3f}) (target < 0.3s)")
            report("consume to the end (kcat -e)", consume["end kcat"], consume["end kcli"],
                   consume["floor"])
            report("consume a count (kcat -c)", consume["count kcat"], consume["count kcli"],
                   consume["floor"])
            report("produce", produce_kcat, produce_kcli, produce_floor)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
