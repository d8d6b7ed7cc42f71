"""FileRecords: file ranges that outlive the descriptor they were taken from, and never
stand for fewer bytes than they say."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcli.broker.log.file_records import FileRecords, read_range


def test_ranges_outlive_the_segment_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(bytes(range(256)) * 4)
    fd = os.open(path, os.O_RDONLY)
    records = FileRecords.of([(fd, 10, 20), (fd, 1000, 24)])
    os.close(fd)  # retention, compaction or the descriptor cache closing the segment
    path.unlink()
    assert len(records) == 44
    assert records
    assert records.read() == (bytes(range(256)) * 4)[10:30] + (bytes(range(256)) * 4)[1000:]
    records.close()
    records.close()  # idempotent
    assert records.ranges == []


def test_a_file_cut_under_a_read_is_an_error_not_a_short_answer(tmp_path: Path) -> None:
    path = tmp_path / "segment.log"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDWR)
    try:
        records = FileRecords.of([(fd, 0, 100)])
        os.ftruncate(fd, 60)  # a follower truncating its log
        with pytest.raises(OSError, match="shrank"):
            records.read()
        with pytest.raises(OSError, match="60 of 100"):
            read_range(fd, 0, 100)
        records.close()
    finally:
        os.close(fd)


def test_out_of_descriptors_the_log_reads_bytes(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kcli.broker.log import LogConfig, PartitionLog
    from tests.broker.log.helpers import client_batch

    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for _ in range(3):
        log.append(client_batch(4, value_size=100), leader_epoch=0, log_append_time=None)

    def no_descriptors(fd: int) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "dup", no_descriptors)
    assert log.read_for_send(0, 1 << 20, min_bytes=1) == log.read(0, 1 << 20)
    log.close()
