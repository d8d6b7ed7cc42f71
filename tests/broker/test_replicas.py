"""The replica manager: the partition I lead, or who leads; reads that reread metadata once."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kcli.broker.cluster.metadata import PartitionState, TopicState
from kcli.broker.configs import Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.log import Record, encode_batch
from kcli.broker.partition import Partition
from kcli.broker.replicas import PartitionUnavailable, ReplicaManager
from kcli.broker.topic_settings import TopicSettings


class Metadata:
    """A MetadataView whose refresh applies what the test says has changed."""

    def __init__(self, topic: TopicState) -> None:
        self.topics = {topic.name: topic}
        self.refreshes = 0
        self.on_refresh: Callable[[], None] = lambda: None

    def topic(self, name: str) -> TopicState | None:
        return self.topics.get(name)

    def refresh_metadata(self) -> None:
        self.refreshes += 1
        self.on_refresh()


def setup(tmp_path: Path, *states: PartitionState, internal: bool = False
          ) -> tuple[Metadata, ReplicaManager]:
    topic = TopicState("t", uuid.uuid4(), list(states), {}, internal)
    metadata = Metadata(topic)
    replicas = ReplicaManager(metadata)
    settings = TopicSettings.resolve(Settings(), {})
    for index, state in enumerate(states):
        if 1 in state.replicas:
            replicas.partitions[("t", index)] = Partition(
                "t", index, tmp_path / f"t-{index}", state, settings, node_id=1)
    return metadata, replicas


def batch() -> bytes:
    return encode_batch([Record(0, 1_700_000_000_000, None, b"v", [])])


def test_a_read_at_a_newer_epoch_rereads_the_metadata_once(tmp_path: Path) -> None:
    state = PartitionState(replicas=[1], leader=1, leader_epoch=0, isr=[1])
    metadata, replicas = setup(tmp_path, state)
    partition = replicas.partitions[("t", 0)]
    partition.append_client_batch(batch(), 1)

    def newer_epoch() -> None:
        partition.update_state(PartitionState(replicas=[1], leader=1, leader_epoch=1, isr=[1]))

    metadata.on_refresh = newer_epoch
    found, result = replicas.read("t", 0, 0, 1 << 20, current_leader_epoch=1, refresh=False)
    assert found is partition
    assert result.error_code == ErrorCode.unknown_leader_epoch
    assert metadata.refreshes == 0
    found, result = replicas.read("t", 0, 0, 1 << 20, current_leader_epoch=1)
    assert metadata.refreshes == 1
    assert result.error_code == ErrorCode.none
    assert result.records
    partition.close()


def test_who_leads_comes_with_not_leader(tmp_path: Path) -> None:
    led = PartitionState(replicas=[1, 2], leader=1, leader_epoch=0, isr=[1, 2])
    followed = PartitionState(replicas=[1, 2], leader=2, leader_epoch=4, isr=[1, 2])
    elsewhere = PartitionState(replicas=[2, 3], leader=3, leader_epoch=7, isr=[2, 3])
    metadata, replicas = setup(tmp_path, led, followed, elsewhere)
    assert replicas.leader_partition("t", 0) is replicas.partitions[("t", 0)]
    for index, leader in ((1, (2, 4)), (2, (3, 7))):
        found, result = replicas.read("t", index, 0, 1 << 20)
        assert found is None
        assert (result.error_code, result.leader) == (ErrorCode.not_leader_or_follower, leader)
    assert metadata.refreshes == 2  # once a read: maybe it leads since the last poll
    _, missing = replicas.read("t", 3, 0, 1 << 20)
    assert missing.error_code == ErrorCode.unknown_topic_or_partition
    for p in replicas.partitions.values():
        p.close()


def test_only_the_broker_writes_to_an_internal_topic(tmp_path: Path) -> None:
    _, replicas = setup(tmp_path, PartitionState(replicas=[1], leader=1, isr=[1]), internal=True)
    assert replicas.append_to_leader("t", 0, batch(), 1).error_code == (
        ErrorCode.invalid_topic_exception)
    with pytest.raises(PartitionUnavailable) as refused:
        replicas.leader_partition("t", 0, writable=True)
    assert refused.value.error_code == ErrorCode.invalid_topic_exception
    assert replicas.leader_partition("t", 0) is replicas.partitions[("t", 0)]  # readable
    replicas.partitions[("t", 0)].close()


def test_bad_acks_are_refused_after_leadership(tmp_path: Path) -> None:
    _, replicas = setup(tmp_path, PartitionState(replicas=[1], leader=1, isr=[1]))
    assert replicas.append_to_leader("t", 0, batch(), 5).error_code == (
        ErrorCode.invalid_required_acks)
    assert replicas.append_to_leader("t", 1, batch(), 5).error_code == (
        ErrorCode.unknown_topic_or_partition)
    assert replicas.append_to_leader("t", 0, batch(), 1).base_offset == 0
    replicas.partitions[("t", 0)].close()


def test_a_storage_error_is_answered_and_an_offline_log_refuses_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka's answers: KAFKA_STORAGE_ERROR to the failed Produce (the log as before, so
    the retry gets the same offset); a partition whose log went offline answers it to
    Produce and Fetch alike (Kafka's ``HostedPartition.Offline``)."""
    _, replicas = setup(tmp_path, PartitionState(replicas=[1], leader=1, isr=[1]))
    partition = replicas.partitions[("t", 0)]
    assert replicas.append_to_leader("t", 0, batch(), -1).base_offset == 0
    real_write, real_writev, real_ftruncate = os.write, os.writev, os.ftruncate

    def disk_full(fd: int, data: bytes | bytearray | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    monkeypatch.setattr(os, "writev", disk_full)
    failed = replicas.append_to_leader("t", 0, batch(), -1)
    assert (failed.error_code, failed.base_offset) == (ErrorCode.kafka_storage_error, -1)
    assert not partition.log.offline
    _, read = replicas.read("t", 0, 0, 1 << 20)
    assert read.error_code == ErrorCode.none
    assert read.records
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "writev", real_writev)
    assert replicas.append_to_leader("t", 0, batch(), -1).base_offset == 1

    def cannot_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "write", disk_full)
    monkeypatch.setattr(os, "writev", disk_full)
    monkeypatch.setattr(os, "ftruncate", cannot_truncate)
    failed = replicas.append_to_leader("t", 0, batch(), -1)
    assert failed.error_code == ErrorCode.kafka_storage_error
    assert partition.log.offline
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "writev", real_writev)
    monkeypatch.setattr(os, "ftruncate", real_ftruncate)
    assert replicas.append_to_leader("t", 0, batch(), -1).error_code == (
        ErrorCode.kafka_storage_error)
    found, read = replicas.read("t", 0, 0, 1 << 20)
    assert (found, read.error_code) == (None, ErrorCode.kafka_storage_error)
    partition.close()
