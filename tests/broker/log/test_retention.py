"""Time and size retention, delayed file deletion, and crashes in the middle of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.broker.log import LogConfig, OffsetOutOfRange, PartitionLog, SegmentInfo
from kcli.broker.log.retention import deletable_segments
from tests.broker.log.helpers import all_bytes, client_batch, closing_every_log, crash_copy


@pytest.fixture(autouse=True)
def _release_logs() -> Iterator[None]:
    with closing_every_log():
        yield

NOW = 1_700_000_000_000
HOUR = 3_600_000


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def info(base: int, size: int = 100, max_ts: int = NOW - 1, mtime: int = NOW) -> SegmentInfo:
    return SegmentInfo(base, size, mtime, max_ts)


def deletable(segments: list[SegmentInfo], *, retention_ms: int = -1, retention_bytes: int = -1,
              start: int = 0, high_watermark: int = 10**9) -> int:
    return deletable_segments(segments, now_ms=NOW, retention_ms=retention_ms,
                              retention_bytes=retention_bytes, log_start_offset=start,
                              high_watermark=high_watermark)


# ---------------------------------------------------------------- which segments go


def test_time_retention_deletes_a_prefix_of_old_segments() -> None:
    old, new = NOW - 2 * HOUR, NOW - 60_000
    segments = [info(0, max_ts=old), info(10, max_ts=old), info(20, max_ts=new),
                info(30, max_ts=old), info(40, max_ts=old)]
    assert deletable(segments, retention_ms=HOUR) == 2  # stops at the first young one
    assert deletable(segments, retention_ms=-1) == 0
    assert deletable(segments, retention_ms=0) == 4  # never the active (last) segment
    # without timestamps, the file's modification time counts
    assert deletable([info(0, max_ts=-1, mtime=old), info(9)], retention_ms=HOUR) == 1
    assert deletable([info(0, max_ts=-1, mtime=new), info(9)], retention_ms=HOUR) == 0


def test_size_retention_keeps_at_least_retention_bytes() -> None:
    segments = [info(0, 100), info(10, 100), info(20, 100), info(30, 50)]
    assert deletable(segments, retention_bytes=350) == 0
    assert deletable(segments, retention_bytes=250) == 1  # 250 left
    assert deletable(segments, retention_bytes=249) == 1  # 150 would be less than asked
    assert deletable(segments, retention_bytes=150) == 2
    assert deletable(segments, retention_bytes=0) == 3
    assert deletable(segments, retention_bytes=-1) == 0


def test_the_high_watermark_and_the_log_start_bound_deletion() -> None:
    segments = [info(0), info(10), info(20), info(30)]
    assert deletable(segments, retention_ms=0, high_watermark=19) == 1  # 10..19 not all below
    assert deletable(segments, retention_ms=0, high_watermark=20) == 2
    assert deletable(segments, retention_ms=0, high_watermark=5) == 0
    # segments wholly below the log start go whatever the policy
    assert deletable(segments, start=20) == 2
    assert deletable(segments, start=19) == 1


# ---------------------------------------------------------------- PartitionLog


def _log(directory: Path, clock: Clock, **config: object) -> PartitionLog:
    settings = {"segment_bytes": 1_000, "index_interval_bytes": 100, "retention_ms": HOUR,
                "file_delete_delay_ms": 60_000, **config}
    return PartitionLog.open(directory, LogConfig(**settings), clock=clock)  # type: ignore[arg-type]


def _fill(log: PartitionLog, timestamps: list[int]) -> None:
    for ts in timestamps:
        log.append(client_batch(2, value_size=200, timestamp=ts), leader_epoch=ts // HOUR % 7,
                   log_append_time=None)


def test_apply_retention_deletes_old_segments_and_moves_the_start(tmp_path: Path) -> None:
    clock = Clock()
    log = _log(tmp_path / "t-0", clock)
    _fill(log, [NOW - 3 * HOUR] * 9 + [NOW] * 6)
    bases = [s.base_offset for s in log.segments()]
    keep = next(s.base_offset for s in log.segments() if s.max_timestamp == NOW + 1)
    assert log.apply_retention(high_watermark=log.log_end_offset) == bases.index(keep)
    assert log.log_start_offset == keep == log.segments()[0].base_offset
    with pytest.raises(OffsetOutOfRange):
        log.read(keep - 1, 1 << 20)
    assert log.read(keep, 1 << 20)
    hit = log.offset_for_timestamp(0)
    assert hit is not None
    assert hit[0] == keep
    assert log.leader_epochs[0][1] == keep
    assert log.apply_retention(high_watermark=log.log_end_offset) == 0
    # the start offset is persisted
    log.close()
    reopened = _log(tmp_path / "t-0", clock)
    assert reopened.log_start_offset == keep
    reopened.close()


def test_retention_applies_only_with_the_delete_policy(tmp_path: Path) -> None:
    log = _log(tmp_path / "t-0", Clock(), delete=False, compact=True, retention_bytes=0)
    _fill(log, [NOW - 3 * HOUR] * 9)
    assert log.apply_retention(high_watermark=log.log_end_offset) == 0
    log.update_config(LogConfig(segment_bytes=1_000, retention_ms=HOUR, delete=True,
                                compact=True))
    assert log.apply_retention(high_watermark=log.log_end_offset) > 0
    log.close()


def test_retention_never_passes_the_high_watermark(tmp_path: Path) -> None:
    log = _log(tmp_path / "t-0", Clock(), retention_ms=0)
    _fill(log, [NOW - HOUR] * 9)
    bases = [s.base_offset for s in log.segments()]
    assert log.apply_retention(high_watermark=bases[2] - 1) == 1
    assert log.log_start_offset == bases[1]
    assert log.apply_retention(high_watermark=log.log_end_offset) == len(bases) - 2
    assert [s.base_offset for s in log.segments()] == bases[-1:]
    log.close()


def test_deleted_files_wait_for_file_delete_delay_ms(tmp_path: Path) -> None:
    clock = Clock()
    directory = tmp_path / "t-0"
    log = _log(directory, clock, retention_ms=0)
    _fill(log, [NOW - HOUR] * 9)
    deleted = log.apply_retention(high_watermark=log.log_end_offset)
    assert len(list(directory.glob("*.log.deleted"))) == deleted
    assert len(list(directory.glob("*.deleted"))) == 3 * deleted
    clock.now += 59_999
    log.remove_deleted_files()
    assert len(list(directory.glob("*.deleted"))) == 3 * deleted
    clock.now += 1
    log.remove_deleted_files()
    assert not list(directory.glob("*.deleted"))
    # DeleteRecords goes the same way, and close removes what is pending
    log.delete_records_before(log.log_end_offset)
    assert list(directory.glob("*.log.deleted"))
    log.close()
    assert not list(directory.glob("*.deleted"))


def test_without_a_delay_files_go_at_once(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = _log(directory, Clock(), retention_ms=0, file_delete_delay_ms=0)
    _fill(log, [NOW - HOUR] * 9)
    assert log.apply_retention(high_watermark=log.log_end_offset) > 0
    assert not list(directory.glob("*.deleted"))
    assert len(list(directory.glob("*.log"))) == 1
    log.close()


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", range(6))
def test_a_crash_during_retention_keeps_a_consistent_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """Stop at each file operation of a retention pass (two segments, three files each):
    the log reopens with its new start, and the next pass removes what is left."""
    clock = Clock()
    log = _log(tmp_path / "t-0", clock, retention_ms=0)
    _fill(log, [NOW - HOUR] * 5)
    bases = [s.base_offset for s in log.segments()]
    assert len(bases) == 3
    expected = log.read(bases[2], 1 << 20)
    steps: list[str] = []

    def crash_point(step: str) -> None:
        steps.append(step)
        if len(steps) > crash_at:
            raise Crash(step)

    monkeypatch.setattr(PartitionLog, "_crash_point", staticmethod(crash_point))
    with pytest.raises(Crash):
        log.apply_retention(high_watermark=log.log_end_offset)
    copy = crash_copy(log, tmp_path / "crashed")
    monkeypatch.undo()
    reopened = _log(copy, clock, retention_ms=0)
    assert reopened.log_start_offset == bases[2]
    assert all_bytes(reopened) == expected
    reopened.apply_retention(high_watermark=reopened.log_end_offset)
    assert [s.base_offset for s in reopened.segments()] == [bases[2]]
    reopened.close()
    reopened = _log(copy, clock)
    assert not list(copy.glob("*.deleted"))
    assert all_bytes(reopened) == expected
    reopened.close()
