"""The log's bounded descriptor cache: LRU eviction, reopening, pins for worker threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.broker.log import LogConfig, PartitionLog
from kcli.broker.log._files import READ_WRITE_APPEND
from kcli.broker.log.descriptors import DescriptorCache, LogFile, descriptors
from tests.broker.log.helpers import Model, all_bytes, client_batch

SMALL = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def small_cache() -> Iterator[DescriptorCache]:
    """The process's cache, bounded to its minimum for the test."""
    capacity = descriptors.capacity
    descriptors.set_capacity(SMALL)
    try:
        yield descriptors
    finally:
        descriptors.set_capacity(capacity)


def test_at_most_capacity_files_are_open_and_the_least_recently_used_goes(
    tmp_path: Path,
) -> None:
    cache = DescriptorCache(SMALL)
    files = [cache.file(tmp_path / f"f{i}", READ_WRITE_APPEND) for i in range(20)]
    before = open_fds()
    for i, file in enumerate(files):
        os.write(file.fd, b"%d" % i)
        os.write(files[0].fd, b".")  # kept in use: never the least recently used
    assert len(cache) == SMALL
    assert open_fds() - before == SMALL
    assert files[0].is_open
    assert files[-1].is_open
    assert not files[1].is_open
    os.write(files[1].fd, b"!")  # reopened, appending where it was
    assert (tmp_path / "f1").read_bytes() == b"1!"
    assert (tmp_path / "f0").read_bytes() == b"0" + b"." * 20
    assert cache.opens == 21


def test_reopening_does_not_truncate_or_create_again(tmp_path: Path) -> None:
    cache = DescriptorCache(SMALL)
    path = tmp_path / "seg.log"
    file = cache.file(path, READ_WRITE_APPEND | os.O_TRUNC, READ_WRITE_APPEND & ~os.O_CREAT)
    os.write(file.fd, b"kept")
    file.release()
    os.write(file.fd, b"+more")
    assert path.read_bytes() == b"kept+more"
    file.release()
    path.unlink()  # gone from under the log: an error, not a new empty file
    with pytest.raises(FileNotFoundError):
        _ = file.fd
    assert not path.exists()


def test_a_closed_file_refuses_use(tmp_path: Path) -> None:
    file = DescriptorCache().file(tmp_path / "f", READ_WRITE_APPEND)
    _ = file.fd
    file.close()
    assert not file.is_open
    with pytest.raises(ValueError, match="closed"):
        _ = file.fd
    with pytest.raises(ValueError, match="closed"), file.pinned():
        pass


def test_a_pinned_descriptor_is_not_closed_under_a_worker_thread(tmp_path: Path) -> None:
    cache = DescriptorCache(SMALL)
    pinned = cache.file(tmp_path / "pinned", READ_WRITE_APPEND)
    os.write(pinned.fd, b"x")
    inside, leave = threading.Event(), threading.Event()
    seen: list[int] = []

    def worker() -> None:
        with pinned.pinned() as fd:
            inside.set()
            leave.wait(10)
            seen.append(os.fstat(fd).st_size)  # still this file's descriptor

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    others = [cache.file(tmp_path / f"o{i}", READ_WRITE_APPEND) for i in range(SMALL)]
    for other in others:
        os.write(other.fd, b"yy")
    assert pinned.is_open  # the least recently used, but pinned
    pinned.close()  # deleted meanwhile: the worker closes it when done
    assert pinned.is_open
    leave.set()
    thread.join(10)
    assert seen == [1]
    assert not pinned.is_open


def test_a_pin_on_an_evicted_file_uses_a_private_descriptor(tmp_path: Path) -> None:
    cache = DescriptorCache(SMALL)
    file = cache.file(tmp_path / "f", READ_WRITE_APPEND)
    os.write(file.fd, b"abc")
    file.release()
    with file.pinned() as fd:
        os.fsync(fd)
        assert os.fstat(fd).st_size == 3
    assert not file.is_open
    assert len(cache) == 0


def test_a_file_with_its_own_descriptor_joins_a_cache(tmp_path: Path) -> None:
    cache = DescriptorCache(SMALL)
    own = LogFile(tmp_path / "cleaned", READ_WRITE_APPEND, None)
    os.write(own.fd, b"z")
    assert len(cache) == 0
    own.attach(cache)
    assert len(cache) == 1
    for i in range(SMALL):
        os.write(cache.file(tmp_path / f"o{i}", READ_WRITE_APPEND).fd, b"o")
    assert not own.is_open  # evictable now


def test_logs_with_many_segments_stay_within_the_bound(
    tmp_path: Path, small_cache: DescriptorCache
) -> None:
    """Many partitions with many segments each: every byte readable, every index right,
    never more than the bound open, and all of it again after a restart."""
    config = LogConfig(segment_bytes=400, index_interval_bytes=1)
    logs = [PartitionLog.open(tmp_path / f"t-{i}", config) for i in range(6)]
    models = [Model() for _ in logs]
    before = open_fds()
    for round_ in range(12):
        for log, model in zip(logs, models, strict=True):
            batch = client_batch(3, timestamp=1_000 + round_)
            info = log.append(batch, leader_epoch=0, log_append_time=None)
            model.add(info.base_offset, info.last_offset, bytes(batch))
            assert len(small_cache) <= SMALL
    assert open_fds() - before <= SMALL
    assert all(log.segment_count > 3 for log in logs)
    for log, model in zip(logs, models, strict=True):
        assert all_bytes(log) == model.read(0, 1 << 40)
        assert log.offset_for_timestamp(1_005) is not None
    for i, log in enumerate(logs):
        log.close()
        logs[i] = PartitionLog.open(log.directory, config)
        assert logs[i].log_end_offset == models[i].end
        assert all_bytes(logs[i]) == models[i].read(0, 1 << 40)
    for log in logs:
        log.close()
