"""Broker CPU seconds per GB consumed and produced: this checkout against an earlier
revision (before zero-copy fetch, say) and Tansu, side by side in one run.

    python bench/fetch_cpu.py [--before REV] [--megabytes 500] [--rounds 3] [--size 1000]

Each broker (this checkout; ``--before``, checked out into a temporary git worktree;
Tansu, in memory) gets one topic of 4 partitions filled with MEGABYTES of SIZE-byte
records. Then, in every round and alternating the order, each is read whole by

- a confluent-kafka Consumer with default settings (bootstrap and group only), and
- kcat (``-C -o beginning -c COUNT``, output to /dev/null): a client that costs little
  (not against Tansu, whose metadata kcat's librdkafka fails on: "Broker transport
  failure"); a count, not -e, whose wait for an empty fetch at the end would count
  half a second against kcat's MB/s;

and a confluent-kafka Producer with default settings writes MEGABYTES into a fresh
topic, while the broker's CPU time (user + system, from /proc) is sampled before and
after each.
Prints CPU-s per GB and MB/s as median (min-max) over the rounds. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.broker import (  # noqa: E402
    consume,
    create_topic,
    delete_topic,
    kcat_consume,
    process_cpu_seconds,
    produce,
)
from bench.peers import Tansu  # noqa: E402
from bench.scale import spread  # noqa: E402
from tests.support.broker import BrokerProcess  # noqa: E402

MB = 1_000_000
PARTITIONS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="HEAD~1", help="revision to compare [HEAD~1]")
    parser.add_argument("--megabytes", type=int, default=500, help="data per broker [500]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved [3]")
    parser.add_argument("--size", type=int, default=1000, help="record size [1000]")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcli-fetch-cpu-", dir=os.environ.get("TMPDIR")))
    worktree = workdir / "before"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach",
                    str(worktree), args.before], check=True)
    count = args.megabytes * MB // args.size
    processes: dict[str, tuple[str, int]] = {}
    stops = []
    try:
        for name, source in (("kcli", None), (f"kcli {args.before}", worktree)):
            broker = BrokerProcess(workdir / name.replace(" ", "-"), source=source).start()
            stops.append(broker.stop)
            assert broker.process is not None
            processes[name] = (broker.bootstrap, broker.process.pid)
        tansu = Tansu().start()
        stops.append(tansu.stop)
        assert tansu.process is not None
        processes["tansu"] = (tansu.bootstrap, tansu.process.pid)
        topics = {}
        for name, (bootstrap, _pid) in processes.items():
            topics[name] = create_topic(bootstrap, PARTITIONS)
            produce(bootstrap, topics[name], args.size, count, tuned=True)
        print(f"{args.megabytes} MB of {args.size} B records in {PARTITIONS} partitions per "
              f"broker, read whole {args.rounds} times by each client and as much produced "
              "as often, interleaved; "
              "median (min-max)")
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        gigabytes = count * args.size / 1e9
        for round_ in range(args.rounds):
            order = list(processes) if round_ % 2 == 0 else list(reversed(processes))
            for name in order:
                bootstrap, pid = processes[name]
                for client in ("confluent-kafka (default)", "kcat"):
                    if client == "kcat" and name == "tansu":
                        continue  # kcat's librdkafka cannot read Tansu's metadata
                    before = process_cpu_seconds(pid)
                    if client == "kcat":
                        seconds = kcat_consume(shutil.which("kcat") or "kcat", bootstrap,
                                               topics[name], count)
                    else:
                        seconds = consume(bootstrap, topics[name], count, PARTITIONS,
                                          tuned=False)
                    used = process_cpu_seconds(pid) - before
                    results.setdefault((f"consume, {client}", name), []).append(
                        (used / gigabytes, gigabytes * 1000 / seconds))
                produced = create_topic(bootstrap, PARTITIONS)
                before = process_cpu_seconds(pid)
                seconds = produce(bootstrap, produced, args.size, count, tuned=False)
                used = process_cpu_seconds(pid) - before
                delete_topic(bootstrap, produced)  # no broker's footprint grows by round
                results.setdefault(("produce, confluent-kafka (default)", name), []).append(
                    (used / gigabytes, gigabytes * 1000 / seconds))
        print(f"{'client':36}{'broker':16}{'CPU-s per GB':>22}{'MB/s':>22}")
        for (client, name), rows in results.items():
            print(f"{client:36}{name:16}{spread([r[0] for r in rows], digits=2):>22}"
                  f"{spread([r[1] for r in rows], digits=0):>22}", flush=True)
    finally:
        for stop in stops:
            stop()
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                        str(worktree)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
