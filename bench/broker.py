"""The embedded broker against Tansu, side by side in one run, with default clients.

    python bench/broker.py [--sizes 100,1000,10000] [--partitions 4,100] [--megabytes 300]
                           [--rounds 3] [--contention] [--tuned]

Starts one embedded broker (port 0, a temp dir on disk, its default flush policy) and
one Tansu (Rust, in-memory storage; see bench/peers.py). For each record size and
partition count, in every round and alternating which broker goes first:

- produce: a confluent-kafka Producer with **default settings** (only the bootstrap
  set: acks=all, linger 5 ms) sends MEGABYTES of values into a fresh topic; timed
  until every record is acknowledged;
- consume: a confluent-kafka Consumer with default settings (bootstrap and group)
  assigned every partition from the beginning reads them all back, 1,000 records a
  consume() call;
- with kcat installed, the same with kcat's defaults as a second client whose own cost
  is small, so the broker is what is measured: ``kcat -P -l FILE`` of SIZE-byte lines
  into a fresh topic, and ``kcat -C -o beginning -c COUNT -e > /dev/null`` of it (the
  count ends it, without -e's wait for an empty fetch).

Prints MB/s as median (min-max) over the rounds for each broker and the ratio of the
medians. Produce at 10 KB also runs against librdkafka's mock cluster (in-memory C
brokers inside the producer's own process, ``test.mock.num.brokers``, 4 partitions),
interleaved the same way: the most a default confluent-kafka producer can send here,
printed as kcli's share of it, and beside it the rate at which this machine appends the
same bytes to a new file in the broker's data dir (1 MB writes, no fsync): the most a
broker that keeps its data on disk could take. Under them, the CPU seconds per GB of the
producer and of kcli's broker, and the most those allow on this machine's cores (the
producer takes more of them than the broker). ``--tuned`` adds rows with the large-batch client
settings of earlier versions; ``--contention`` keeps a CPU-burning process on core 0
during every run, as on a busy machine. Issue 18's goals: kcli at least 2x Tansu at
1 KB and 10 KB, with and without contention, and 80% of the mock cluster. Not a test:
nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.peers import Tansu  # noqa: E402
from bench.scale import spread as spread_decimals  # noqa: E402
from tests.support.broker import BrokerProcess  # noqa: E402

MB = 1_000_000


TUNED_PRODUCER = {
    "linger.ms": 5, "batch.size": 1_000_000, "batch.num.messages": 100_000,
    "queue.buffering.max.kbytes": 1_048_576, "queue.buffering.max.messages": 1_000_000,
    "delivery.report.only.error": True,
}
TUNED_CONSUMER = {
    "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 8_388_608,
    "queued.max.messages.kbytes": 262_144, "fetch.wait.max.ms": 10,
    "queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 5,
}


def create_topic(bootstrap: str, partitions: int) -> str:
    """A fresh topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    admin.list_topics(name, timeout=10)
    return name


def delete_topic(bootstrap: str, topic: str) -> None:
    """Delete a measured topic, as retention would have: neither broker's memory (kcli's
    page cache, Tansu's heap) then grows run by run, and on a VM that keeps charging
    for every page it has not handed out before, a growing footprint slowed whichever
    broker ran later (kcli's default produce at 1 KB: 607-726 MB/s in a fresh run,
    200-530 deep into one that kept every topic)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(60)


def produce(bootstrap: str, topic: str, size: int, count: int, tuned: bool,
            extra: dict[str, str] | None = None) -> float:
    """Seconds to send `count` values of `size` bytes, all acknowledged (acks=all, the
    librdkafka default); ``extra``: more client settings (security)."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "on_delivery": on_delivery,
                         **(TUNED_PRODUCER if tuned else {}), **(extra or {})})
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


def consume(bootstrap: str, topic: str, count: int, partitions: int, tuned: bool,
            extra: dict[str, str] | None = None) -> float:
    """Seconds to read `count` records from the beginning of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench",
                         **(TUNED_CONSUMER if tuned else {}), **(extra or {})})
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    deadline = started + 300
    while seen < count and time.perf_counter() < deadline:
        # 1,000 a call, not 10,000: 10,000 records of 10 KB are more than a default
        # client queues (queued.max.messages.kbytes, 64 MB), and against a broker that
        # fills that queue the fetcher then idles for fetch.queue.backoff.ms (1 s): kcli
        # served 173-749 MB/s that way and 1454-1533 with 1,000 a call (Tansu, which
        # never fills it: 442-478 and 510-516), an artefact of the loop, not the broker
        for message in consumer.consume(1_000, 0.5):
            if message.error() is None:
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    if seen < count:
        raise SystemExit(f"consume read {seen} of {count} records")
    return elapsed


@contextmanager
def cpu_burner(enabled: bool) -> Iterator[None]:
    """A process spinning on core 0 while the block runs: a busy machine."""
    if not enabled:
        yield
        return
    burner = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


def spread(values: list[float]) -> str:
    """median (min-max)."""
    return f"{statistics.median(values):6.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="record sizes [100,1000,10000]")
    parser.add_argument("--partitions", default="4", help="partition counts [4]; e.g. 4,100")
    parser.add_argument("--megabytes", type=int, default=300, help="data per run [300]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved [3]")
    parser.add_argument("--contention", action="store_true", help="burn core 0 meanwhile")
    parser.add_argument("--tuned", action="store_true", help="also tuned client rows")
    parser.add_argument("--no-kcat", action="store_true", help="no kcat rows")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcli-broker-bench-", dir=os.environ.get("TMPDIR")))
    kcli = BrokerProcess(workdir / "data").start()
    tansu = Tansu().start()
    brokers = {"kcli": kcli.bootstrap, "tansu": tansu.bootstrap}
    args.kcat = None if args.no_kcat else shutil.which("kcat") or shutil.which("kafkacat")
    args.kcat_talks_to = {name for name, bootstrap in brokers.items()
                          if args.kcat and kcat_answers(args.kcat, bootstrap)}
    for name in sorted(set(brokers) - args.kcat_talks_to if args.kcat else ()):
        print(f"kcat cannot talk to {name} (its metadata request fails): no kcat figures for it")
    args.workdir = workdir
    assert kcli.process is not None
    args.kcli_pid = kcli.process.pid
    print(f"{args.megabytes} MB per run (100 B: a third), {args.rounds} rounds interleaved, "
          f"{'with' if args.contention else 'without'} a CPU burner on core 0; MB/s median "
          "(min-max)")
    print(f"{'':34}{'kcli':>18}{'tansu':>18}{'ratio':>7}")
    try:
        with cpu_burner(args.contention):
            for tuned in (False, True) if args.tuned else (False,):
                for partitions in map(int, args.partitions.split(",")):
                    for size in map(int, args.sizes.split(",")):
                        _figure(brokers, size, partitions, args, tuned)
    finally:
        kcli.stop()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _figure(brokers: dict[str, str], size: int, partitions: int, args: argparse.Namespace,
            tuned: bool) -> None:
    """Produce and consume rates of both brokers for one size and partition count."""
    total = args.megabytes * MB // (3 if size < 1000 else 1)
    count = total // size
    rates: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = list(brokers) if round_ % 2 == 0 else list(reversed(brokers))
        for name in order:
            bootstrap = brokers[name]
            topic = create_topic(bootstrap, partitions)
            seconds = produce(bootstrap, topic, size, count, tuned)
            rates.setdefault((name, "produce"), []).append(count * size / seconds / MB)
            seconds = consume(bootstrap, topic, count, partitions, tuned)
            rates.setdefault((name, "consume"), []).append(count * size / seconds / MB)
            delete_topic(bootstrap, topic)
            if name in args.kcat_talks_to and not tuned:
                topic = create_topic(bootstrap, partitions)
                lines = lines_file(args.workdir, size, count)
                seconds = kcat_produce(args.kcat, bootstrap, topic, lines, count)
                rates.setdefault((name, "kcat produce"), []).append(count * size / seconds / MB)
                seconds = kcat_consume(args.kcat, bootstrap, topic, count)
                rates.setdefault((name, "kcat consume"), []).append(count * size / seconds / MB)
                delete_topic(bootstrap, topic)
    if size == 10_000 and partitions == 4 and not tuned:
        _against_the_mock_cluster(brokers["kcli"], args.kcli_pid, count, args.rounds,
                                  args.workdir, args.contention)
    clients = "tuned" if tuned else "default"
    ops = ("produce", "consume", "kcat produce", "kcat consume") if args.kcat and not tuned \
        else ("produce", "consume")
    for op in ops:
        ours, theirs = rates.get(("kcli", op), []), rates.get(("tansu", op), [])
        label = f"{op} {size} B x{partitions}" + ("" if op.startswith("kcat") else f" ({clients})")
        if not ours or not theirs:
            print(f"{label:34}{spread(ours) if ours else '-':>18}"
                  f"{spread(theirs) if theirs else '-':>18}", flush=True)
            continue
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"{label:34}{spread(ours):>18}{spread(theirs):>18}{ratio:7.2f}", flush=True)


def _against_the_mock_cluster(kcli: str, kcli_pid: int, count: int, rounds: int,
                              workdir: Path, contention: bool) -> None:
    """Produce 10 KB records to kcli and to librdkafka's mock cluster, interleaved; and
    the rate of plain appends of as many bytes to a file on the data dir's disk. Also
    the CPU seconds per GB of each side: the producer (this process), kcli's broker, and
    the producer with the mock cluster inside it. With the machine's cores all busy, a
    broker that costs B CPU-s per GB beside a client that costs C can take at most
    cores / (B + C) GB/s."""
    ours: list[float] = []
    mock: list[float] = []
    disk: list[float] = []
    cpu: dict[str, list[float]] = {"client": [], "broker": [], "mock": []}
    gigabytes = count * 10_000 / 1e9
    for round_ in range(rounds):
        disk.append(count * 10_000 / file_append_seconds(workdir, count * 10_000) / MB)
        for target in ("kcli", "mock") if round_ % 2 == 0 else ("mock", "kcli"):
            if target == "kcli":
                topic = create_topic(kcli, 4)
                client, broker = own_cpu_seconds(), process_cpu_seconds(kcli_pid)
                seconds = produce(kcli, topic, 10_000, count, tuned=False)
                cpu["client"].append((own_cpu_seconds() - client) / gigabytes)
                cpu["broker"].append((process_cpu_seconds(kcli_pid) - broker) / gigabytes)
                ours.append(count * 10_000 / seconds / MB)
                delete_topic(kcli, topic)
            else:  # the mock cluster lives in the producer; its topics get 4 partitions
                client = own_cpu_seconds()
                seconds = produce("", f"bench-{uuid.uuid4().hex[:8]}", 10_000, count,
                                  tuned=False, extra={"test.mock.num.brokers": "1"})
                cpu["mock"].append((own_cpu_seconds() - client) / gigabytes)
                mock.append(count * 10_000 / seconds / MB)
    share = statistics.median(ours) / statistics.median(mock)
    label = "produce 10000 B x4 vs mock cluster"
    print(f"{label:34}{spread(ours):>18}{spread(mock):>18}{share:7.2f}  (kcli, mock, share)",
          flush=True)
    share = statistics.median(ours) / statistics.median(disk)
    label = "appends to a data-dir file"
    print(f"{label:34}{spread(ours):>18}{spread(disk):>18}{share:7.2f}  (kcli, file, share)",
          flush=True)
    client, broker = statistics.median(cpu["client"]), statistics.median(cpu["broker"])
    cores = os.cpu_count() or 1
    print(f"  CPU-s per GB: producer {spread_decimals(cpu['client'])}, kcli's broker "
          f"{spread_decimals(cpu['broker'])}; producer with the mock inside "
          f"{spread_decimals(cpu['mock'])}", flush=True)
    if contention:  # the burner holds a core: the bound below assumes every core free
        return
    print(f"  {cores} cores / (producer {client:.2f} + kcli {broker:.2f}) = "
          f"{cores / (client + broker) * 1000:.0f} MB/s at most; 80% of the mock needs kcli "
          f"at {max(0.0, cores / (0.8 * statistics.median(mock) / 1000) - client):.2f} "
          "CPU-s per GB or less", flush=True)


def own_cpu_seconds() -> float:
    """User and system CPU seconds of this process so far, every thread (librdkafka's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of another process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_append_seconds(workdir: Path, total: int) -> float:
    """Seconds to append ``total`` bytes to a new file beside the broker's data, in 1 MB
    writes, as the broker appends a produce request's batches (no fsync: nor does its
    default flush policy). The file is removed afterwards."""
    chunk = os.urandom(MB)
    path = workdir / f"append-{uuid.uuid4().hex[:8]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(total // MB):
            os.write(fd, chunk)
        return time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()


def lines_file(workdir: Path, size: int, count: int) -> Path:
    """A file of ``count`` lines of ``size`` bytes each, made once per size."""
    path = workdir / f"lines-{size}-{count}"
    if not path.exists():
        line = os.urandom(size).hex()[:size].encode() + b"\n"
        with open(path, "wb") as out:
            for _ in range(count):
                out.write(line)
    return path


def record_count(bootstrap: str, topic: str) -> int:
    """Records the topic holds: its partitions' end offsets less their start offsets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total
    finally:
        consumer.close()


def kcat_answers(kcat: str, bootstrap: str) -> bool:
    """Whether kcat gets metadata from the broker at all (Tansu fails librdkafka 2.0's
    ApiVersions request)."""
    done = subprocess.run([kcat, "-L", "-b", bootstrap, "-m", "5"], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)
    return done.returncode == 0


def kcat_produce(kcat: str, bootstrap: str, topic: str, path: Path, count: int) -> float:
    """Seconds for kcat (its defaults) to send the ``count`` lines of ``path`` and exit;
    fails unless the topic then holds them all."""
    started = time.perf_counter()
    subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic, "-l", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    held = record_count(bootstrap, topic)
    if held != count:
        raise SystemExit(f"kcat produced {held} of {count} records")
    return elapsed


def kcat_consume(kcat: str, bootstrap: str, topic: str, count: int) -> float:
    """Seconds for kcat (its defaults) to read ``count`` records from the beginning."""
    started = time.perf_counter()
    subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                    "-c", str(count)], check=True, stdout=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
