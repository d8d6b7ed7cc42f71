"""A write that fails mid-append (ENOSPC, EIO) leaves the log as it was, or offline.

Faults are injected into the storage layer's system calls (``os.write``, ``os.open``,
``os.ftruncate``, fsync) for the files of one kind only, as a full disk meets them: the
first write gets part of its bytes in, the next raises.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import crc32c
import pytest

from kcli.broker.errors import ErrorCode
from kcli.broker.log import (
    LogConfig,
    LogOffline,
    PartitionLog,
    StorageError,
    _files,
    checkpoints,
    epoch,
    iter_batches,
)
from kcli.broker.log.checkpoints import CLEAN_SHUTDOWN_FILE
from kcli.broker.log.log import sync_segments
from tests.broker.log.helpers import Model, all_bytes, client_batch

EVERY_BATCH = LogConfig(index_interval_bytes=0)
"""Every batch after the first writes an offset index and a time index entry."""

_real_write = os.write
_real_writev = os.writev
_real_open = os.open
_real_ftruncate = os.ftruncate


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class DiskFull:
    """Fails the writes to files whose name ends with one of ``suffixes``: the first gets
    half its bytes in, every later one raises ENOSPC (until ``armed`` is cleared)."""

    def __init__(self, *suffixes: str, code: int = errno.ENOSPC) -> None:
        self.suffixes = suffixes
        self.code = code
        self.armed = True
        self.failed = 0
        self._short_written = False

    def _hits(self, path: str) -> bool:
        return self.armed and path.endswith(self.suffixes)

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> int:
        if not self._hits(_path_of(fd)):
            return _real_write(fd, data)
        self.failed += 1
        if not self._short_written and len(data) > 1:
            self._short_written = True
            return _real_write(fd, memoryview(data)[: len(data) // 2])
        raise OSError(self.code, os.strerror(self.code))

    def writev(self, fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> int:
        """The same faults for a batch written in parts (its stamped header, the rest)."""
        return self.write(fd, b"".join(buffers)) if self._hits(_path_of(fd)) \
            else _real_writev(fd, buffers)

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o777,
             **kwargs: object) -> int:
        if flags & os.O_CREAT and self._hits(os.fspath(path)) and not os.path.exists(path):
            self.failed += 1
            raise OSError(self.code, os.strerror(self.code))
        return _real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Callable[..., DiskFull]:
    def arm(*suffixes: str, code: int = errno.ENOSPC, creates: bool = False) -> DiskFull:
        fault = DiskFull(*suffixes, code=code)
        monkeypatch.setattr(os, "write", fault.write)
        monkeypatch.setattr(os, "writev", fault.writev)
        if creates:
            monkeypatch.setattr(os, "open", fault.open)
        return fault

    return arm


def sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir())
            if p.suffix in (".log", ".index", ".timeindex")}


def check_consistent(log: PartitionLog, model: Model) -> None:
    """Files, in-memory indexes and the log end offset agree with what was acknowledged."""
    assert log.log_end_offset == model.end
    assert all_bytes(log) == b"".join(b.data for b in model.batches)
    offsets = [o for h in iter_batches(all_bytes(log)) for o in range(h.base_offset,
                                                                       h.last_offset + 1)]
    assert offsets == list(range(model.log_start, model.end))
    for segment in log._segments:
        assert segment.size == segment.file.stat().st_size
        for index in (segment.offset_index, segment.time_index):
            on_disk = index.path.read_bytes() if index.path.exists() else b""
            assert on_disk == index._entries_bytes()
            assert index.digest() == (len(on_disk), crc32c.crc32c(on_disk))


def append(log: PartitionLog, model: Model, count: int, ts: int) -> None:
    batch = client_batch(count, timestamp=ts)
    info = log.append(batch, leader_epoch=0, log_append_time=None)
    model.add(info.base_offset, info.last_offset, bytes(batch))


def reopened(log: PartitionLog, *, clean: bool = True) -> PartitionLog:
    if clean:
        log.close()
    else:
        log._close_files()
    return PartitionLog.open(log.directory, log.config)


@pytest.mark.parametrize("suffix", [".log", ".index", ".timeindex"])
def test_a_failed_write_undoes_the_append(
    tmp_path: Path, disk_full: Callable[..., DiskFull], suffix: str
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", EVERY_BATCH)
    model = Model()
    for i in range(3):
        append(log, model, 2, 1_000 + 10 * i)
    before = sizes(log.directory)
    fault = disk_full(suffix)
    for attempt in range(3):  # the producer retries
        with pytest.raises(StorageError) as raised:
            log.append(client_batch(2, timestamp=2_000 + attempt), leader_epoch=0,
                       log_append_time=None)
        assert not isinstance(raised.value, LogOffline)
        assert raised.value.error_code == 56  # KAFKA_STORAGE_ERROR
        assert sizes(log.directory) == before
        check_consistent(log, model)
    assert fault.failed >= 3
    assert not log.offline
    fault.armed = False  # space freed
    for i in range(3):
        append(log, model, 3, 3_000 + i)
    check_consistent(log, model)
    for clean in (True, False):
        log = reopened(log, clean=clean)
        check_consistent(log, model)
    log.close()


def test_a_failed_write_of_several_batches_undoes_all_of_them(
    tmp_path: Path, disk_full: Callable[..., DiskFull]
) -> None:
    """The cleaner writes batches in one go (append_batches); a failure in the indexes of
    the last one takes the .log back to before the first."""
    source = PartitionLog.open(tmp_path / "src-0", EVERY_BATCH)
    for i in range(4):
        source.append(client_batch(2, timestamp=1_000 + i), leader_epoch=0, log_append_time=None)
    data = all_bytes(source)
    headers = list(iter_batches(data))
    source.close()
    log = PartitionLog.open(tmp_path / "t-0", EVERY_BATCH)
    segment = log._segments[-1]
    disk_full(".timeindex")
    batches = [(h.batch_length + 12, h.last_offset, h.max_timestamp) for h in headers]
    with pytest.raises(OSError, match="No space"):
        segment.append_batches(bytearray(data), batches, 0)
    assert segment.size == 0 == segment.file.stat().st_size
    assert len(segment.offset_index) == len(segment.time_index) == 0
    assert segment.next_offset == 0
    check_consistent(log, Model())
    log.close()


def test_a_replicated_append_that_fails_is_undone(
    tmp_path: Path, disk_full: Callable[..., DiskFull]
) -> None:
    leader = PartitionLog.open(tmp_path / "leader-0", EVERY_BATCH)
    model = Model()
    for i in range(4):
        append(leader, model, 2, 1_000 + i)
    follower = PartitionLog.open(tmp_path / "f-0", EVERY_BATCH)
    fault = disk_full(".index")
    with pytest.raises(StorageError):
        follower.append_replicated(all_bytes(leader))
    assert follower.log_end_offset == 2  # the first batch writes no index entry
    fault.armed = False
    follower.append_replicated(leader.read(follower.log_end_offset, 1 << 20))
    check_consistent(follower, model)
    leader.close()
    follower.close()


@pytest.mark.parametrize("failing", [".log", ".index", ".timeindex"])
def test_a_roll_that_fails_leaves_the_active_segment_as_it_was(
    tmp_path: Path, disk_full: Callable[..., DiskFull], failing: str
) -> None:
    """Rolling seals the old segment (a time index entry) and creates three files; any
    of those failing leaves one active segment, its indexes as before, no new files."""
    config = LogConfig(segment_bytes=300, index_interval_bytes=0)
    log = PartitionLog.open(tmp_path / "t-0", config)
    model = Model()
    append(log, model, 2, 1_000)
    append(log, model, 2, 900)  # the segment's largest timestamp is not yet indexed
    before = sizes(log.directory)
    fault = disk_full(failing, creates=True)
    with pytest.raises(StorageError):
        log.append(client_batch(8, timestamp=5_000), leader_epoch=0, log_append_time=None)
    assert fault.failed
    assert sizes(log.directory) == before
    assert log.segment_count == 1
    check_consistent(log, model)
    fault.armed = False
    append(log, model, 8, 5_000)
    assert log.segment_count == 2
    check_consistent(log, model)
    log = reopened(log, clean=False)
    check_consistent(log, model)
    log.close()


def test_an_undo_that_fails_takes_the_log_offline(
    tmp_path: Path, disk_full: Callable[..., DiskFull], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", EVERY_BATCH)
    model = Model()
    for i in range(3):
        append(log, model, 2, 1_000 + i)
    disk_full(".index", code=errno.EIO)

    def cannot_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "ftruncate", cannot_truncate)
    failed = client_batch(2, timestamp=2_000)
    with pytest.raises(LogOffline):
        log.append(failed, leader_epoch=0, log_append_time=None)
    assert log.offline
    monkeypatch.setattr(os, "ftruncate", _real_ftruncate)
    monkeypatch.setattr(os, "write", _real_write)
    monkeypatch.setattr(os, "writev", _real_writev)
    with pytest.raises(LogOffline):  # no more writes, even with the disk back
        log.append(client_batch(2, timestamp=3_000), leader_epoch=0, log_append_time=None)
    with pytest.raises(LogOffline):
        log.append_replicated(all_bytes(log))
    assert log.log_end_offset == model.end
    assert log.read(0, 1 << 20) == b"".join(b.data for b in model.batches)  # reads work
    # A restart recovers the log: the failed batch reached the .log whole (its index
    # entry did not), so recovery keeps it after the acknowledged ones, as Kafka's would;
    # offsets stay dense, and an idempotent producer's retry of it is a duplicate.
    log.close()  # writes nothing for an offline log: opening it recovers it
    assert not (log.directory / CLEAN_SHUTDOWN_FILE).exists()
    log = PartitionLog.open(log.directory, log.config)
    assert not log.offline
    model.add(model.end, model.end + 1, bytes(failed))
    check_consistent(log, model)
    append(log, model, 2, 4_000)
    check_consistent(log, model)
    log.close()


def test_a_failed_epoch_checkpoint_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", EVERY_BATCH)
    model = Model()
    append(log, model, 2, 1_000)
    before = sizes(log.directory)

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(epoch, "write_atomically", disk_full)
        with pytest.raises(StorageError):
            log.append(client_batch(2, timestamp=2_000), leader_epoch=3, log_append_time=None)
    assert log.leader_epochs == [(0, 0)]
    assert sizes(log.directory) == before
    info = log.append(client_batch(2, timestamp=2_000), leader_epoch=3, log_append_time=None)
    assert info.base_offset == 2
    assert log.leader_epochs == [(0, 0), (3, 2)]
    log = reopened(log, clean=False)
    assert log.leader_epochs == [(0, 0), (3, 2)]
    log.close()


def test_a_failed_fsync_takes_the_log_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reached the disk is unknown after a failed fsync: Kafka's rule, offline."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_messages=1))
    model = Model()
    append(log, model, 2, 1_000)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(_files, "_sync_data", eio)
    with pytest.raises(LogOffline):
        log.append(client_batch(2, timestamp=2_000), leader_epoch=0, log_append_time=None)
    assert log.offline
    monkeypatch.undo()
    with pytest.raises(LogOffline):
        log.append(client_batch(2, timestamp=3_000), leader_epoch=0, log_append_time=None)
    log._close_files()


def test_a_recovery_point_the_full_disk_refuses_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a flush per append, a roll moves the recovery point: a checkpoint the disk
    refuses does not fail the (fsynced) append, nor take the log offline."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_messages=1, segment_bytes=300))
    model = Model()
    append(log, model, 2, 1_000)
    append(log, model, 2, 1_001)

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(checkpoints, "write_atomically", disk_full)
        append(log, model, 8, 2_000)  # rolls, flushes
    assert log.segment_count == 2
    assert not log.offline
    assert log.recovery_point == 0
    append(log, model, 2, 3_000)
    assert log.recovery_point == log._bases[-1] > 0  # retried
    check_consistent(log, model)
    log.close()


def _eio(fd: int) -> None:
    raise OSError(errno.EIO, "I/O error")


def test_a_failed_background_fsync_of_a_rolled_segment_takes_the_log_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker fsyncs rolled segments in a worker thread (`sync_segments`); a failure
    there is Kafka's IOException in a log dir as much as one on an append."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=300))
    model = Model()
    for i in range(4):
        append(log, model, 8, 1_000 + i)
    rolled = log.rolled_unsynced()
    assert rolled
    with monkeypatch.context() as patched:
        patched.setattr(_files, "_sync_data", _eio)
        failures = sync_segments(rolled)
    assert [segment for segment, _ in failures] == rolled
    with pytest.raises(LogOffline, match="fsync failed"):
        log.mark_synced(rolled, failures)
    assert log.offline
    assert all_bytes(log) == b"".join(b.data for b in model.batches)  # reads go on
    with pytest.raises(LogOffline):
        log.append(client_batch(1, timestamp=5_000), leader_epoch=0, log_append_time=None)
    log = reopened(log, clean=False)  # a restart recovers it, nothing acknowledged lost
    assert not log.offline
    check_consistent(log, model)
    log.close()


def test_a_rolled_segment_deleted_while_it_is_fsynced_is_no_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=300))
    model = Model()
    for i in range(4):
        append(log, model, 8, 1_000 + i)
    rolled = log.rolled_unsynced()
    log.delete_records_before(log._bases[-1])  # retention takes them meanwhile
    assert all(segment.closed for segment in rolled)
    with monkeypatch.context() as patched:
        patched.setattr(_files, "_sync_data", _eio)
        failures = sync_segments(rolled)
    assert failures == []
    log.mark_synced(rolled, failures)
    assert not log.offline
    log.close()


def test_a_failed_periodic_flush_takes_the_log_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000]
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(flush_ms=100), clock=lambda: now[0])
    model = Model()
    append(log, model, 2, 1_000)
    now[0] += 500
    with monkeypatch.context() as patched:
        patched.setattr(_files, "_sync_data", _eio)
        with pytest.raises(LogOffline):
            log.flush_if_due()
    assert log.offline
    log.flush_if_due()  # an offline log is not flushed again
    log._close_files()


def _refuse_checkpoints(path: Path, data: bytes) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_delete_records_the_disk_cannot_record_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start inside a segment is known only from its checkpoint: moving it in memory
    without one would bring the records back after a restart."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    model = Model()
    for i in range(3):
        append(log, model, 4, 1_000 + i)
    with monkeypatch.context() as patched:
        patched.setattr(checkpoints, "write_atomically", _refuse_checkpoints)
        with pytest.raises(StorageError, match="log start offset 6 not written") as refused:
            log.delete_records_before(6)
    assert refused.value.error_code == ErrorCode.kafka_storage_error
    assert log.log_start_offset == 0
    assert not log.offline
    assert log.delete_records_before(6) == 6  # room again
    assert reopened(log).log_start_offset == 6


def test_retention_frees_a_full_disk_without_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting segments is what frees the disk; the new start is the first kept
    segment's base, which opening the log finds without the checkpoint."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=300, retention_bytes=1,
                                                        file_delete_delay_ms=0))
    model = Model()
    for i in range(4):
        append(log, model, 8, 1_000 + i)
    segments = log.segment_count
    with monkeypatch.context() as patched:
        patched.setattr(checkpoints, "write_atomically", _refuse_checkpoints)
        deleted = log.apply_retention(log.log_end_offset)
    assert deleted == segments - 1
    start = log.log_start_offset
    assert start == log._bases[0] > 0
    assert reopened(log).log_start_offset == start
