"""Background work on the hosted logs, as asyncio tasks on the broker's event loop.

- `retention_loop`: every log.retention.check.interval.ms, each log deletes the closed
  segments retention lets go (`PartitionLog.apply_retention`).
- `LogCleanerTask`: picks the compacted log most worth cleaning (`cleanable_range`),
  runs one cleaning round (`clean_steps`) in a worker thread, its swaps and checkpoint on
  the loop (see kcli.broker.log.cleaner for why); sleeps log.cleaner.backoff.ms when no
  log needs cleaning. log.cleaner.io.max.bytes.per.second throttles it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from kcli.broker.log.cleaner import (
    Cleanable,
    CleanAborted,
    CleanStats,
    LoopJob,
    Step,
    clean_steps,
    cleanable_range,
)
from kcli.broker.log.log import PartitionLog

__all__ = ["CleanerSettings", "HostedLog", "LogCleanerTask", "drive_in_thread", "retention_loop"]

log = logging.getLogger("kcli.broker.log")

T = TypeVar("T")

UNCLEANABLE_RETRY_MS = 600_000
"""How long a log whose cleaning failed (corrupt batch, I/O error) is left alone."""


class HostedLog(Protocol):
    """What the background tasks need of a hosted partition."""

    log: PartitionLog
    high_watermark: int

    @property
    def last_stable_offset(self) -> int:
        """Below it no transaction is open: the cleaner stops there."""
        ...

    def producer_last_offsets(self) -> dict[int, int]:
        """Last offset of the last batch of each producer id the partition tracks."""
        ...

    def aborted_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Producer id -> [first, last] offsets of each of its aborted transactions."""
        ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def retention_loop(hosted: Callable[[], Iterable[HostedLog]], interval_ms: int) -> None:
    """Apply retention to every hosted log every `interval_ms`."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        for partition in list(hosted()):
            partition_log = partition.log
            if partition_log.closed:
                continue
            try:
                partition_log.apply_retention(partition.high_watermark)
            except Exception:  # one log's failure (or a bug) must not stop retention
                log.exception("%s: retention failed", partition_log.directory)
            await asyncio.sleep(0)


class _Stopped(Exception):
    """The task driving a round was cancelled."""


async def drive_in_thread(
    steps: Generator[Step, object, T],
    *,
    stats: CleanStats | None = None,
    max_bytes_per_second: float | None = None,
) -> T | None:
    """Run a step generator in a worker thread: its loop jobs run on this event loop (each
    is timed into `stats.max_step_seconds`), thread jobs in the worker; `stats`' bytes
    stay within the rate limit. Cancelling the awaiting task stops the worker at its next
    step (the generator is closed there, in the worker, so it can clean up); None then.
    """
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def on_loop(job: LoopJob) -> object:
        future: concurrent.futures.Future[object] = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            started = time.perf_counter()
            try:
                future.set_result(job.run())
            except BaseException as error:  # handed to the worker
                future.set_exception(error)
            finally:
                if stats is not None:
                    held = time.perf_counter() - started
                    stats.max_step_seconds = max(stats.max_step_seconds, held)

        loop.call_soon_threadsafe(call)
        while True:  # never wait for a loop that is going away
            try:
                return future.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                if stop.is_set() and future.cancel():
                    raise _Stopped from None

    def work() -> T | None:
        started = time.monotonic()
        value: object = None
        error: BaseException | None = None
        try:
            while True:
                if stop.is_set():
                    return None
                try:
                    step = steps.throw(error) if error is not None else steps.send(value)
                except StopIteration as done:
                    return done.value
                value, error = None, None
                try:
                    if isinstance(step, LoopJob):
                        value = on_loop(step)
                    elif step is not None:
                        step.run()
                    elif stats is not None and max_bytes_per_second:
                        done_bytes = stats.bytes_read + stats.bytes_written
                        delay = done_bytes / max_bytes_per_second - (time.monotonic() - started)
                        stop.wait(max(delay, 0.0))
                except _Stopped:
                    return None
                except Exception as exc:  # handed back to the generator, which re-raises it
                    error = exc
        finally:
            steps.close()

    try:
        return await loop.run_in_executor(None, work)
    except asyncio.CancelledError:
        stop.set()
        raise


@dataclass(frozen=True)
class CleanerSettings:
    """The broker's log.cleaner.* settings."""

    backoff_ms: int = 15_000
    dedupe_buffer_size: int = 134_217_728
    io_max_bytes_per_second: float | None = None


class LogCleanerTask:
    """The broker's log cleaner: one round at a time, on the event loop."""

    def __init__(self, hosted: Callable[[], Iterable[HostedLog]], settings: CleanerSettings):
        self._hosted = hosted
        self.settings = settings
        self._uncleanable: dict[Path, int] = {}
        self.rounds = 0
        """Rounds completed since start (for tests and logs)."""

    def pick(self, now_ms: int) -> tuple[HostedLog, Cleanable] | None:
        """The compacted log most worth cleaning now, if any (Kafka: the filthiest)."""
        best: tuple[tuple[bool, float], HostedLog, Cleanable] | None = None
        for partition in list(self._hosted()):
            partition_log = partition.log
            config = partition_log.config
            if not config.compact or partition_log.closed:
                continue
            if self._uncleanable.get(partition_log.directory, 0) > now_ms:
                continue
            # never past an open transaction: its records may yet be aborted
            cleanable = cleanable_range(partition_log, now_ms, partition.last_stable_offset)
            if not cleanable.worth_cleaning(config.min_cleanable_dirty_ratio):
                continue
            rank = (cleanable.max_lag_passed, cleanable.dirty_ratio)
            if best is None or rank > best[0]:
                best = (rank, partition, cleanable)
        return None if best is None else (best[1], best[2])

    async def run(self) -> None:
        """Clean forever (cancel the task to stop; a round in progress is abandoned and its
        files removed)."""
        while True:
            try:
                picked = self.pick(_now_ms())
                if picked is not None:
                    await self.clean(*picked)
            except Exception:  # a bug must not stop the cleaner for every log
                log.exception("the log cleaner failed")
                picked = None
            await asyncio.sleep(0 if picked is not None else self.settings.backoff_ms / 1000)

    async def clean(self, partition: HostedLog, cleanable: Cleanable) -> CleanStats | None:
        """One round over `partition`'s log; None if it was abandoned or failed."""
        partition_log = partition.log
        log.info("%s: cleaning (dirty ratio %.2f, %d dirty and %d clean bytes%s%s)",
                 partition_log.directory, cleanable.dirty_ratio, cleanable.dirty_bytes,
                 cleanable.clean_bytes, ", max.compaction.lag.ms passed"
                 if cleanable.max_lag_passed else "",
                 ", tombstones due" if cleanable.tombstones_due else "")
        stats = CleanStats()
        try:
            steps = clean_steps(
                partition_log,
                cleanable,
                now_ms=_now_ms(),
                producer_offsets=partition.producer_last_offsets(),
                aborted=partition.aborted_ranges(),
                map_budget_bytes=self.settings.dedupe_buffer_size,
                stats=stats,
            )
            await drive_in_thread(
                steps, stats=stats, max_bytes_per_second=self.settings.io_max_bytes_per_second
            )
        except CleanAborted as aborted:
            log.info("%s", aborted)
            return None
        except Exception:  # corrupt data, I/O errors, bugs: this log only, for a while
            log.exception("%s: cleaning failed; leaving the log alone for %d s",
                          partition_log.directory, UNCLEANABLE_RETRY_MS // 1000)
            self._uncleanable[partition_log.directory] = _now_ms() + UNCLEANABLE_RETRY_MS
            return None
        self.rounds += 1
        log.info(
            "%s: cleaned %.1f KB into %.1f KB in %.3f s (%d records removed, %d segments -> %d,"
            " held the event loop %.1f ms at most)",
            partition_log.directory, stats.bytes_read / 1024, stats.bytes_written / 1024,
            stats.elapsed_seconds, stats.records_removed, stats.segments_before,
            stats.segments_after, stats.max_step_seconds * 1000,
        )
        return stats
