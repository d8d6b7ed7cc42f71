"""The retention loop and the cleaner task on an event loop, with logs hosted in memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kcli.broker.log import LogConfig, PartitionLog, Record, encode_batch
from kcli.broker.log.background import CleanerSettings, LogCleanerTask, retention_loop
from kcli.broker.log.cleaner import cleanable_range
from tests.broker.log.helpers import closing_every_log


@pytest.fixture(autouse=True)
def _release_logs() -> Iterator[None]:
    with closing_every_log():
        yield

CONFIG = LogConfig(segment_bytes=1_000, compact=True, delete=False, file_delete_delay_ms=0,
                   min_cleanable_dirty_ratio=0.5)


@dataclass
class Hosted:
    log: PartitionLog
    high_watermark: int = 0
    producers: dict[int, int] = field(default_factory=dict)

    def producer_last_offsets(self) -> dict[int, int]:
        return self.producers

    @property
    def last_stable_offset(self) -> int:
        return self.high_watermark  # no transactions here

    def aborted_ranges(self) -> dict[int, list[tuple[int, int]]]:
        return {}


def hosted(directory: Path, config: LogConfig = CONFIG, updates: int = 200,
           keys: int = 5) -> Hosted:
    log = PartitionLog.open(directory, config)
    now = int(time.time() * 1000)
    for i in range(updates):
        record = Record(0, now, b"k%d" % (i % keys), b"v" * 50, [])
        log.append(bytearray(encode_batch([record])), leader_epoch=0, log_append_time=None)
    log.flush()
    return Hosted(log, log.log_end_offset)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (polls state the task changes)
            await asyncio.sleep(0.01)


def test_the_cleaner_picks_the_dirtiest_compacted_log(tmp_path: Path) -> None:
    dirty = hosted(tmp_path / "dirty-0")
    lukewarm = hosted(tmp_path / "lukewarm-0", keys=60)
    plain = hosted(tmp_path / "plain-0", LogConfig(segment_bytes=1_000))
    task = LogCleanerTask(lambda: [plain, lukewarm, dirty], CleanerSettings(backoff_ms=10))
    now = int(time.time() * 1000)
    asyncio.run(task.clean(lukewarm, cleanable_range(lukewarm.log, now, 10**9)))
    for i in range(100):  # some dirt on a clean log: a ratio between 0.5 and 1
        record = Record(0, now, b"k%d" % i, b"w" * 50, [])
        lukewarm.log.append(bytearray(encode_batch([record])), leader_epoch=0,
                            log_append_time=None)
    lukewarm.log.flush()
    lukewarm.high_watermark = lukewarm.log.log_end_offset
    ratio = cleanable_range(lukewarm.log, now, lukewarm.high_watermark).dirty_ratio
    assert 0.5 <= ratio < 1
    picked = task.pick(now)
    assert picked is not None
    assert picked[0] is dirty  # the filthiest first

    async def run() -> None:
        runner = asyncio.create_task(task.run())
        await _until(lambda: task.rounds >= 3)
        runner.cancel()

    asyncio.run(run())
    assert dirty.log.size_bytes() < 3_000
    for item in (dirty, lukewarm):  # cleaned up to the active segment
        assert item.log.first_dirty_offset == item.log.segments()[-1].base_offset
    assert task.pick(int(time.time() * 1000)) is None  # nothing left worth a round
    assert plain.log.first_dirty_offset == 0  # never compacted


def test_cancelling_the_cleaner_midway_removes_its_files(tmp_path: Path) -> None:
    item = hosted(tmp_path / "t-0", updates=2_000)
    slow = CleanerSettings(backoff_ms=10, io_max_bytes_per_second=100_000)
    task = LogCleanerTask(lambda: [item], slow)

    async def run() -> None:
        runner = asyncio.create_task(task.run())
        await _until(lambda: any(item.log.directory.glob("*.cleaned")))
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(run())
    assert not list(item.log.directory.glob("*.cleaned"))
    assert task.rounds == 0


def test_a_failing_log_is_left_alone_and_the_others_are_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = hosted(tmp_path / "broken-0", keys=1)
    fine = hosted(tmp_path / "fine-0", keys=2)

    def explode() -> dict[int, int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(broken, "producer_last_offsets", explode)
    task = LogCleanerTask(lambda: [broken, fine], CleanerSettings(backoff_ms=10))

    async def run() -> None:
        runner = asyncio.create_task(task.run())
        await _until(lambda: task.rounds >= 1)
        runner.cancel()

    asyncio.run(run())
    assert fine.log.first_dirty_offset > 0
    assert broken.log.first_dirty_offset == 0
    assert task.pick(int(time.time() * 1000)) is None  # the broken one waits a while


def test_the_retention_loop_applies_retention_to_every_log(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1_000, retention_bytes=2_000, file_delete_delay_ms=0)
    items = [hosted(tmp_path / f"t-{i}", config) for i in range(2)]

    async def run() -> None:
        loop = asyncio.create_task(retention_loop(lambda: items, interval_ms=10))
        await _until(lambda: all(item.log.log_start_offset > 0 for item in items))
        loop.cancel()

    asyncio.run(run())
    for item in items:
        assert 2_000 <= item.log.size_bytes() <= 3_000
