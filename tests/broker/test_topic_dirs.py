"""Partition directories: a topic of the longest legal name is deleted with its data, and
a topic created again under an old name never serves the old topic's records."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka import TopicPartition as TP
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.log import LogConfig, PartitionLog, Record, encode_batch
from kcli.broker.log.dirs import MAX_FILE_NAME, read_topic_id, renamed_dir_name
from tests.support.broker import BrokerProcess

LONGEST = "x" * 249


def end_offset(admin: AdminClient, topic: str) -> int:
    offsets = admin.list_offsets({TP(topic, 0): OffsetSpec.latest()})
    return offsets[TP(topic, 0)].result(10).offset


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, f"old-{i}".encode())
    assert producer.flush(10) == 0


def assert_removed_soon(data_dir: Path, prefix: str, within: float = 10.0) -> None:
    """Every directory whose name starts with ``prefix`` (renamed ``-delete`` ones too)
    is gone from ``data_dir`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while leftovers := [p.name for p in data_dir.iterdir() if p.name.startswith(prefix)]:
        assert time.monotonic() < deadline, f"the remover left {leftovers}"
        time.sleep(0.05)


def test_renamed_names_fit_in_a_file_name() -> None:
    for index in (0, 7, 99_999):
        for suffix in ("-delete", "-stray"):
            name = renamed_dir_name(f"{LONGEST}-{index}", suffix)
            assert len(name.encode()) <= MAX_FILE_NAME
            assert name.endswith(suffix)
            assert f"-{index}." in name
    short = renamed_dir_name("t-3", "-delete")
    assert short.startswith("t-3.")  # a short name is kept whole, as Kafka's


def test_a_partition_of_the_longest_name_is_deleted(tmp_path: Path) -> None:
    directory = tmp_path / f"{LONGEST}-99999"  # 255 bytes: the longest partition dir
    log = PartitionLog.open(directory, LogConfig())
    log.append(bytearray(encode_batch([Record(0, 1_700_000_000_000, None, b"v", [])])),
               leader_epoch=0, log_append_time=None)
    log.close()
    PartitionLog.delete(directory)
    assert os.listdir(tmp_path) == []


def test_the_longest_name_is_deleted_and_created_again_empty(broker: BrokerProcess,
                                                             kcat: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(LONGEST, 1, 1)])[LONGEST].result(10)
    produce(broker.bootstrap, LONGEST, 3)
    assert end_offset(admin, LONGEST) == 3
    admin.delete_topics([LONGEST])[LONGEST].result(10)
    assert LONGEST not in admin.list_topics(timeout=10).topics
    # the partition's own name is free at once; its renamed data goes in the broker's
    # remover thread, as Kafka deletes asynchronously
    assert not (broker.data_dir / f"{LONGEST}-0").exists()
    assert_removed_soon(broker.data_dir, LONGEST[:50])

    admin.create_topics([NewTopic(LONGEST, 1, 1)])[LONGEST].result(10)
    assert end_offset(admin, LONGEST) == 0
    out = subprocess.run([kcat, "-b", broker.bootstrap, "-C", "-t", LONGEST, "-o", "beginning",
                          "-e", "-q"], capture_output=True, timeout=30, check=True)
    assert out.stdout == b""
    admin.delete_topics([LONGEST])[LONGEST].result(10)
    assert "Traceback" not in broker.log()


def test_an_unclaimed_directory_is_set_aside_at_start(make_broker: object) -> None:
    """A partition directory left by a deletion that never finished (a crash, or the
    old name-length failure) is renamed -stray at start, so a new topic of that name
    starts empty."""
    process: BrokerProcess = make_broker()  # type: ignore[operator]
    process.start()
    admin = AdminClient({"bootstrap.servers": process.bootstrap})
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(10)
    produce(process.bootstrap, "kept", 2)
    assert process.stop() == 0
    orphan = process.data_dir / "ghost-0"
    shutil.copytree(process.data_dir / "kept-0", orphan)
    (orphan / "partition.metadata").unlink(missing_ok=True)  # as before the stamps
    (process.data_dir / "notes-1").mkdir()  # no log in it: not a partition, left alone
    (process.data_dir / "notes-1" / "readme.txt").write_text("mine")
    process.start()
    admin = AdminClient({"bootstrap.servers": process.bootstrap})
    admin.create_topics([NewTopic("ghost", 1, 1)])["ghost"].result(10)
    assert end_offset(admin, "ghost") == 0
    assert end_offset(admin, "kept") == 2
    strays = [p.name for p in process.data_dir.iterdir() if p.name.endswith("-stray")]
    assert len(strays) == 1
    assert strays[0].startswith("ghost-0.")
    assert (process.data_dir / "notes-1" / "readme.txt").read_text() == "mine"
    assert process.stop() == 0
    assert "Traceback" not in process.log()


def test_a_failed_deletion_is_an_error_answer_and_never_served_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(BrokerConfig(node_id=1, data_dir=tmp_path / "data"))
    broker.open(9092)
    try:
        asyncio.run(broker.create_topic("t", 1, 1, {}))
        old_id = broker.metadata.topics["t"].topic_id
        partition = broker.partitions[("t", 0)]
        partition.append_client_batch(
            encode_batch([Record(0, 1_700_000_000_000, None, b"old", [])]), 1)
        directory = partition.log.directory
        assert read_topic_id(directory) == old_id

        def refuse(path: Path, **_how: object) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        with monkeypatch.context() as patched:
            patched.setattr("kcli.broker.broker.delete_partition_dir", refuse)
            with pytest.raises(ControllerError) as failed:
                asyncio.run(broker.delete_topic("t"))
        assert failed.value.error_code == ErrorCode.kafka_storage_error
        assert "Permission denied" in failed.value.message
        assert "t" not in broker.metadata.topics
        assert directory.exists()  # the old data stayed, stamped with the old id

        asyncio.run(broker.create_topic("t", 1, 1, {}))
        recreated = broker.partitions[("t", 0)]
        assert recreated.log.log_end_offset == 0
        assert read_topic_id(directory) == broker.metadata.topics["t"].topic_id != old_id
        assert not [p for p in os.listdir(broker.data_dir) if p.endswith("-delete")]
    finally:
        broker.close()


def test_a_deleted_topics_data_goes_without_a_flush_and_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a topic frees its directories' names at once and never fsyncs its files
    first (data about to be deleted need not reach the disk, and a flush of a large
    segment stalled every client of the broker); the files go in the remover's thread."""
    broker = Broker(BrokerConfig(node_id=1, data_dir=tmp_path / "data"))
    broker.open(9092)
    synced_files: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def watch(sync: Callable[[int], None]) -> Callable[[int], None]:
        def watched(fd: int) -> None:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                synced_files.append(os.readlink(f"/proc/self/fd/{fd}"))
            sync(fd)
        return watched

    try:
        asyncio.run(broker.create_topic("t", 2, 1, {}))
        for index in range(2):
            broker.partitions[("t", index)].append_client_batch(
                encode_batch([Record(0, 1_700_000_000_000, None, b"x" * 1000, [])]), 1)
        directories = [broker.partitions[("t", i)].log.directory for i in range(2)]
        monkeypatch.setattr(os, "fsync", watch(real_fsync))
        monkeypatch.setattr(os, "fdatasync", watch(real_fdatasync))
        asyncio.run(broker.delete_topic("t"))
        assert not any(d.exists() for d in directories)
        assert not [f for f in synced_files if "/t-" in f or "-delete" in f], synced_files
        assert_removed_soon(broker.data_dir, "t-")
    finally:
        broker.close()
