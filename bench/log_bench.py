"""Micro-benchmarks for the broker's log storage (kcli.broker.log): the hot paths.

    python bench/log_bench.py [--dir DIR] [--quick]

Measures, with the page cache warm: validate_client_batch and PartitionLog.append of
16 KiB batches, read() of 1 MiB from random offsets with several batch sizes, a read at
the log end, offset_for_timestamp, and open() of a multi-segment log, clean and after a
crash. Prints median and 99th percentile per call.
"""

from __future__ import annotations

import argparse
import functools
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a checkout without an install

from kcli.broker.log import (  # noqa: E402
    LogConfig,
    PartitionLog,
    Record,
    encode_batch,
    read_header,
    scan_client_records,
    validate_client_batch,
)


def client_batch(records: int, value_size: int, timestamp: int) -> bytes:
    value = random.randbytes(value_size)
    return encode_batch(
        [Record(i, timestamp + i, b"key-%d" % i, value, []) for i in range(records)]
    )


def timed(label: str, calls: list[Callable[[], object]], unit_bytes: int = 0) -> None:
    samples = []
    for call in calls:
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    median = statistics.median(samples) / 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000
    rate = ""
    if unit_bytes:
        rate = f"  {unit_bytes / (median / 1e6) / 1e9:6.2f} GB/s at the median"
    print(f"{label:<52} median {median:9.1f} µs   p99 {p99:9.1f} µs  (n={len(samples)}){rate}")


def bench_append(root: Path, count: int) -> None:
    template = client_batch(records=16, value_size=1000, timestamp=1_700_000_000_000)
    assert 16_000 < len(template) < 17_000, len(template)
    timed(
        f"validate_client_batch, {len(template)} B batch",
        [lambda: validate_client_batch(template, 1 << 20)] * count,
    )
    bench_scan(template, count)
    for label, append_time in (
        ("append 16 KiB batch (no fsync)", None),
        ("append 16 KiB batch, LogAppendTime (CRC redone)", 1_700_000_000_000),
        ("append 16 KiB batch, fsync every append", None),
    ):
        flush = 1 if "fsync" in label and "no fsync" not in label else None
        log = PartitionLog.open(root / f"append-{len(label)}", LogConfig(flush_messages=flush))
        timed(label, _appends(log, template, count if flush is None else count // 10, append_time))
        log.close()
    # appends that roll: small segments
    directory = root / "rolling"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=1 << 20))
    timed("append 16 KiB batch, 1 MiB segments (rolls)", _appends(log, template, count, None))
    log.close()


def bench_scan(template: bytes, count: int) -> None:
    """Produce's walk over every record: one 16 KiB batch, and ~1 MB of 100 B records
    alike (checked a run at a time) or of sizes 50..150 B (walked one by one)."""
    rng = random.Random(7)
    alike = encode_batch([Record(i, 1_700_000_000_000 + i // 100, None, b"v" * 100, [])
                          for i in range(9000)])
    varied = encode_batch([Record(i, 1_700_000_000_000 + i // 100, None,
                                  b"v" * rng.randrange(50, 151), []) for i in range(9000)])
    for label, batch in (("16 KiB batch, 16 records", template),
                         ("9000 records of 100 B alike", alike),
                         ("9000 records of 50..150 B", varied)):
        header = read_header(batch)
        scan = functools.partial(scan_client_records, batch, header, 64 << 20)
        repeats = count if len(batch) < 100_000 else max(count // 50, 20)
        timed(f"scan_client_records, {label}", [scan] * repeats, len(batch))


def _appends(
    log: PartitionLog, template: bytes, count: int, append_time: int | None
) -> list[Callable[[], object]]:
    batches = iter([bytearray(template) for _ in range(count)])
    return [lambda: log.append(next(batches), leader_epoch=1, log_append_time=append_time)] * count


def bench_read(root: Path, batch_bytes: int, total_mb: int, reads: int) -> None:
    records = max(1, batch_bytes // 1100)
    value = max(1, batch_bytes // records - 30)
    directory = root / f"read-{batch_bytes}"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=256 << 20))
    template = client_batch(records, value, 1_700_000_000_000)
    while log.size_bytes() < total_mb << 20:
        log.append(bytearray(template), leader_epoch=1, log_append_time=None)
    end = log.log_end_offset
    rng = random.Random(1)
    offsets = [rng.randrange(0, end - end // 4) for _ in range(reads)]
    for offset in offsets[:50]:
        log.read(offset, 1 << 20)  # warm up
    sizes = [len(log.read(o, 1 << 20)) for o in offsets[:20]]
    label = f"read 1 MiB, {len(template)} B batches ({total_mb} MiB log)"
    timed(label, [lambda o=o: log.read(o, 1 << 20) for o in offsets], min(sizes))
    timed(
        f"read at the log end, {len(template)} B batches",
        [lambda: log.read(end, 1 << 20)] * reads,
    )
    timed(
        f"read 1 MiB under a high watermark, {len(template)} B batches",
        [lambda o=o: log.read(o, 1 << 20, upper_bound=end - 5) for o in offsets],
    )
    log.close()


def bench_timestamps(root: Path, queries: int) -> None:
    directory = root / "timestamps"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=16 << 20))
    ts = 1_700_000_000_000
    for i in range(20_000):
        log.append(
            bytearray(client_batch(8, 200, ts + i * 10)), leader_epoch=1, log_append_time=None
        )
    rng = random.Random(2)
    targets = [ts + rng.randrange(0, 200_000) for _ in range(queries)]
    timed(
        f"offset_for_timestamp ({len(log.segments())} segments, 20k batches)",
        [lambda t=t: log.offset_for_timestamp(t) for t in targets],
    )
    timed("max_timestamp", [log.max_timestamp] * queries)
    log.close()


def bench_open(root: Path) -> None:
    directory = root / "open"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=8 << 20))
    template = client_batch(16, 1000, 1_700_000_000_000)
    while log.size_bytes() < 64 << 20:
        log.append(bytearray(template), leader_epoch=1, log_append_time=None)
    log.flush()
    crashed = root / "open-crashed"
    shutil.copytree(directory, crashed)
    segments = len(log.segments())
    log.close()

    def reopen_clean() -> None:
        PartitionLog.open(directory, LogConfig(segment_bytes=8 << 20)).close()

    timed(f"open + close, clean, 64 MiB in {segments} segments", [reopen_clean] * 10)

    def reopen_crashed() -> None:
        target = root / "open-crashed-copy"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(crashed, target)
        start = time.perf_counter_ns()
        PartitionLog.open(target, LogConfig(segment_bytes=8 << 20)).close()
        samples.append(time.perf_counter_ns() - start)

    samples: list[int] = []
    for _ in range(5):
        reopen_crashed()
    print(
        f"{'open + close after a crash (scans the last segment)':<52} median "
        f"{statistics.median(samples) / 1000:9.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put the logs (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    random.seed(0)
    # Appends stay well below the kernel's dirty page limits (a few GB of writes would
    # measure writeback throttling, not this code).
    appends, reads = (2_000, 200) if args.quick else (5_000, 2_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        bench_append(root, appends)
        for batch_bytes in (16_000, 1_000, 100):
            bench_read(root, batch_bytes, 16 if args.quick else 64, reads)
        bench_timestamps(root, reads // 2)
        bench_open(root)


if __name__ == "__main__":
    main()
