"""Backup and restore throughput against plain consume and produce, in the same run.

    python bench/backup_bench.py [--mb 1024] [--partitions 4] [--repeat 3]
                                 [--codec zstd] [--data words|logs]
                                 [--bootstrap HOST:PORT] [--dir DIR]

Starts a private ``kcli broker run`` (unless --bootstrap), writes a data file of 1 KB
JSON records (see --data), then times the real commands as a user runs them, whole
processes included:

    kcli produce SRC --file DATA        produce throughput
    kcli consume SRC > /dev/null        consume throughput
    kcli backup SRC --to DIR            backup throughput   (ratio to consume)
    kcli restore DIR --topic SRC=COPY   restore throughput  (ratio to produce)
    kcat -P -t T -l DATA                a peer's produce    (when kcat is installed)
    kcli restore --help; a bare confluent-kafka produce loop of the values, in memory
                                        restore's floor: start-up plus the binding's
                                        produce() per record
    kcat -C -t SRC -e > /dev/null       a peer's consume
    kcat -C -t SRC -e -f '%k\\t%s\\n' | zstd -1 > FILE
                                        what a user might do instead of a backup
                                        (keeps far less: no headers, offsets, checksums)
    the same with -c COUNT instead of -e  (kcat's -e waits 500 ms for an empty fetch)

Each is run --repeat times, interleaved; the best run counts (the machine is shared, so
the minimum is the least disturbed measurement) and the median is shown too. MB/s is
record payload (MB = 10^6 bytes of values) per wall-clock second; records/s likewise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = 1024


def kcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kcli", *args]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH")]))
    out.pop("KCLI_BOOTSTRAP", None)
    return out


def generate(path: Path, count: int, kind: str, seed: int = 7) -> None:
    """1 KB lines of JSON events: random ids, small enums and numbers, then ``words``:
    random words (zstd level 1 keeps about half), or ``logs``: a log message from a few
    templates, padded (about a tenth)."""
    rnd = random.Random(seed)
    templates = [f"request {{}} handled by worker {w} in {{}} ms status 200 path /api/v1/"
                 f"{name}" for w in range(8) for name in ("orders", "users", "items", "cart")]
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choice(letters) for _ in range(rnd.randrange(3, 10)))
             for _ in range(5000)]
    events = ["page_view", "add_to_cart", "checkout", "search", "login", "purchase"]
    countries = ["DE", "FR", "US", "GB", "NL", "SE", "JP", "BR", "IN", "ES"]
    with open(path, "wb") as f:
        for i in range(count):
            event = {
                "event_id": rnd.randbytes(16).hex(), "type": rnd.choice(events),
                "ts": 1_700_000_000_000 + i * 3,
                "user": {"id": rnd.randrange(10**7), "country": rnd.choice(countries)},
                "session": rnd.randbytes(8).hex(),
                "cart": [{"sku": f"SKU-{rnd.randrange(10**6):06d}", "qty": rnd.randrange(1, 5),
                          "price": round(rnd.random() * 200, 2)}
                         for _ in range(rnd.randrange(1, 4))],
                "note": "",
            }
            room = RECORD - 1 - len(json.dumps(event, separators=(",", ":")))
            words: list[str] = []
            used = 0
            while used < room:
                if kind == "logs":
                    word = rnd.choice(templates).format(rnd.randrange(10**6), rnd.randrange(500))
                else:
                    word = rnd.choice(vocab) if rnd.random() < 0.8 else str(rnd.randrange(10**6))
                words.append(word)
                used += len(word) + 1
            event["note"] = " ".join(words)[:max(0, room)]
            line = json.dumps(event, separators=(",", ":")).encode()[:RECORD - 1]
            f.write(line.ljust(RECORD - 1, b" ") + b"\n")


class Broker:
    """A private `kcli broker run` in a temp dir."""

    def __init__(self, data_dir: Path) -> None:
        self.log = data_dir.parent / "broker.log"
        log = open(self.log, "wb")  # noqa: SIM115 (kept open by the child)
        self.process = subprocess.Popen(
            kcli("broker", "run", "--node-id", "1", "--data-dir", str(data_dir), "--listen",
                 "127.0.0.1:0"), stdout=log, stderr=log, env=env())
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"ready, listening on [^\s]+:(\d+)", self.log.read_text())
            if match:
                self.bootstrap = f"127.0.0.1:{match.group(1)}"
                return
            if self.process.poll() is not None:
                raise SystemExit(f"broker exited:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise SystemExit("broker did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


def timed(args: list[str], stdout: int | None = subprocess.DEVNULL) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env(), stdout=stdout, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr.decode()}")
    return seconds


PRODUCE_LOOP = """
import sys, time
from confluent_kafka import Producer
bootstrap, topic, path = sys.argv[1:4]
with open(path, "rb") as f:
    values = f.read().splitlines()
producer = Producer({"bootstrap.servers": bootstrap})
produce, poll = producer.produce, producer.poll
started = time.perf_counter()
for index, value in enumerate(values):
    while True:
        try:
            produce(topic, value)
            break
        except BufferError:
            poll(0.005)
    if index & 1023 == 0:
        poll(0)
if producer.flush(120):
    raise SystemExit("records left unacknowledged")
print(time.perf_counter() - started)
"""
"""The binding's floor for any restore: a default confluent-kafka producer sending the
values, already in memory, one produce() call each (no keys, headers, timestamps or
delivery callbacks); prints the seconds from the first produce() to the flush."""


def produce_loop_seconds(bootstrap: str, topic: str, data: Path) -> float:
    """Seconds of :data:`PRODUCE_LOOP` in a fresh process (its start-up not counted)."""
    done = subprocess.run([sys.executable, "-c", PRODUCE_LOOP, bootstrap, topic, str(data)],
                          env=env(), capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the produce loop failed:\n{done.stderr.decode()}")
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="data size in MB (10^6 bytes)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--codec", default="zstd",
                        help="backup codec; a comma-separated list times each (zstd,null)")
    parser.add_argument("--data", choices=("words", "logs"), default="words",
                        help="record content: random words (hard to compress) or log lines")
    parser.add_argument("--bootstrap", help="use this cluster instead of a private broker")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--no-kcat", action="store_true", help="do not time kcat")
    args = parser.parse_args()
    kcat = None if args.no_kcat else shutil.which("kcat") or shutil.which("kafkacat")

    work = Path(args.dir or tempfile.mkdtemp(prefix="kcli-backup-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = None
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            shutil.rmtree(work / "broker", ignore_errors=True)
            broker = Broker(work / "broker")
            bootstrap = broker.bootstrap
        count = args.mb * 1_000_000 // RECORD
        data = work / f"data-{args.data}-{count}.jsonl"
        if not data.exists():
            print(f"generating {count} records of {RECORD} bytes ...", file=sys.stderr)
            generate(data, count, args.data)
        payload = count * (RECORD - 1)
        b = ["-b", bootstrap, "-q"]
        codecs = args.codec.split(",")
        times: dict[str, list[float]] = {"produce": [], "consume": []}
        zstd = shutil.which("zstd") if kcat else None
        if kcat:
            times.update({"kcat produce": [], "kcat consume": []})
        if zstd:
            times["kcat | zstd -1"] = []
            times["kcat -c | zstd"] = []
        times.update({f"backup {c}": [] for c in codecs})
        times["restore"] = []
        times["produce loop"] = []
        startup: list[float] = []
        source = None
        for rep in range(args.repeat):
            topic = f"bench-{rep}"
            subprocess.run(kcli(*b, "topic", "create", topic, "-P", str(args.partitions)),
                           env=env(), check=True, stdout=subprocess.DEVNULL)
            times["produce"].append(timed(kcli(*b, "produce", topic, "--file", str(data))))
            if source is None:
                source = topic
            else:
                subprocess.run(kcli(*b, "topic", "delete", topic, "--yes"), env=env(),
                               check=True, stdout=subprocess.DEVNULL)
            times["consume"].append(timed(kcli(*b, "consume", source)))
            if kcat:
                peer = f"bench-kcat-{rep}"
                subprocess.run(kcli(*b, "topic", "create", peer, "-P", str(args.partitions)),
                               env=env(), check=True, stdout=subprocess.DEVNULL)
                times["kcat produce"].append(timed([kcat, "-P", "-b", bootstrap, "-t", peer,
                                                    "-l", str(data)]))
                subprocess.run(kcli(*b, "topic", "delete", peer, "--yes"), env=env(),
                               check=True, stdout=subprocess.DEVNULL)
                times["kcat consume"].append(timed([kcat, "-C", "-b", bootstrap, "-t", source,
                                                    "-e", "-q", "-o", "beginning"]))
            if zstd:
                dump = work / f"dump-{rep}.zst"
                times["kcat | zstd -1"].append(timed([
                    "sh", "-c", f"{kcat} -C -b {bootstrap} -t {source} -e -q -o beginning "
                    f"-f '%k\\t%s\\n' | {zstd} -1 -q -f -o {dump}"]))
                dump.unlink()
                # the same with a count: kcat's -e waits out one empty fetch at the end
                # (fetch.wait.max.ms, 500 ms), kcli's backup does not wait at its end
                times["kcat -c | zstd"].append(timed([
                    "sh", "-c", f"{kcat} -C -b {bootstrap} -t {source} -c {count} -q "
                    f"-o beginning -f '%k\\t%s\\n' | {zstd} -1 -q -f -o {dump}"]))
                dump.unlink()
            for codec in codecs:
                archive = work / f"archive-{rep}-{codec}"
                shutil.rmtree(archive, ignore_errors=True)
                times[f"backup {codec}"].append(timed(kcli(*b, "backup", source, "--to",
                                                           str(archive), "--codec", codec)))
                if codec != codecs[0]:
                    shutil.rmtree(archive)
            archive = work / f"archive-{rep}-{codecs[0]}"
            copy = f"bench-copy-{rep}"
            times["restore"].append(timed(kcli(*b, "restore", str(archive), "--topic",
                                               f"{source}={copy}")))
            subprocess.run(kcli(*b, "topic", "delete", copy, "--yes"), env=env(), check=True,
                           stdout=subprocess.DEVNULL)
            startup.append(timed(kcli("restore", "--help")))
            floor = f"bench-loop-{rep}"
            subprocess.run(kcli(*b, "topic", "create", floor, "-P", str(args.partitions)),
                           env=env(), check=True, stdout=subprocess.DEVNULL)
            times["produce loop"].append(produce_loop_seconds(bootstrap, floor, data))
            subprocess.run(kcli(*b, "topic", "delete", floor, "--yes"), env=env(), check=True,
                           stdout=subprocess.DEVNULL)
            archive_bytes = sum(p.stat().st_size for p in archive.rglob("*") if p.is_file())
            if rep < args.repeat - 1:
                shutil.rmtree(archive)
            print(f"round {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s"
                                                   for k, v in times.items()), file=sys.stderr)
        mb = payload / 1e6
        rates = {k: mb / min(v) for k, v in times.items()}
        print(f"\n{count} records of {RECORD} bytes ({mb:.0f} MB of values, {args.data}), "
              f"{args.partitions} partitions, restored from the {codecs[0]} archive of "
              f"{archive_bytes / 1e6:.0f} MB, best of {args.repeat}, {os.cpu_count()} cores\n")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine "
              "slows every measurement)\n")
        print(f"{'':16}{'best s':>9}{'median s':>10}{'worst s':>9}{'MB/s':>9}"
              f"{'records/s':>12}")
        for name, values in times.items():
            print(f"{name:16}{min(values):9.2f}{statistics.median(values):10.2f}"
                  f"{max(values):9.2f}{rates[name]:9.1f}{count / min(values):12,.0f}")
        print()
        peers = ["consume", "kcat consume"] if kcat else ["consume"]
        peers += ["kcat | zstd -1", "kcat -c | zstd"] if zstd else []
        for codec in codecs:
            for peer in peers:
                ratio = rates[f"backup {codec}"] / rates[peer]
                print(f"backup ({codec}) / {peer} = {ratio:.0%}")
        for peer in ["produce", "kcat produce"] if kcat else ["produce"]:
            print(f"restore / {peer} = {rates['restore'] / rates[peer]:.0%}")
        start, loop = statistics.median(startup), statistics.median(times["produce loop"])
        print(f"restore's floor through confluent-kafka: kcli start-up (restore --help) "
              f"{start:.2f} s + the bare produce loop {loop:.2f} s = {start + loop:.2f} s "
              f"(medians; restore "
              f"{statistics.median(times['restore']):.2f} s"
              + (f", kcat -P {statistics.median(times['kcat produce']):.2f} s)" if kcat
                 else ")"))
    finally:
        if broker is not None:
            broker.stop()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
