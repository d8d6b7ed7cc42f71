"""Opening a log after an unclean stop, torn writes, corruption and garbled index files."""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import LogConfig, PartitionLog
from tests.broker.log.helpers import PROPERTY, Model, all_bytes, client_batch, crash_copy

CONFIG = LogConfig(segment_bytes=1_500, index_interval_bytes=150)
MARKER = ".kcli-clean-shutdown"


def _build(directory: Path, batches: int = 24, *, close: bool = True) -> tuple[PartitionLog, Model]:
    log = PartitionLog.open(directory, CONFIG)
    model = Model()
    for i in range(batches):
        if i < batches - 1:
            batch = client_batch(
                1 + i % 3, value_size=60 + 17 * i, timestamp=1_000 + 10 * i, compression=i % 5
            )
        else:  # the last one is kept small: some tests cut it at every byte
            batch = client_batch(2, value_size=40, timestamp=1_000 + 10 * i)
        info = log.append(batch, leader_epoch=i // 8, log_append_time=None)
        model.add(info.base_offset, info.last_offset, bytes(batch))
    if close:
        log.close()
    return log, model


def _segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def _reopen(directory: Path) -> PartitionLog:
    return PartitionLog.open(directory, CONFIG)


def _expect(log: PartitionLog, model: Model, keep: int) -> None:
    """The log holds exactly the first `keep` batches of the model."""
    kept = model.batches[:keep]
    assert log.log_end_offset == (kept[-1].last_offset + 1 if kept else 0)
    assert all_bytes(log) == b"".join(b.data for b in kept)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Model]:
    directory = tmp_path_factory.mktemp("pristine") / "t-0"
    _, model = _build(directory)
    return directory, model


def _copy(source: Path, tmp: Path, *, clean: bool) -> Path:
    target = tmp / f"copy-{random.getrandbits(32)}"
    shutil.copytree(source, target)
    if not clean:
        (target / MARKER).unlink()
    return target


# ---------------------------------------------------------------- torn tails


@pytest.mark.parametrize("clean", [False, True])
def test_a_torn_last_batch_is_cut_at_every_byte(
    pristine: tuple[Path, Model], tmp_path: Path, caplog: pytest.LogCaptureFixture, clean: bool
) -> None:
    source, model = pristine
    last = model.batches[-1]
    for cut in range(len(last.data)):
        directory = _copy(source, tmp_path, clean=clean)
        segment = _segment_files(directory)[-1]
        size = segment.stat().st_size
        os.truncate(segment, size - len(last.data) + cut)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kcli.broker.log"):
            log = _reopen(directory)
        _expect(log, model, len(model.batches) - 1)
        if cut:
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            message = warnings[0].getMessage()
            assert str(directory) in message
            assert f"offset {last.base_offset}" in message
            assert f"dropping {cut} bytes" in message
        assert segment.stat().st_size == size - len(last.data)
        # the log goes on from there
        info = log.append(client_batch(1), leader_epoch=9, log_append_time=None)
        assert info.base_offset == last.base_offset
        log.close()
        shutil.rmtree(directory)


def test_a_flipped_byte_in_the_last_batch_cuts_it(
    pristine: tuple[Path, Model], tmp_path: Path
) -> None:
    source, model = pristine
    last = model.batches[-1]
    for pos in range(len(last.data)):
        if 12 <= pos < 16:
            continue  # partitionLeaderEpoch: outside the CRC, and no offset depends on it
        directory = _copy(source, tmp_path, clean=False)
        segment = _segment_files(directory)[-1]
        at = segment.stat().st_size - len(last.data) + pos
        with segment.open("r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ 0x10]))
        log = _reopen(directory)
        _expect(log, model, len(model.batches) - 1)
        log.close()
        shutil.rmtree(directory)


# seeded, and named by ids: parallel workers (pytest-xdist) must collect the same tests
@pytest.mark.parametrize("garbage", [b"\0" * 100, b"\xff" * 7, random.Random(125).randbytes(5_000)],
                         ids=["zeros", "ones", "random"])
def test_garbage_after_the_last_batch_is_cut(
    pristine: tuple[Path, Model],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    garbage: bytes,
) -> None:
    source, model = pristine
    for clean in (False, True):
        directory = _copy(source, tmp_path, clean=clean)
        with _segment_files(directory)[-1].open("ab") as f:
            f.write(garbage)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kcli.broker.log"):
            log = _reopen(directory)
        _expect(log, model, len(model.batches))
        assert f"dropping {len(garbage)} bytes" in caplog.text
        log.close()


def test_a_corrupt_batch_in_an_earlier_segment_drops_everything_after_it(
    pristine: tuple[Path, Model], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, model = pristine
    directory = _copy(source, tmp_path, clean=False)
    (directory / "recovery-point-offset").unlink()  # nothing known to be on disk: scan all
    files = _segment_files(directory)
    assert len(files) >= 3
    second_base = int(files[1].stem)
    victim = next(i for i, b in enumerate(model.batches) if b.base_offset == second_base) + 1
    position = sum(len(b.data) for b in model.batches[:victim] if b.base_offset >= second_base)
    with files[1].open("r+b") as f:
        f.seek(position + 70)
        byte = f.read(1)[0]
        f.seek(position + 70)
        f.write(bytes([byte ^ 1]))
    total = sum(p.stat().st_size for p in files)
    with caplog.at_level(logging.WARNING, logger="kcli.broker.log"):
        log = _reopen(directory)
    _expect(log, model, victim)
    assert [s.base_offset for s in log.segments()] == [int(f.stem) for f in files[:2]]
    assert f"dropping {total - log.size_bytes()} bytes" in caplog.text
    assert not files[2].exists()
    log.close()


def test_segments_below_the_recovery_point_are_not_rescanned(tmp_path: Path) -> None:
    log, model = _build(tmp_path / "t-0", close=False)
    log.flush()  # everything up to the active segment is now known to be on disk
    crashed = crash_copy(log, tmp_path / "crashed")
    log.close()
    first = _segment_files(crashed)[0]
    # a flipped record byte in a flushed segment is not looked for after an unclean stop
    with first.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)[0]
        f.seek(100)
        f.write(bytes([byte ^ 1]))
    reopened = _reopen(crashed)
    assert reopened.log_end_offset == model.end
    reopened.close()


def test_the_epoch_cache_follows_a_recovery_cut(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    for epoch in range(4):
        log.append(client_batch(2), leader_epoch=epoch, log_append_time=None)
    assert log.leader_epochs == [(0, 0), (1, 2), (2, 4), (3, 6)]
    log.close()
    segment = _segment_files(tmp_path / "t-0")[-1]
    os.truncate(segment, segment.stat().st_size - 3)
    log = _reopen(tmp_path / "t-0")
    assert log.log_end_offset == 6
    assert log.leader_epochs == [(0, 0), (1, 2), (2, 4)]
    assert log.end_offset_for_epoch(2) == (2, 6)
    log.close()


def test_recovery_restores_epochs_the_checkpoint_missed(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    for epoch in range(3):
        log.append(client_batch(2), leader_epoch=epoch, log_append_time=None)
    crashed = crash_copy(log, tmp_path / "crashed")
    log.close()
    (crashed / "leader-epoch-checkpoint").unlink()
    reopened = _reopen(crashed)
    assert reopened.leader_epochs == [(0, 0), (1, 2), (2, 4)]
    reopened.close()


def test_a_log_cut_below_its_start_offset_starts_empty_there(tmp_path: Path) -> None:
    log, model = _build(tmp_path / "t-0", close=False)
    start = model.batches[-1].base_offset + 1
    log.delete_records_before(start)
    crashed = crash_copy(log, tmp_path / "crashed")
    log.close()
    segment = _segment_files(crashed)[-1]
    os.truncate(segment, segment.stat().st_size - 5)
    reopened = _reopen(crashed)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (start, start)
    reopened.close()


def test_an_empty_trailing_segment_is_fine(pristine: tuple[Path, Model], tmp_path: Path) -> None:
    source, model = pristine
    for clean in (False, True):
        directory = _copy(source, tmp_path, clean=clean)
        (directory / f"{model.end:020d}.log").touch()
        log = _reopen(directory)
        _expect(log, model, len(model.batches))
        assert log.segments()[-1].base_offset == model.end
        assert log.append(client_batch(1), leader_epoch=5, log_append_time=None).base_offset == (
            model.end
        )
        log.close()


def test_stray_index_and_temporary_files_are_removed(tmp_path: Path) -> None:
    _build(tmp_path / "t-0")
    directory = tmp_path / "t-0"
    (directory / f"{99_999:020d}.index").write_bytes(b"x" * 8)
    (directory / "log-start-offset.tmp").write_bytes(b"junk")
    reopened = _reopen(directory)
    assert not (directory / f"{99_999:020d}.index").exists()
    assert not (directory / "log-start-offset.tmp").exists()
    reopened.close()


# ---------------------------------------------------------------- index files


def _index_contents(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.suffix in (".index", ".timeindex")
    }


@pytest.mark.parametrize(
    "damage",
    ["missing", "random", "truncated", "odd-size", "empty", "swapped", "past-the-end"],
)
@pytest.mark.parametrize("clean", [True, False])
def test_garbled_index_files_are_rebuilt(
    pristine: tuple[Path, Model], tmp_path: Path, damage: str, clean: bool
) -> None:
    source, model = pristine
    # reference: what a rebuild from scratch gives
    reference = _copy(source, tmp_path, clean=True)
    for p in reference.iterdir():
        if p.suffix in (".index", ".timeindex"):
            p.unlink()
    _reopen(reference).close()
    expected = _index_contents(reference)
    assert expected == _index_contents(source)

    directory = _copy(source, tmp_path, clean=clean)
    rng = random.Random(damage)
    for path in directory.iterdir():
        if path.suffix not in (".index", ".timeindex"):
            continue
        data = path.read_bytes()
        if damage == "missing":
            path.unlink()
        elif damage == "random":
            path.write_bytes(rng.randbytes(len(data) or 24))
        elif damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "odd-size":
            path.write_bytes(data + b"\1")
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "swapped":
            step = 8 if path.suffix == ".index" else 12
            entries = [data[i : i + step] for i in range(0, len(data), step)]
            path.write_bytes(b"".join(reversed(entries)))
        elif damage == "past-the-end":
            path.write_bytes(data + b"\0\0\x7f\xff\0\0\x7f\xff" + b"\x7f" * 4)
    log = _reopen(directory)
    _expect(log, model, len(model.batches))
    for batch in model.batches:
        for offset in (batch.base_offset, batch.last_offset):
            assert log.read(offset, 1).startswith(batch.data)
    assert log.max_timestamp() == model.max_timestamp()
    log.close()
    if damage not in ("truncated", "empty"):  # a shortened sparse index is still valid
        assert _index_contents(directory) == expected


def test_a_plausible_but_wrong_offset_index_is_caught(
    pristine: tuple[Path, Model], tmp_path: Path
) -> None:
    source, model = pristine
    directory = _copy(source, tmp_path, clean=True)
    index = sorted(directory.glob("*.index"))[0]
    data = bytearray(index.read_bytes())
    assert len(data) >= 16
    data[-1] = (data[-1] + 1) % 256  # last entry's position shifted by one byte
    index.write_bytes(bytes(data))
    log = _reopen(directory)
    _expect(log, model, len(model.batches))
    log.close()


# ---------------------------------------------------------------- crash anywhere


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 400)), min_size=1, max_size=15),
    st.integers(0, 10**6),
)
def test_a_crash_keeps_every_whole_batch(plan: list[tuple[int, int]], cut_seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = PartitionLog.open(Path(tmp) / "t-0", CONFIG)
        model = Model()
        for count, size in plan:
            batch = client_batch(count, value_size=size)
            info = log.append(batch, leader_epoch=0, log_append_time=None)
            model.add(info.base_offset, info.last_offset, bytes(batch))
        crashed = crash_copy(log, Path(tmp) / "crashed")
        log.close()
        # the crash tore the write in flight somewhere in the last segment
        segment = _segment_files(crashed)[-1]
        size = segment.stat().st_size
        cut = cut_seed % (size + 1)
        os.truncate(segment, cut)
        segment_base = int(segment.stem)
        keep = 0
        position = 0
        for i, stored in enumerate(model.batches):
            if stored.base_offset < segment_base:
                keep = i + 1
                continue
            if position + len(stored.data) <= cut:
                keep = i + 1
            position += len(stored.data)
        reopened = PartitionLog.open(crashed, CONFIG)
        _expect(reopened, model, keep)
        reopened.close()
