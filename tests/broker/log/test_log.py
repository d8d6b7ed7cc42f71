"""PartitionLog: appends, reads, timestamps, rolling, trimming, epochs; real files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import (
    CorruptBatch,
    FileRecords,
    InvalidBatch,
    LogConfig,
    OffsetOutOfRange,
    PartitionLog,
    Record,
    decode_records,
    encode_batch,
    iter_batches,
    read_header,
)
from tests.broker.log.helpers import (
    PROPERTY,
    Model,
    all_bytes,
    client_batch,
    crash_copy,
)

SMALL = LogConfig(segment_bytes=2_000, index_interval_bytes=200)


class Clock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def fill(log: PartitionLog, model: Model, batches: list[bytearray], epoch: int = 0) -> None:
    for batch in batches:
        info = log.append(batch, leader_epoch=epoch, log_append_time=None)
        model.add(info.base_offset, info.last_offset, bytes(batch))


# ---------------------------------------------------------------- append and read


def test_append_assigns_offsets_and_stamps_the_batch(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    first = client_batch(3)
    info = log.append(first, leader_epoch=4, log_append_time=None)
    assert (info.base_offset, info.last_offset, info.log_append_time) == (0, 2, -1)
    assert info.max_timestamp == 1_002
    second = client_batch(2, timestamp=5_000)
    info = log.append(second, leader_epoch=4, log_append_time=None)
    assert (info.base_offset, info.last_offset) == (3, 4)
    assert log.log_end_offset == 5
    stored = log.read(0, 1 << 20)
    assert stored == bytes(first) + bytes(second)
    headers = list(iter_batches(stored))
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, 4), (3, 4)]
    log.close()


def test_log_append_time(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    info = log.append(client_batch(3, timestamp=10), leader_epoch=0, log_append_time=777)
    assert (info.log_append_time, info.max_timestamp) == (777, 777)
    data = log.read(0, 1 << 20)
    header = read_header(data)
    assert header.timestamp_type == 1
    assert {r.timestamp for r in decode_records(data, header)} == {777}
    assert log.offset_for_timestamp(700) == (0, 777)
    assert log.offset_for_timestamp(778) is None
    assert log.max_timestamp() == (777, 0)
    log.close()


def test_read_edges(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    batches = [client_batch(4, value_size=100) for _ in range(3)]
    for batch in batches:
        log.append(batch, leader_epoch=0, log_append_time=None)
    size = len(batches[0])
    assert log.read(12, 100) == b""
    with pytest.raises(OffsetOutOfRange) as caught:
        log.read(13, 100)
    assert (caught.value.log_start_offset, caught.value.log_end_offset) == (0, 12)
    assert caught.value.error_code == 1
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)
    # the batch containing the offset, whole
    assert log.read(6, 10 * size) == bytes(batches[1]) + bytes(batches[2])
    # KIP-74: at least one whole batch even when it exceeds max_bytes
    assert log.read(5, 1) == bytes(batches[1])
    assert log.read(5, 0) == bytes(batches[1])
    assert log.read(0, 2 * size - 1) == bytes(batches[0])
    assert log.read(0, 2 * size) == bytes(batches[0]) + bytes(batches[1])
    # the high watermark
    assert log.read(0, 1 << 20, upper_bound=4) == bytes(batches[0])
    assert log.read(4, 1 << 20, upper_bound=4) == b""
    assert log.read(0, 1 << 20, upper_bound=5) == bytes(batches[0]) + bytes(batches[1])
    assert log.read(0, 1 << 20, upper_bound=0) == b""
    assert log.read(0, 1 << 20, upper_bound=100) == all_bytes(log)
    log.close()


@st.composite
def batch_plans(draw: st.DrawFn) -> list[tuple[int, int]]:
    """(record count, value size) per batch."""
    return draw(
        st.lists(
            st.tuples(st.integers(1, 5), st.sampled_from([0, 5, 40, 300, 900, 2500])),
            min_size=1,
            max_size=25,
        )
    )


def _build(
    directory: Path, plan: list[tuple[int, int]], config: LogConfig
) -> tuple[PartitionLog, Model]:
    log = PartitionLog.open(directory, config)
    model = Model()
    ts = 10_000
    for count, size in plan:
        batch = client_batch(count, value_size=size, timestamp=ts)
        ts += 7
        info = log.append(batch, leader_epoch=0, log_append_time=None)
        model.add(info.base_offset, info.last_offset, bytes(batch))
    return log, model


def _check_reads(log: PartitionLog, model: Model, queries: list[tuple[int, int, int]]) -> None:
    end = model.end
    assert log.log_end_offset == end
    for offset_seed, max_bytes, bound_seed in queries:
        offset = offset_seed % (end + 1)
        bound = None if bound_seed % 4 == 0 else bound_seed % (end + 2)
        expected = model.read(offset, max_bytes, bound)
        assert log.read(offset, max_bytes, upper_bound=bound) == expected, (
            offset, max_bytes, bound)
        # the same bytes as file ranges for sendfile (every read, however short)
        sent = log.read_for_send(offset, max_bytes, upper_bound=bound, min_bytes=1)
        if expected:
            assert isinstance(sent, FileRecords)
            assert (len(sent), sent.read()) == (len(expected), expected)
            sent.close()
        else:
            assert sent == b""


read_queries = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.sampled_from([0, 1, 100, 1_000, 3_000, 8_000, 1 << 20]),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=25,
)


@PROPERTY
@given(
    batch_plans(),
    read_queries,
    st.sampled_from([(2_000, 200), (5_000, 1), (1 << 30, 4096), (700, 50)]),
)
def test_reads_match_the_model_before_and_after_reopening(
    plan: list[tuple[int, int]], queries: list[tuple[int, int, int]], sizes: tuple[int, int]
) -> None:
    config = LogConfig(segment_bytes=sizes[0], index_interval_bytes=sizes[1])
    with tempfile.TemporaryDirectory() as tmp:
        log, model = _build(Path(tmp) / "t-0", plan, config)
        _check_reads(log, model, queries)
        crashed = PartitionLog.open(crash_copy(log, Path(tmp) / "crashed"), config)
        _check_reads(crashed, model, queries)
        crashed.close()
        log.close()
        reopened = PartitionLog.open(Path(tmp) / "t-0", config)
        _check_reads(reopened, model, queries)
        # and it goes on appending where it left off
        batch = client_batch(2)
        info = reopened.append(batch, leader_epoch=0, log_append_time=None)
        assert info.base_offset == model.end
        model.add(info.base_offset, info.last_offset, bytes(batch))
        _check_reads(reopened, model, queries)
        reopened.close()


# ---------------------------------------------------------------- timestamps


@st.composite
def timestamp_plans(draw: st.DrawFn) -> list[tuple[list[int], bool]]:
    """Per batch: record timestamps and whether it is appended with LogAppendTime."""
    return draw(
        st.lists(
            st.tuples(
                st.lists(st.integers(0, 60), min_size=1, max_size=4),
                st.booleans(),
            ),
            min_size=1,
            max_size=20,
        )
    )


@PROPERTY
@given(
    timestamp_plans(), st.lists(st.integers(-1, 70), min_size=1, max_size=10), st.integers(0, 100)
)
def test_offset_for_timestamp_agrees_with_a_scan(
    plan: list[tuple[list[int], bool]], targets: list[int], start_seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = LogConfig(segment_bytes=600, index_interval_bytes=80)
        log = PartitionLog.open(Path(tmp) / "t-0", config)
        model = Model()
        for i, (stamps, append_time) in enumerate(plan):
            batch = client_batch(timestamps=stamps, value_size=20, compression=i % 5)
            info = log.append(
                batch, leader_epoch=0, log_append_time=30 + i if append_time else None
            )
            model.add(info.base_offset, info.last_offset, bytes(batch))
        for reopen in (False, True):
            if reopen:
                log.close()
                log = PartitionLog.open(Path(tmp) / "t-0", config)
            for target in targets:
                assert log.offset_for_timestamp(target) == model.offset_for_timestamp(target)
            assert log.max_timestamp() == model.max_timestamp()
        start = start_seed % (model.end + 1)
        model.log_start = log.delete_records_before(start)
        for target in targets:
            assert log.offset_for_timestamp(target) == model.offset_for_timestamp(target)
        log.close()


def test_an_empty_log_has_no_timestamps(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert log.offset_for_timestamp(0) is None
    assert log.max_timestamp() is None
    log.close()


# ---------------------------------------------------------------- rolling


def test_roll_by_segment_bytes(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1_000))
    sizes = []
    for _ in range(20):
        batch = client_batch(2, value_size=150)
        sizes.append(len(batch))
        log.append(batch, leader_epoch=0, log_append_time=None)
    segments = log.segments()
    assert len(segments) > 1
    assert all(s.size <= 1_000 for s in segments)
    assert sum(s.size for s in segments) == log.size_bytes() == sum(sizes)
    per_segment = 1_000 // sizes[0]
    assert [s.base_offset for s in segments] == [2 * per_segment * i for i in range(len(segments))]
    assert sorted(p.name for p in (tmp_path / "t-0").glob("*.log")) == [
        f"{s.base_offset:020d}.log" for s in segments
    ]
    # a batch bigger than a segment still goes in, alone
    log.append(client_batch(1, value_size=3_000), leader_epoch=0, log_append_time=None)
    assert log.segments()[-1].size > 1_000
    log.close()


def test_roll_by_segment_ms_on_batch_timestamps(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_ms=1_000))
    log.append(client_batch(1, timestamp=10_000), leader_epoch=0, log_append_time=None)
    log.append(client_batch(1, timestamp=11_000), leader_epoch=0, log_append_time=None)
    assert len(log.segments()) == 1
    log.append(client_batch(1, timestamp=11_001), leader_epoch=0, log_append_time=None)
    assert [s.base_offset for s in log.segments()] == [0, 2]
    log.close()
    # after a restart the rule still measures from the segment's first batch
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_ms=1_000))
    log.append(client_batch(1, timestamp=12_001), leader_epoch=0, log_append_time=None)
    assert [s.base_offset for s in log.segments()] == [0, 2]
    log.append(client_batch(1, timestamp=12_002), leader_epoch=0, log_append_time=None)
    assert [s.base_offset for s in log.segments()] == [0, 2, 4]
    log.close()


def test_roll_by_segment_ms_on_the_clock_without_timestamps(tmp_path: Path) -> None:
    clock = Clock()
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_ms=1_000), clock=clock)
    log.append(client_batch(1, timestamp=-1), leader_epoch=0, log_append_time=None)
    clock.now += 1_000
    log.append(client_batch(1, timestamp=-1), leader_epoch=0, log_append_time=None)
    assert len(log.segments()) == 1
    clock.now += 1
    log.append(client_batch(1, timestamp=-1), leader_epoch=0, log_append_time=None)
    assert [s.base_offset for s in log.segments()] == [0, 2]
    log.close()


def test_update_config_applies_to_the_next_append(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for _ in range(5):
        log.append(client_batch(1, value_size=100), leader_epoch=0, log_append_time=None)
    log.update_config(LogConfig(segment_bytes=300))
    assert log.config.segment_bytes == 300
    log.append(client_batch(1, value_size=100), leader_epoch=0, log_append_time=None)
    assert [s.base_offset for s in log.segments()] == [0, 5]
    log.close()


# ---------------------------------------------------------------- delete_records_before


def test_delete_records_before(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, SMALL)
    model = Model()
    fill(log, model, [client_batch(2, value_size=150) for _ in range(30)])
    bases = [s.base_offset for s in log.segments()]
    assert len(bases) > 3
    # inside the third segment: the first two go, the third stays
    target = bases[2] + 1
    assert log.delete_records_before(target) == target
    assert log.log_start_offset == target
    assert [s.base_offset for s in log.segments()] == bases[2:]
    assert not (directory / f"{bases[0]:020d}.log").exists()
    assert not (directory / f"{bases[0]:020d}.index").exists()
    with pytest.raises(OffsetOutOfRange):
        log.read(target - 1, 100)
    model.log_start = target
    assert log.read(target, 1 << 20) == model.read(target, 1 << 20)
    # never lowered
    assert log.delete_records_before(3) == target
    assert log.log_start_offset == target
    # never past the end
    with pytest.raises(OffsetOutOfRange):
        log.delete_records_before(log.log_end_offset + 1)
    log.close()
    log = PartitionLog.open(directory, SMALL)
    assert log.log_start_offset == target
    assert [s.base_offset for s in log.segments()] == bases[2:]
    # up to the end: every segment goes, the log stays at its end offset
    end = log.log_end_offset
    assert log.delete_records_before(end) == end
    assert [(s.base_offset, s.size) for s in log.segments()] == [(end, 0)]
    assert log.read(end, 100) == b""
    assert log.size_bytes() == 0
    info = log.append(client_batch(1), leader_epoch=0, log_append_time=None)
    assert info.base_offset == end
    log.close()
    log = PartitionLog.open(directory, SMALL)
    assert (log.log_start_offset, log.log_end_offset) == (end, end + 1)
    log.close()


def test_delete_records_at_a_segment_boundary(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, Model(), [client_batch(2, value_size=150) for _ in range(30)])
    bases = [s.base_offset for s in log.segments()]
    log.delete_records_before(bases[1])
    assert [s.base_offset for s in log.segments()] == bases[1:]
    log.close()


# ---------------------------------------------------------------- truncate_to


def test_truncate_to(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, SMALL)
    model = Model()
    for i in range(30):
        fill(log, model, [client_batch(2, value_size=150, timestamp=100 * i)], epoch=i // 10)
    assert log.leader_epochs == [(0, 0), (1, 20), (2, 40)]
    bases = [s.base_offset for s in log.segments()]
    # at a batch boundary in an earlier segment
    cut = bases[1] + 4
    log.truncate_to(cut)
    assert log.log_end_offset == cut
    assert [s.base_offset for s in log.segments()] == bases[:2]
    model.truncate(cut)
    assert all_bytes(log) == model.read(0, 1 << 30)
    assert log.leader_epochs == [(0, 0), (1, 20)] if cut > 20 else [(0, 0)]
    assert log.max_timestamp() == model.max_timestamp()
    assert log.offset_for_timestamp(100 * (cut // 2 - 1)) == (cut - 2, 100 * (cut // 2 - 1))
    # in the middle of a batch: the whole batch goes
    log.truncate_to(cut - 1)
    assert log.log_end_offset == cut - 2
    model.truncate(cut - 1)
    assert all_bytes(log) == model.read(0, 1 << 30)
    # appending continues from there, and a reopen agrees
    fill(log, model, [client_batch(3)], epoch=5)
    assert log.leader_epochs[-1] == (5, cut - 2)
    log.close()
    log = PartitionLog.open(directory, SMALL)
    assert log.log_end_offset == cut + 1
    assert all_bytes(log) == model.read(0, 1 << 30)
    assert log.leader_epochs[-1] == (5, cut - 2)
    # past the end: nothing happens
    log.truncate_to(10_000)
    assert log.log_end_offset == cut + 1
    log.close()


def test_truncate_at_the_end_still_drops_epochs_starting_there(tmp_path: Path) -> None:
    # A leader that won an epoch and appended nothing, then lost it: its epoch entry
    # starts at the log end, and the new leader's truncation point must remove it.
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, Model(), [client_batch(3)], epoch=1)
    log.leader_epoch_start(2, log.log_end_offset)
    assert log.leader_epochs == [(1, 0), (2, 3)]
    log.truncate_to(log.log_end_offset)
    assert log.leader_epochs == [(1, 0)]
    assert log.log_end_offset == 3
    log.close()
    assert PartitionLog.open(tmp_path / "t-0", SMALL).leader_epochs == [(1, 0)]


def test_truncate_after_a_crash_copy_reopens_cleanly(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    model = Model()
    fill(log, model, [client_batch(2, value_size=150) for _ in range(12)])
    log.flush()
    log.truncate_to(5)
    model.truncate(5)
    fill(log, model, [client_batch(1)])
    crashed = PartitionLog.open(crash_copy(log, tmp_path / "crashed"), SMALL)
    assert crashed.log_end_offset == 5
    assert all_bytes(crashed) == all_bytes(log)
    crashed.close()
    log.close()


def test_truncate_below_the_log_start(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, Model(), [client_batch(2, value_size=150) for _ in range(12)])
    log.leader_epoch_start(3, 24)
    log.delete_records_before(10)
    log.truncate_to(4)
    assert (log.log_start_offset, log.log_end_offset) == (4, 4)
    assert log.leader_epochs == []
    assert log.read(4, 100) == b""
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert (log.log_start_offset, log.log_end_offset) == (4, 4)
    log.close()


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, Model(), [client_batch(2) for _ in range(3)])
    log.truncate_fully_and_start_at(1_000)
    assert (log.log_start_offset, log.log_end_offset) == (1_000, 1_000)
    assert [s.base_offset for s in log.segments()] == [1_000]
    log.close()


# ---------------------------------------------------------------- leader epochs


def test_leader_epoch_cache(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, LogConfig())
    assert log.end_offset_for_epoch(0) == (-1, -1)
    log.leader_epoch_start(1, 0)
    for _ in range(5):
        log.append(client_batch(2), leader_epoch=1, log_append_time=None)
    log.leader_epoch_start(3, 10)
    for _ in range(2):
        log.append(client_batch(2), leader_epoch=3, log_append_time=None)
    # an append in a newer epoch records it on its own
    log.append(client_batch(1), leader_epoch=4, log_append_time=None)
    assert log.leader_epochs == [(1, 0), (3, 10), (4, 14)]
    assert log.end_offset_for_epoch(4) == (4, 15)  # the current epoch ends at the log end
    assert log.end_offset_for_epoch(3) == (3, 14)
    assert log.end_offset_for_epoch(2) == (1, 10)  # largest epoch <= 2, ended where 3 began
    assert log.end_offset_for_epoch(1) == (1, 10)
    assert log.end_offset_for_epoch(0) == (0, 0)  # older than anything known
    assert log.end_offset_for_epoch(9) == (-1, -1)
    assert log.end_offset_for_epoch(-1) == (-1, -1)
    log.close()
    assert (directory / "leader-epoch-checkpoint").read_text() == "0\n3\n1 0\n3 10\n4 14\n"
    log = PartitionLog.open(directory, LogConfig())
    assert log.leader_epochs == [(1, 0), (3, 10), (4, 14)]
    # an epoch re-announced at a lower offset replaces later entries
    log.leader_epoch_start(3, 8)
    assert log.leader_epochs == [(1, 0), (3, 8)]
    log.leader_epoch_start(3, 9)  # same epoch, later start: no change
    assert log.leader_epochs == [(1, 0), (3, 8)]
    with pytest.raises(ValueError, match="invalid"):
        log.leader_epoch_start(-1, 0)
    log.delete_records_before(5)
    assert log.leader_epochs == [(1, 5), (3, 8)]
    log.close()


def test_a_garbled_epoch_checkpoint_is_ignored(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    directory.mkdir()
    (directory / "leader-epoch-checkpoint").write_text("0\n2\n5 10\n3 20\n")
    log = PartitionLog.open(directory, LogConfig())
    assert log.leader_epochs == []
    log.close()


# ---------------------------------------------------------------- replication


def _replicated(base: int, count: int, epoch: int) -> bytes:
    records = [Record(base + i, 1_000 + i, None, b"r%d" % i, []) for i in range(count)]
    return encode_batch(records, base_offset=base, partition_leader_epoch=epoch)


def test_append_replicated(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    data = _replicated(0, 3, 1) + _replicated(3, 2, 1) + _replicated(5, 4, 2)
    log.append_replicated(data)
    assert log.log_end_offset == 9
    assert log.leader_epochs == [(1, 0), (2, 5)]
    assert log.read(0, 1 << 20) == data
    # a partial batch at the end is left for the next fetch
    more = _replicated(9, 1, 2)
    log.append_replicated(more + _replicated(10, 5, 2)[:40])
    assert log.log_end_offset == 10
    # nothing is written when any batch is bad
    bad = bytearray(_replicated(11, 2, 2))
    bad[-1] ^= 1
    with pytest.raises(CorruptBatch):
        log.append_replicated(_replicated(10, 1, 2) + bytes(bad))
    with pytest.raises(InvalidBatch):
        log.append_replicated(_replicated(9, 1, 2))
    assert log.log_end_offset == 10
    assert log.read(0, 1 << 20) == data + more
    log.close()


def test_append_replicated_accepts_the_gaps_of_a_compacted_leader(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.append_replicated(_replicated(0, 3, 1))
    assert log.gaps_below == 0
    gapped = _replicated(7, 2, 1) + _replicated(12, 1, 1)
    log.append_replicated(gapped)
    assert log.log_end_offset == 13
    assert log.gaps_below == 13
    assert log.read(4, 1 << 20) == gapped  # an offset in a gap reads the next batch
    log.append_replicated(_replicated(13, 1, 1))  # and offsets follow on exactly again
    with pytest.raises(InvalidBatch):
        log.append_replicated(_replicated(12, 1, 1))
    expected = all_bytes(log)
    copy = crash_copy(log, tmp_path / "crashed")
    reopened = PartitionLog.open(copy, SMALL)  # recovery keeps the gapped batches
    assert (reopened.log_end_offset, all_bytes(reopened)) == (14, expected)
    reopened.close()
    log.close()


# ---------------------------------------------------------------- durability and files


def test_flush_policy_by_messages(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_messages=5))
    log.append(client_batch(3), leader_epoch=0, log_append_time=None)
    assert log.unflushed_records == 3
    log.append(client_batch(2), leader_epoch=0, log_append_time=None)
    assert log.unflushed_records == 0
    log.close()


def test_flush_policy_by_time(tmp_path: Path) -> None:
    clock = Clock()
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_ms=100), clock=clock)
    log.append(client_batch(3), leader_epoch=0, log_append_time=None)
    assert log.unflushed_records == 3
    clock.now += 100
    log.append(client_batch(1), leader_epoch=0, log_append_time=None)
    assert log.unflushed_records == 0
    log.close()


def test_close_marks_a_clean_shutdown_and_the_first_write_clears_it(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    marker = directory / ".kcli-clean-shutdown"
    log = PartitionLog.open(directory, LogConfig())
    log.append(client_batch(2), leader_epoch=0, log_append_time=None)
    assert not marker.exists()
    log.close()
    log.close()  # idempotent
    assert marker.exists()
    # A clean open leaves it (a restart writes nothing per partition), and so does a
    # close with nothing written since.
    log = PartitionLog.open(directory, LogConfig())
    assert marker.exists()
    log.close()
    assert marker.exists()
    log = PartitionLog.open(directory, LogConfig())
    log.append(client_batch(1), leader_epoch=0, log_append_time=None)
    assert not marker.exists()
    log.close()


def test_after_a_clean_open_a_crash_never_passes_for_a_clean_stop(tmp_path: Path) -> None:
    """The case the marker's digests cannot catch: a follower cuts its log inside a
    sealed segment and takes other batches of the very same sizes and timestamps (so
    the same index entries and seal), then a crash leaves part of them unwritten. Only
    a scan finds that, and only a marker removed before the first change makes one."""
    directory = tmp_path / "t-0"
    batch = len(client_batch(2))
    config = LogConfig(segment_bytes=2 * batch, index_interval_bytes=1 << 20)
    log = PartitionLog.open(directory, config)
    for i in range(3):  # [b0 b1] [b2]
        log.append(client_batch(2, timestamp=1_000 + 2 * i), leader_epoch=0,
                   log_append_time=None)
    log.close()
    log = PartitionLog.open(directory, config)
    log.truncate_to(2)
    for i in (1, 2):  # [b0 b1'] [b2']: the first segment's size and indexes as before
        log.append(client_batch(2, timestamp=1_000 + 2 * i, producer_id=7), leader_epoch=1,
                   log_append_time=None)
    log._close_files()  # the crash
    first = directory / f"{0:020d}.log"
    with open(first, "r+b") as torn:  # b1' only partly reached the disk
        torn.seek(2 * batch - 10)
        torn.write(b"\xff" * 10)
    log = PartitionLog.open(directory, config)
    assert log.log_end_offset == 2  # b1' was scanned, found torn and cut with what follows
    log.close()


def test_segment_info(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, Model(), [client_batch(2, value_size=150, timestamp=50 + i) for i in range(12)])
    infos = log.segments()
    assert [i.base_offset for i in infos] == sorted(i.base_offset for i in infos)
    for info in infos:
        path = tmp_path / "t-0" / f"{info.base_offset:020d}.log"
        assert info.size == path.stat().st_size
        assert abs(info.last_modified - path.stat().st_mtime_ns // 1_000_000) <= 1
    assert infos[-1].max_timestamp == 50 + 11 + 1
    log.close()


def test_delete(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, LogConfig())
    log.append(client_batch(2), leader_epoch=0, log_append_time=None)
    log.close()
    PartitionLog.delete(directory)
    assert not directory.exists()
    assert os.listdir(tmp_path) == []
    PartitionLog.delete(directory)  # already gone: fine


def test_a_new_log_keeps_a_persisted_start_offset(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    directory.mkdir()
    (directory / "log-start-offset").write_text("42\n")
    log = PartitionLog.open(directory, LogConfig())
    assert (log.log_start_offset, log.log_end_offset) == (42, 42)
    assert log.append(client_batch(1), leader_epoch=0, log_append_time=None).base_offset == 42
    log.close()


def test_append_accepts_a_writable_view_of_a_request_buffer(tmp_path: Path) -> None:
    request = bytearray(b"header bytes") + client_batch(3) + bytearray(b"more")
    view = memoryview(request)[12:-4]
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    log.append(client_batch(1), leader_epoch=0, log_append_time=None)
    info = log.append(view, leader_epoch=2, log_append_time=None)
    assert (info.base_offset, info.last_offset) == (1, 3)
    assert read_header(request, 12).base_offset == 1  # stamped in place
    assert log.read(1, 1 << 20) == bytes(view)
    log.close()


@pytest.mark.parametrize("log_append_time", [None, 1_800_000_000_000])
def test_a_read_only_batch_is_written_as_a_copy_would_be(
        tmp_path: Path, log_append_time: int | None) -> None:
    """bytes (a decoded request's records) are not copied to be stamped: only their
    header is, and the log holds exactly what stamping a copy in place gives."""
    batches = [client_batch(3), client_batch(2, value_size=500)]
    frozen = [bytes(b) for b in batches]
    by_copy = PartitionLog.open(tmp_path / "copy-0", LogConfig())
    as_sent = PartitionLog.open(tmp_path / "sent-0", LogConfig())
    for batch, sent in zip(batches, frozen, strict=True):
        by_copy.append(bytearray(batch), leader_epoch=4, log_append_time=log_append_time)
        as_sent.append(sent, leader_epoch=4, log_append_time=log_append_time)
    assert frozen == [bytes(b) for b in batches]  # the caller's bytes stay as they were
    assert as_sent.read(0, 1 << 20) == by_copy.read(0, 1 << 20)
    stored = as_sent.read(0, 1 << 20)
    headers = [read_header(stored)]
    headers.append(read_header(stored, headers[0].batch_length + 12))
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, 4), (3, 4)]
    assert [h.crc for h in headers] == [
        crc32c.crc32c(stored[21:headers[0].batch_length + 12]),
        crc32c.crc32c(stored[headers[0].batch_length + 12 + 21:]),
    ]
    by_copy.close()
    as_sent.close()


def test_batch_headers(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    model = Model()
    fill(log, model, [client_batch(2, value_size=150, producer_id=7) for _ in range(20)])
    assert len(log.segments()) > 2
    headers = list(log.batch_headers())
    assert [(h.base_offset, h.last_offset) for h in headers] == [
        (b.base_offset, b.last_offset) for b in model.batches
    ]
    assert {h.producer_id for h in headers} == {7}
    assert [h.base_offset for h in log.batch_headers(15)] == [
        b.base_offset for b in model.batches if b.last_offset >= 15
    ]
    log.delete_records_before(21)
    assert next(log.batch_headers()).base_offset == 20
    log.close()
