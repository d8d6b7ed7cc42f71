"""The log cleaner on real files: Kafka's compaction semantics, the batches it writes, the
bounds it respects, and crashes at every step of its swap."""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import (
    LogConfig,
    PartitionLog,
    Record,
    decode_records,
    encode_batch,
    iter_batches,
)
from kcli.broker.log.checkpoints import GAPS_BELOW_FILE
from kcli.broker.log.cleaner import (
    ATTR_DELETE_HORIZON,
    CleanAborted,
    CleanStats,
    Step,
    clean_steps,
    cleanable_range,
    run_steps,
)
from kcli.broker.producer_state import ProducerStateTable
from tests.broker.log.helpers import (
    PROPERTY,
    abandon,
    all_bytes,
    closing_every_log,
    crash_copy,
)


@pytest.fixture(autouse=True)
def _release_logs() -> Iterator[None]:
    with closing_every_log():
        yield

NOW = 1_700_000_000_000
DAY = 86_400_000
CONFIG = LogConfig(segment_bytes=1_200, index_interval_bytes=150, compact=True, delete=False,
                   min_cleanable_dirty_ratio=0.0, file_delete_delay_ms=0,
                   delete_retention_ms=DAY)

Row = tuple[int, bytes | None, bytes | None]
Spec = tuple[bytes | None, bytes | None]  # (key, value); value None is a tombstone


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def open_log(directory: Path, config: LogConfig = CONFIG, clock: Clock | None = None
             ) -> PartitionLog:
    return PartitionLog.open(directory, config, clock=clock or Clock())


def append(log: PartitionLog, batches: Sequence[Sequence[Spec]], *, compression: int = 0,
           producer_id: int = -1, timestamp: int = NOW - 1000, epoch: int = 0,
           log_append_time: int | None = None, first_sequence: int = 0) -> list[Row]:
    """Append one batch per item; returns (offset, key, value) of every record."""
    rows: list[Row] = []
    sequence = first_sequence
    for batch in batches:
        records = [Record(i, timestamp + i, key, value, [("h", key)])
                   for i, (key, value) in enumerate(batch)]
        data = bytearray(encode_batch(
            records, compression=compression, producer_id=producer_id,
            producer_epoch=0 if producer_id >= 0 else -1,
            base_sequence=sequence if producer_id >= 0 else -1))
        sequence += len(batch)
        info = log.append(data, leader_epoch=epoch, log_append_time=log_append_time)
        rows += [(info.base_offset + i, key, value) for i, (key, value) in enumerate(batch)]
    return rows


def roll(log: PartitionLog) -> None:
    """Push what is written into closed, synced segments (the cleaner's domain)."""
    written = log.log_end_offset
    while log.segments()[-1].base_offset < written:
        append(log, [[(b"~roll", b"x" * 400)]])
    log.flush()


def stored(log: PartitionLog) -> list[Row]:
    """Every record the log serves from its start, in order."""
    data = all_bytes(log)
    return [(r.offset, r.key, r.value) for h in iter_batches(data)
            for r in decode_records(data, h)]


def clean(log: PartitionLog, now: int = NOW, *, producers: dict[int, int] | None = None,
          budget: int = 1 << 24) -> CleanStats:
    cleanable = cleanable_range(log, now, log.log_end_offset)
    stats = CleanStats()
    return run_steps(clean_steps(log, cleanable, now_ms=now, producer_offsets=producers or {},
                                 map_budget_bytes=budget, stats=stats), stats)


def latest(rows: Sequence[Row], *, below: int | None = None) -> list[Row]:
    """The latest record of each key (tombstones too), in offset order."""
    last: dict[bytes | None, Row] = {}
    for row in rows:
        if below is None or row[0] < below:
            last[row[1]] = row
    return sorted(last.values())


def updates(n: int, keys: int, seed: int, tombstones: float = 0.0, per_batch: int = 3,
            size: int = 30) -> list[list[Spec]]:
    rng = random.Random(seed)
    specs: list[Spec] = []
    for i in range(n):
        key = f"k{rng.randrange(keys):03d}".encode()
        value = None if rng.random() < tombstones else f"v{i}-".encode().ljust(size, b".")
        specs.append((key, value))
    return [specs[i : i + per_batch] for i in range(0, n, per_batch)]


def active_base(log: PartitionLog) -> int:
    return log.segments()[-1].base_offset


# ---------------------------------------------------------------- what survives


@pytest.mark.parametrize("compression", [0, 1, 2, 3, 4])
def test_the_latest_record_of_each_key_survives_at_its_offset(
    tmp_path: Path, compression: int
) -> None:
    log = open_log(tmp_path / "t-0")
    rows = append(log, updates(300, 25, seed=compression), compression=compression)
    roll(log)
    before = stored(log)
    end = active_base(log)
    stats = clean(log)
    assert stats.records_removed > 0
    after = stored(log)
    expected = latest([r for r in before if r[0] < end]) + [r for r in before if r[0] >= end]
    assert after == sorted(expected)
    assert set(after) <= set(before)
    assert latest(after) == latest(rows + [r for r in before if r[1] == b"~roll"])
    # the same after a clean restart and after a crash (the recovery scan accepts gaps)
    copy = crash_copy(log, tmp_path / "crashed")
    (copy / "recovery-point-offset").unlink()  # scan every segment
    log.close()
    assert stored(open_log(tmp_path / "t-0")) == after
    assert stored(open_log(copy)) == after


def test_batches_keep_their_offsets_producer_epoch_codec_and_timestamp_type(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path / "t-0")
    for codec in range(5):
        append(log, updates(30, 4, seed=codec, per_batch=5), compression=codec,
               producer_id=100 + codec, epoch=codec, log_append_time=NOW - 10 if codec % 2
               else None)
    roll(log)
    before = {h.base_offset: h for h in iter_batches(all_bytes(log))}
    original = all_bytes(log)
    clean(log)
    data = all_bytes(log)
    kept = list(iter_batches(data))
    assert len(kept) < len(before)
    for header in kept:
        old = before[header.base_offset]
        assert (header.last_offset_delta, header.partition_leader_epoch, header.producer_id,
                header.producer_epoch, header.base_sequence, header.compression,
                header.timestamp_type) == (
            old.last_offset_delta, old.partition_leader_epoch, old.producer_id,
            old.producer_epoch, old.base_sequence, old.compression, old.timestamp_type)
        old_records = {r.offset: r for r in decode_records(original, old)}
        for record in decode_records(data, header):
            assert record == old_records[record.offset]  # key, value, headers, timestamp
        if header.records_count == old.records_count:  # untouched: the very same bytes
            start = header.position
            assert data[start : start + header.size] == original[
                old.position : old.position + old.size]


def test_records_without_a_key_are_dropped(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(None, b"a"), (b"k", b"b")], [(None, b"c")]])
    roll(log)
    clean(log)
    assert [(k, v) for _o, k, v in stored(log) if k != b"~roll"] == [(b"k", b"b")]


# ---------------------------------------------------------------- tombstones


def test_tombstones_stay_until_delete_retention_ms_after_their_first_clean(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path / "t-0")
    rows = append(log, [[(b"a", b"1"), (b"b", b"1")], [(b"a", None)], [(b"c", b"1")]])
    roll(log)
    clean(log, NOW)
    assert [(k, v) for _o, k, v in stored(log)][:3] == [(b"b", b"1"), (b"a", None), (b"c", b"1")]
    (tombstone_batch,) = [h for h in iter_batches(all_bytes(log)) if h.base_offset == rows[2][0]]
    assert tombstone_batch.attributes & ATTR_DELETE_HORIZON
    assert tombstone_batch.base_timestamp == NOW + DAY  # the delete horizon
    assert log.tombstone_deadline == NOW + DAY
    assert not cleanable_range(log, NOW + DAY - 1, log.log_end_offset).tombstones_due
    assert cleanable_range(log, NOW + DAY, log.log_end_offset).tombstones_due
    clean(log, NOW + DAY - 1)  # a later round before the horizon keeps it
    assert (rows[2][0], b"a", None) in stored(log)
    clean(log, NOW + DAY)
    assert [(k, v) for _o, k, v in stored(log)][:2] == [(b"b", b"1"), (b"c", b"1")]
    assert log.tombstone_deadline == -1


def test_a_tombstone_horizon_survives_a_restart(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"1")], [(b"a", None)]])
    roll(log)
    clean(log, NOW)
    log.close()
    log = open_log(tmp_path / "t-0")
    assert log.tombstone_deadline == NOW + DAY
    clean(log, NOW + DAY)
    assert not [row for row in stored(log) if row[1] == b"a"]


# ---------------------------------------------------------------- producers


def test_the_last_batch_of_each_producer_survives_even_empty(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"1"), (b"b", b"1")], [(b"a", b"2")]], producer_id=7)
    append(log, [[(b"a", b"3"), (b"b", b"3")]], producer_id=8)  # supersedes all of 7
    roll(log)
    table = ProducerStateTable.rebuild(
        (h.producer_id, h.producer_epoch, h.base_sequence, h.last_offset_delta, h.base_offset,
         h.max_timestamp) for h in log.batch_headers())
    producers = {pid: e.batches[-1].last_offset for pid, e in table.entries.items()}
    clean(log, producers=producers)
    headers = list(log.batch_headers())
    sevens = [h for h in headers if h.producer_id == 7]
    assert len(sevens) == 1  # the first batch went; the last one stays, empty
    assert (sevens[0].records_count, sevens[0].base_offset, sevens[0].last_offset_delta,
            sevens[0].base_sequence) == (0, 2, 0, 2)
    # the producer state rebuilt from the log still knows both producers' sequences
    rebuilt = ProducerStateTable.rebuild(
        (h.producer_id, h.producer_epoch, h.base_sequence, h.last_offset_delta, h.base_offset,
         h.max_timestamp) for h in log.batch_headers())
    assert {pid: e.batches[-1].last_seq for pid, e in rebuilt.entries.items()} == {7: 2, 8: 1}
    assert rebuilt.check(7, 0, 3, 0) is None  # sequence 3 follows on
    # an empty batch reads back as no records, and reading over it reaches the next one
    assert [r[1:] for r in stored(log) if r[1] != b"~roll"] == [(b"a", b"3"), (b"b", b"3")]


# ---------------------------------------------------------------- reads across gaps


def test_reads_and_timestamp_lookups_work_across_gaps(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    rows: list[Row] = []
    for i, batch in enumerate(updates(200, 10, seed=3)):
        rows += append(log, [batch], timestamp=NOW - 100_000 + 100 * i)
    roll(log)
    clean(log)
    data = all_bytes(log)
    records = [r for h in iter_batches(data) for r in decode_records(data, h)]
    offsets = [r.offset for r in records]
    assert offsets != list(range(offsets[0], offsets[0] + len(offsets)))  # there are gaps
    for offset in range(log.log_end_offset):
        first = iter_batches(log.read(offset, 1))
        header = next(first)
        # the batch holding the offset, or the next one when it was compacted away
        expected = min(r.offset for r in records if r.offset >= offset)
        got = [r.offset for r in decode_records(log.read(offset, 1), header) if r.offset >= offset]
        assert header.base_offset + header.last_offset_delta >= offset
        assert (got[0] if got else header.last_offset + 1) <= expected
    for timestamp in range(NOW - 100_100, NOW - 80_000, 97):
        expected_hit = next(((r.offset, r.timestamp) for r in records if r.timestamp >= timestamp),
                            None)
        assert log.offset_for_timestamp(timestamp) == expected_hit
    log.close()


# ---------------------------------------------------------------- bounds


def test_the_active_segment_and_unsynced_segments_are_never_cleaned(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"1")], [(b"a", b"2")]] * 40)
    log.flush()
    roll_point = active_base(log)
    append(log, [[(b"a", b"3")], [(b"a", b"4")]] * 40)  # rolled but not synced yet
    assert log.recovery_point == roll_point
    cleanable = cleanable_range(log, NOW, log.log_end_offset)
    assert all(s.base_offset < roll_point for s in cleanable.segments[: cleanable.end])
    tail = [r for r in stored(log) if r[0] >= roll_point]
    clean(log)
    assert [r for r in stored(log) if r[0] >= roll_point] == tail
    # the high watermark bounds it too
    log.flush()
    cleanable = cleanable_range(log, NOW, high_watermark=roll_point)
    assert all(s.base_offset < roll_point for s in cleanable.segments[: cleanable.end])


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path: Path) -> None:
    config = LogConfig(**{**CONFIG.__dict__, "min_compaction_lag_ms": 60_000})
    log = open_log(tmp_path / "t-0", config)
    append(log, [[(b"a", b"old")]] * 30, timestamp=NOW - 120_000)
    young = log.log_end_offset
    append(log, [[(b"a", b"young")]] * 30, timestamp=NOW - 1_000)
    roll(log)
    clean(log)
    rows = stored(log)
    # the young segments are neither cleaned nor mapped: the old ones keep their latest
    assert [r for r in rows if r[0] < young and r[1] == b"a"] == [(young - 1, b"a", b"old")]
    assert len([r for r in rows if r[0] >= young and r[1] == b"a"]) == 30


def test_max_compaction_lag_makes_a_log_worth_cleaning(tmp_path: Path) -> None:
    config = LogConfig(**{**CONFIG.__dict__, "min_cleanable_dirty_ratio": 0.99,
                          "max_compaction_lag_ms": 60_000})
    assert config.roll_ms == 60_000  # and the active segment rolls by then
    log = open_log(tmp_path / "t-0", config)
    append(log, [[(b"a", b"1")], [(b"b", b"1")]] * 20, timestamp=NOW - 30_000)
    roll(log)
    clean(log)  # now the log is clean; new dirty data is a small part of it
    append(log, [[(b"a", b"2")]], timestamp=NOW - 30_000)
    roll(log)
    cleanable = cleanable_range(log, NOW, log.log_end_offset)
    assert cleanable.dirty_ratio < 0.99
    assert not cleanable.worth_cleaning(0.99)
    later = cleanable_range(log, NOW + 70_000, log.log_end_offset)
    assert later.max_lag_passed
    assert later.worth_cleaning(0.99)


def test_a_full_offset_map_cleans_in_several_rounds(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    rows = append(log, updates(400, 60, seed=9))
    roll(log)
    end = active_base(log)
    budget = 20 * (120 + 4)  # about twenty keys per round
    rounds = 0
    while cleanable_range(log, NOW, log.log_end_offset).dirty_bytes and rounds < 50:
        stats = clean(log, budget=budget)
        assert stats.first_dirty_after == log.first_dirty_offset
        rounds += 1
    assert rounds > 2
    assert [r for r in stored(log) if r[0] < end] == latest(rows, below=end)


def test_segments_merge_as_they_shrink(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, updates(600, 5, seed=2))
    roll(log)
    before = log.segment_count
    clean(log)
    clean(log)  # the first round groups by the old sizes; the second merges the small ones
    assert log.segment_count <= 3 < before


# ---------------------------------------------------------------- the log changing under it


def advance(steps: Generator[Step, object, CleanStats], until: Callable[[Step], bool]) -> None:
    """Drive `steps` (running their jobs) until a step satisfies `until`, left unrun."""
    value: object = None
    while True:
        step = steps.send(value)
        if until(step):
            return
        value = None if step is None else step.run()



def test_a_round_is_abandoned_when_retention_takes_its_segments(tmp_path: Path) -> None:
    config = LogConfig(**{**CONFIG.__dict__, "delete": True, "retention_bytes": 0})
    log = open_log(tmp_path / "t-0", config)
    append(log, updates(300, 20, seed=4))
    roll(log)
    before = stored(log)
    steps = clean_steps(log, cleanable_range(log, NOW, log.log_end_offset), now_ms=NOW,
                        producer_offsets={}, map_budget_bytes=1 << 24, step_seconds=0)
    advance(steps, lambda step: step is None)  # the map has begun
    assert log.apply_retention(high_watermark=log.log_end_offset) > 0
    with pytest.raises(CleanAborted):
        run_steps(steps)
    assert not list(log.directory.glob("*.cleaned"))
    assert stored(log) == [r for r in before if r[0] >= log.log_start_offset]


def test_closing_the_round_midway_removes_its_files(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, updates(300, 20, seed=5))
    roll(log)
    steps = clean_steps(log, cleanable_range(log, NOW, log.log_end_offset), now_ms=NOW,
                        producer_offsets={}, map_budget_bytes=1 << 24, step_seconds=0)
    advance(steps, lambda _step: bool(list(log.directory.glob("*.cleaned"))))
    steps.close()  # what stopping the cleaner does
    assert not list(log.directory.glob("*.cleaned"))


# ---------------------------------------------------------------- crashes during the swap


class Crash(Exception):
    pass


def _pristine(directory: Path) -> tuple[list[Row], int]:
    log = open_log(directory)
    rows = append(log, updates(240, 12, seed=11, tombstones=0.1))
    roll(log)
    end = active_base(log)
    log.close()
    return rows, end


@pytest.fixture(scope="module")
def swap_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row], int, int]:
    """A log to clean, and how many file operations its cleaning performs."""
    directory = tmp_path_factory.mktemp("swap") / "t-0"
    rows, end = _pristine(directory)
    probe = tmp_path_factory.mktemp("probe") / "t-0"
    shutil.copytree(directory, probe)
    steps: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PartitionLog, "_crash_point", staticmethod(steps.append))
        log = open_log(probe)
        clean(log)
        log.close()
    assert any(s.startswith("swap") for s in steps)
    assert any(s.startswith("install") for s in steps)
    return directory, rows, end, len(steps)


def _check_consistent(log: PartitionLog, rows: list[Row], end: int) -> None:
    """Nothing lost, nothing invented: every stored record is a produced one at its offset,
    in order, and the latest record of every key below `end` is there."""
    produced = {row[0]: row for row in rows}
    got = [r for r in stored(log) if r[0] < end]
    assert [r[0] for r in got] == sorted({r[0] for r in got})
    assert all(produced[r[0]] == r for r in got)
    assert latest(got) == latest(rows, below=end)


def test_a_crash_at_every_step_of_the_swap_loses_nothing(
    swap_source: tuple[Path, list[Row], int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, rows, end, operations = swap_source
    for crash_at in range(operations):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "t-0"
            shutil.copytree(source, directory)
            calls = 0

            def crash_point(step: str, stop: int = crash_at) -> None:
                nonlocal calls
                calls += 1
                if calls > stop:
                    raise Crash(step)

            monkeypatch.setattr(PartitionLog, "_crash_point", staticmethod(crash_point))
            log = open_log(directory)
            with pytest.raises(Crash):
                clean(log)
            copy = crash_copy(log, Path(tmp) / "crashed")
            abandon(log)
            monkeypatch.undo()
            reopened = open_log(copy)
            assert not [p for p in copy.iterdir()
                        if p.name.endswith((".cleaned", ".swap", ".deleted"))]
            _check_consistent(reopened, rows, end)
            clean(reopened)  # and a later round completes
            assert [r for r in stored(reopened) if r[0] < end] == latest(rows, below=end)
            reopened.close()


def test_leftover_cleaner_files_in_every_state_are_settled(tmp_path: Path) -> None:
    """Hand-made states: uncommitted `.cleaned` files, an index `.swap` without its log, and
    a committed `.log.swap` with the old segments still there, with or without its index."""
    source = tmp_path / "source"
    rows, end = _pristine(source)
    cleaned = tmp_path / "cleaned"
    shutil.copytree(source, cleaned)
    log = open_log(cleaned)
    clean(log)
    log.close()
    first = sorted(source.glob("*.log"))[0].name[:20]
    pristine = tmp_path / "pristine"
    shutil.copytree(source, pristine)
    original = all_bytes(open_log(pristine))

    def state(name: str, files: dict[str, str]) -> PartitionLog:
        directory = tmp_path / name / "t-0"
        shutil.copytree(source, directory)
        (directory / ".kcli-clean-shutdown").unlink()  # as a crash leaves it
        shutil.copy(cleaned / GAPS_BELOW_FILE, directory / GAPS_BELOW_FILE)
        for target, origin in files.items():
            shutil.copy(cleaned / origin, directory / target)
        return open_log(directory)

    uncommitted = state("cleaned", {f"{first}.log.cleaned": f"{first}.log",
                                    f"{first}.index.cleaned": f"{first}.index"})
    assert all_bytes(uncommitted) == original  # rolled back
    half = state("index-swap", {f"{first}.index.swap": f"{first}.index"})
    assert all_bytes(half) == original
    for name, extra in (("log-swap", {}), ("log-and-index-swap",
                                          {f"{first}.index.swap": f"{first}.index",
                                           f"{first}.timeindex.swap": f"{first}.timeindex"})):
        committed = state(name, {f"{first}.log.swap": f"{first}.log", **extra})
        _check_consistent(committed, rows, end)
        assert int(first) in {s.base_offset for s in committed.segments()}
        assert not list(committed.directory.glob("*.swap"))


# ---------------------------------------------------------------- recovery and the gap limit


def test_gaps_are_accepted_only_below_the_gap_limit(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, updates(150, 8, seed=6))
    roll(log)
    clean(log)
    limit = log.gaps_below
    assert limit == active_base(log)
    before = stored(log)
    copy = crash_copy(log, tmp_path / "garbled")
    (copy / "recovery-point-offset").unlink()
    for name in ("index", "timeindex"):
        for path in copy.glob(f"*.{name}"):
            path.write_bytes(b"garbage")
    assert stored(open_log(copy)) == before  # a full rescan keeps every compacted segment
    # without the gap limit, a scan would cut the log at the first gap
    strict = crash_copy(log, tmp_path / "strict")
    (strict / "recovery-point-offset").unlink()
    (strict / GAPS_BELOW_FILE).unlink()
    assert len(stored(open_log(strict))) < len(before)


def test_a_garbled_gap_limit_allows_gaps_anywhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, updates(150, 8, seed=7))
    roll(log)
    clean(log)
    before = stored(log)
    copy = crash_copy(log, tmp_path / "garbled")
    (copy / "recovery-point-offset").unlink()
    (copy / GAPS_BELOW_FILE).write_bytes(b"\xff\xfe")
    with caplog.at_level(logging.WARNING, logger="kcli.broker.log"):
        assert stored(open_log(copy)) == before
    assert any(GAPS_BELOW_FILE in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- the model


events = st.lists(
    st.tuples(st.integers(0, 7), st.booleans(), st.integers(0, 2)),  # key, tombstone, cut
    min_size=1, max_size=120,
)


@PROPERTY
@given(events=events, codec=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_cleaning_matches_the_model(events: list[tuple[int, bool, int]], codec: int,
                                    seed: int) -> None:
    """Random keys, values and tombstones over several segments: after a round the log holds
    the latest record of each key below the cleaned end (tombstones kept until their
    horizon) plus everything after it; a round past the horizon drops the tombstones; reads
    from every offset agree with the stored records."""
    with tempfile.TemporaryDirectory() as tmp:
        config = LogConfig(**{**CONFIG.__dict__, "segment_bytes": 400})
        log = open_log(Path(tmp) / "t-0", config)
        rng = random.Random(seed)
        batches: list[list[Spec]] = [[]]
        for key, tombstone, cut in events:
            batches[-1].append((b"k%d" % key, None if tombstone else b"v%d" % rng.getrandbits(20)))
            if cut == 0:
                batches.append([])
        rows = append(log, [b for b in batches if b], compression=codec)
        roll(log)
        end = active_base(log)
        everything = stored(log)
        clean(log, NOW)
        model = latest(everything, below=end) + [r for r in everything if r[0] >= end]
        assert stored(log) == model
        clean(log, NOW + DAY)
        without = [r for r in latest(everything, below=end) if r[2] is not None]
        assert stored(log) == without + [r for r in everything if r[0] >= end]
        assert latest(rows) == latest([r for r in everything if r[1] != b"~roll"])
        data = stored(log)
        for offset in range(log.log_start_offset, log.log_end_offset):
            served = log.read(offset, 1)
            header = next(iter_batches(served))
            records = [r.offset for r in decode_records(served, header)]
            following = [r[0] for r in data if r[0] >= offset]
            assert header.last_offset >= offset
            assert [o for o in records if o >= offset] == following[: len(
                [o for o in records if o >= offset])]
        log.close()


def test_a_round_with_nothing_cleanable_does_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"1")], [(b"a", b"2")]])  # all in the active segment
    stats = clean(log)
    assert (stats.records_read, stats.bytes_written) == (0, 0)
    assert [r[1:] for r in stored(log)] == [(b"a", b"1"), (b"a", b"2")]


# ---------------------------------------------------------------- transactions


def test_aborted_records_never_shadow_and_are_removed_markers_stay(tmp_path: Path) -> None:
    """KIP-98's cleaner rules: a key's aborted update does not count as its latest (the
    committed one before it stays), aborted records go whatever their keys, and the
    markers stay for read_committed consumers."""
    from kcli.broker.txn.markers import encode_marker, read_marker

    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"committed"), (b"only", b"plain")]])

    def transaction(producer_id: int, rows: list[Spec], commit: bool) -> None:
        for key, value in rows:
            batch = encode_batch([Record(0, NOW - 1000, key, value, [])],
                                 producer_id=producer_id, producer_epoch=0,
                                 base_sequence=0, is_transactional=True)
            log.append(bytearray(batch), leader_epoch=0, log_append_time=None)
        log.append(bytearray(encode_marker(producer_id, 0, commit=commit,
                                           coordinator_epoch=0, timestamp=NOW - 1000)),
                   leader_epoch=0, log_append_time=None)

    transaction(7, [(b"a", b"aborted"), (b"gone", b"aborted too")], commit=False)  # 2, 3, 4
    transaction(8, [(b"b", b"kept")], commit=True)  # 5, 6
    roll(log)
    cleanable = cleanable_range(log, NOW, log.log_end_offset)
    run_steps(clean_steps(log, cleanable, now_ms=NOW, producer_offsets={},
                          aborted={7: [(2, 4)]}, map_budget_bytes=1 << 24))
    data = all_bytes(log)
    survivors = [(r.offset, r.key, r.value) for h in iter_batches(data) if not h.is_control
                 for r in decode_records(data, h) if r.key != b"~roll"]
    assert survivors == [(0, b"a", b"committed"), (1, b"only", b"plain"), (5, b"b", b"kept")]
    markers = [(h.base_offset, read_marker(data, h)) for h in iter_batches(data)
               if h.is_control]
    assert [(offset, m.commit if m else None) for offset, m in markers] == [
        (4, False), (6, True)]


def test_the_cleaner_stops_at_an_open_transaction(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    append(log, [[(b"a", b"1")]])
    roll(log)
    open_at = log.log_end_offset
    batch = encode_batch([Record(0, NOW - 1000, b"a", b"maybe", [])], producer_id=9,
                         producer_epoch=0, base_sequence=0, is_transactional=True)
    log.append(bytearray(batch), leader_epoch=0, log_append_time=None)
    append(log, [[(b"a", b"3")]])
    roll(log)
    # the last stable offset is where the open transaction begins: nothing after it is
    # cleanable, so "1" is not judged against records that may yet be aborted
    cleanable = cleanable_range(log, NOW, open_at)
    run_steps(clean_steps(log, cleanable, now_ms=NOW, producer_offsets={},
                          map_budget_bytes=1 << 24))
    assert (0, b"a", b"1") in stored(log)
