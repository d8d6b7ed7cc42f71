"""A partition whose log goes offline on a broker moves off it (Kafka's rule for a failed
log dir): its leadership goes to an in-sync replica, the broker leaves its ISR and stops
fetching it. Two brokers in this process sharing a cluster directory, no server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.cluster.controller import controlled_shutdown
from kcli.broker.errors import ErrorCode
from kcli.broker.log import LogOffline, Record, encode_batch
from tests.cluster.test_rules import cluster_of, state


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Broker, Broker]]:
    opened: list[Broker] = []
    for node in (1, 2):
        broker = Broker(BrokerConfig(node, tmp_path / f"b{node}", cluster_dir=tmp_path / "c"))
        broker.open(9000 + node)
        opened.append(broker)
    try:
        yield opened[0], opened[1]
    finally:
        for broker in opened:
            broker.close()


def batch(value: bytes) -> bytes:
    return encode_batch([Record(0, 1_700_000_000_000, None, value, [])])


@contextlib.contextmanager
def failing_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Writes fail, and so does the undo (ftruncate): the next append takes its log offline."""

    def fails(*args: object) -> int:
        raise OSError(errno.EIO, "I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "write", fails)
        patched.setattr(os, "writev", fails)
        patched.setattr(os, "ftruncate", fails)
        yield


def take_offline(broker: Broker, topic: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """An append whose write fails and whose undo fails too; returns its error code."""
    with failing_disk(monkeypatch):
        return broker.replicas.append_to_leader(topic, 0, batch(b"lost"), -1).error_code


def test_only_the_offline_partitions_move() -> None:
    metadata = cluster_of(state([1, 2], 1, [1, 2]), state([2, 1], 2, [2, 1]),
                          state([1, 2], 1, [1, 2]))
    changes = controlled_shutdown(metadata, 1, {1, 2}, only={("t", 0), ("t", 1)})
    led, followed, untouched = metadata.topics["t"].partitions
    assert (led.leader, led.leader_epoch, led.isr) == (2, 1, [2])
    assert (followed.leader, followed.isr) == (2, [2])
    assert (untouched.leader, untouched.isr) == (1, [1, 2])
    assert all("log offline" in change for change in changes)


def test_a_leader_whose_log_goes_offline_hands_the_partition_over(
    brokers: tuple[Broker, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = brokers
    asyncio.run(one.create_topic("led", -1, -1, {}, [[1, 2]]))
    two.refresh_metadata()
    assert one.metadata.topics["led"].partitions[0].isr == [1, 2]
    assert take_offline(one, "led", monkeypatch) == ErrorCode.kafka_storage_error
    assert one.partitions[("led", 0)].log.offline
    one._hand_over_offline_logs()
    p = one.metadata.topics["led"].partitions[0]
    assert (p.leader, p.leader_epoch, p.isr) == (2, 1, [2])
    one._hand_over_offline_logs()  # settled: nothing more to do
    assert one.metadata.topics["led"].partitions[0].partition_epoch == p.partition_epoch
    # the old leader answers KAFKA_STORAGE_ERROR, the new one takes the writes
    assert one.replicas.append_to_leader("led", 0, batch(b"x"), 1).error_code == (
        ErrorCode.kafka_storage_error)
    two.refresh_metadata()
    assert two.replicas.append_to_leader("led", 0, batch(b"y"), 1).error_code == ErrorCode.none


def test_a_follower_whose_log_goes_offline_leaves_the_isr(
    brokers: tuple[Broker, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = brokers
    asyncio.run(two.create_topic("followed", -1, -1, {}, [[2, 1]]))
    one.refresh_metadata()
    follower = one.partitions[("followed", 0)]
    leader = two.partitions[("followed", 0)].log
    for value in (b"a", b"b"):
        assert two.replicas.append_to_leader("followed", 0, batch(value), 1).error_code == 0
    assert follower.append_replicated(leader.read(0, 1)) == 1  # the first batch only
    leader_bytes = leader.read(1, 1 << 20)
    with failing_disk(monkeypatch), pytest.raises(LogOffline):
        follower.append_replicated(leader_bytes)
    assert follower.log.offline
    one._hand_over_offline_logs()
    p = one.metadata.topics["followed"].partitions[0]
    assert (p.leader, p.isr) == (2, [2])
    fetchers = _Fetchers()
    monkeypatch.setattr(one, "fetchers", fetchers)
    one._update_fetchers()
    assert fetchers.wanted == {}  # it fetches the offline partition no more


class _Fetchers:
    def __init__(self) -> None:
        self.wanted: dict[int, set[tuple[str, int]]] | None = None

    def update(self, wanted: dict[int, set[tuple[str, int]]]) -> None:
        self.wanted = wanted
