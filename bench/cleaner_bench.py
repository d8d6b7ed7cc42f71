"""Log cleaner throughput, side by side with plain reads of the same log.

    python bench/cleaner_bench.py [--dir DIR] [--mb 64] [--codec none|lz4|...]

Builds a log of keyed records (100-byte values, 20 per batch, 1 MiB segments) and
measures, with the page cache warm:

- read: PartitionLog.read() of the whole log in 1 MiB calls (bytes only, what Fetch does);
- read+decode: the same, then decode_records() on every batch (what any record-level
  pass costs at least);
- clean: one cleaning round over the whole log (map, rewrite, fsync, swap), for a log
  where most records are superseded (many updates per key), and again for a log where
  every record survives (unique keys: all batches are copied as they are).

MB/s is of log bytes cleaned (the input). Also prints the longest step the cleaner held
the event loop (its steps run on the broker's loop between requests).

With --loop, it measures what a clean costs the event loop: small request/response
round trips over a socket pair, on the loop, while nothing runs, while a round runs in
steps on the loop (what the broker does), and while the same round runs in a worker thread
(which holds the GIL while it parses records).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a checkout without an install

from kcli.broker.log import (  # noqa: E402
    LogConfig,
    PartitionLog,
    Record,
    decode_records,
    encode_batch,
    iter_batches,
)
from kcli.broker.log.background import drive_in_thread  # noqa: E402
from kcli.broker.log.cleaner import (  # noqa: E402
    CleanStats,
    Step,
    ThreadJob,
    clean_steps,
    cleanable_range,
    run_steps,
)

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
RECORDS_PER_BATCH = 20
VALUE_SIZE = 100


def build(directory: Path, megabytes: int, keys: int, codec: int) -> PartitionLog:
    config = LogConfig(segment_bytes=1 << 20, compact=True, delete=False,
                       min_cleanable_dirty_ratio=0.0, file_delete_delay_ms=0)
    log = PartitionLog.open(directory, config)
    rng = random.Random(1)
    value = rng.randbytes(VALUE_SIZE)
    now = int(time.time() * 1000)
    n = 0
    while log.size_bytes() < megabytes << 20:
        records = [Record(i, now, b"key-%08d" % rng.randrange(keys), value, [])
                   for i in range(RECORDS_PER_BATCH)]
        if keys > 10**8:  # unique keys: every record survives
            records = [Record(i, now, b"key-%010d" % (n + i), value, [])
                       for i in range(RECORDS_PER_BATCH)]
        n += RECORDS_PER_BATCH
        log.append(bytearray(encode_batch(records, compression=codec)), leader_epoch=0,
                   log_append_time=None)
    # roll, so that everything written is in closed segments, and sync
    written = log.log_end_offset
    while log.segments()[-1].base_offset < written:
        log.append(bytearray(encode_batch([Record(0, now, b"~", b"x" * 1000, [])])),
                   leader_epoch=0, log_append_time=None)
    log.flush()
    return log


def mb_per_s(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:8.1f} MB/s"


def bench_read(log: PartitionLog, decode: bool) -> tuple[int, float]:
    offset = log.log_start_offset
    end = log.segments()[-1].base_offset
    total = 0
    started = time.perf_counter()
    while offset < end:
        data = log.read(offset, 1 << 20, upper_bound=end)
        if not data:
            break
        total += len(data)
        for header in iter_batches(data):
            if decode:
                decode_records(data, header)
            offset = header.base_offset + header.last_offset_delta + 1
    return total, time.perf_counter() - started


def bench_clean(log: PartitionLog) -> tuple[CleanStats, float, int]:
    cleanable = cleanable_range(log, int(time.time() * 1000), log.log_end_offset)
    size = sum(s.size for s in cleanable.segments[: cleanable.end])
    stats = CleanStats()
    started = time.perf_counter()
    run_steps(clean_steps(log, cleanable, now_ms=int(time.time() * 1000), producer_offsets={},
                          map_budget_bytes=1 << 30, stats=stats), stats)
    return stats, time.perf_counter() - started, size


async def _round_trips(stop: asyncio.Event, busy: int) -> list[float]:
    """Ping-pong 100 bytes over a socket pair until `stop`, the echo doing `busy` units
    of Python work per request (1500 is about 50 µs); each round trip's seconds."""
    left, right = socket.socketpair()
    reader_l, writer_l = await asyncio.open_connection(sock=left)
    reader_r, writer_r = await asyncio.open_connection(sock=right)

    async def echo() -> None:
        while True:
            data = await reader_r.readexactly(100)
            sum(range(busy))  # stands for decoding and answering a request
            writer_r.write(data)
            await writer_r.drain()

    echoer = asyncio.create_task(echo())
    samples: list[float] = []
    payload = b"x" * 100
    while not stop.is_set():
        started = time.perf_counter()
        writer_l.write(payload)
        await writer_l.drain()
        await reader_l.readexactly(100)
        samples.append(time.perf_counter() - started)
    echoer.cancel()
    writer_l.close()
    writer_r.close()
    return samples


async def drive_on_loop(steps: Generator[Step, object, CleanStats]) -> None:
    """The alternative the broker does not use: every step on the event loop, yielding to
    other tasks between steps (thread jobs still in a thread)."""
    value: object = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration:
            return
        value = None
        if isinstance(step, ThreadJob):
            await asyncio.to_thread(step.run)
        elif step is not None:
            value = step.run()
        else:
            await asyncio.sleep(0)


async def _loop_while(work: str, log: PartitionLog | None, busy: int
                      ) -> tuple[list[float], float, float]:
    stop = asyncio.Event()
    pinger = asyncio.create_task(_round_trips(stop, busy))
    started = time.perf_counter()
    stats = CleanStats()
    if log is None:
        await asyncio.sleep(2)
    else:
        now = int(time.time() * 1000)
        cleanable = cleanable_range(log, now, log.log_end_offset)
        steps = clean_steps(log, cleanable, now_ms=now, producer_offsets={},
                            map_budget_bytes=1 << 30, stats=stats)
        if work == "steps":
            await drive_on_loop(steps)
        else:
            await drive_in_thread(steps, stats=stats)
    elapsed = time.perf_counter() - started
    stop.set()
    return await pinger, elapsed, stats.max_step_seconds


def bench_loop(root: Path, megabytes: int, codec: int) -> None:
    for busy, what in ((0, "an idle loop"), (1500, "~50 µs of Python work per request")):
        print(f"event loop round trips (100 B over a socket pair, {what}) while cleaning "
              f"{megabytes} MiB:")
        _bench_loop(root, megabytes, codec, busy)


def _bench_loop(root: Path, megabytes: int, codec: int, busy: int) -> None:
    for work in ("idle", "steps", "thread"):
        log = None
        if work != "idle":
            log = build(root / f"loop-{work}-{busy}", megabytes, 10_000, codec)
        samples, elapsed, held = asyncio.run(_loop_while(work, log, busy))
        samples.sort()
        p99 = samples[int(len(samples) * 0.99)]
        label = {"idle": "nothing else running", "steps": "clean in 4 ms steps on the loop",
                 "thread": "clean in a worker thread (kcli)"}[work]
        print(f"  {label:<28} {len(samples) / elapsed:9.0f} round trips/s, "
              f"median {statistics.median(samples) * 1e6:7.0f} µs, p99 {p99 * 1e6:7.0f} µs, "
              f"max {samples[-1] * 1e3:6.1f} ms; the work took {elapsed:.2f} s"
              + (f", loop jobs held it {held * 1e3:.1f} ms at most" if work == "thread" else ""))
        if log is not None:
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put the logs (default: a temp dir)")
    parser.add_argument("--mb", type=int, default=64, help="log size in MiB (default 64)")
    parser.add_argument("--codec", choices=sorted(CODECS), default="none")
    parser.add_argument("--loop", action="store_true",
                        help="measure the event loop while cleaning, in steps and in a thread")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir))
    codec = CODECS[args.codec]
    if args.loop:
        try:
            bench_loop(root, args.mb, codec)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    try:
        for label, keys in (("most records superseded (10k keys)", 10_000),
                            ("every record survives (unique keys)", 10**9)):
            log = build(root / f"t-{keys}", args.mb, keys, codec)
            bench_read(log, decode=False)  # warm the page cache
            size, seconds = bench_read(log, decode=False)
            print(f"{label}, {args.codec}, {size / 1e6:.1f} MB in closed segments")
            print(f"  read (bytes, as Fetch)       {mb_per_s(size, seconds)}")
            size, seconds = bench_read(log, decode=True)
            print(f"  read + decode_records        {mb_per_s(size, seconds)}")
            stats, seconds, size = bench_clean(log)
            print(f"  clean (one round)            {mb_per_s(size, seconds)}   "
                  f"{size / 1e6:.1f} MB -> {stats.bytes_written / 1e6:.1f} MB, "
                  f"{stats.records_removed} of {stats.records_read} records removed, "
                  f"longest step {stats.max_step_seconds * 1000:.1f} ms")
            log.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
