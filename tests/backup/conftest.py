"""Fixtures for backup, restore and migrate: the CLI runner, rich source topics, and
record-by-record comparison through confluent-kafka (never through kcli)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from tests.cli.conftest import Kcli, cli_env, kcli, run_kcli  # noqa: F401 (fixtures)

T0 = 1_700_000_000_000
Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Rec:
    """What must survive a copy, plus where the record was."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    ts_type: int

    @property
    def content(self) -> tuple[Any, ...]:
        """Everything but the offset (and the timestamp type, which Kafka cannot keep
        for LogAppendTime records)."""
        return (self.partition, self.key, self.value, self.headers, self.timestamp)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def create_topic(bootstrap: str, name: str, partitions: int,
                 config: dict[str, str] | None = None) -> None:
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    for future in futures.values():
        future.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = client.list_topics(name, timeout=10).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions \
                and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} has no leaders")


def set_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    client = admin(bootstrap)  # must outlive its futures
    for future in client.incremental_alter_configs([resource]).values():
        future.result(30)


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)
    (future,) = client.describe_configs([resource]).values()
    return {k: v.value for k, v in future.result(30).items() if not v.is_default}


def read_all(bootstrap: str, topic: str) -> list[Rec]:
    """Every record of every partition, from the log start to the end."""
    client = admin(bootstrap)
    partitions = sorted(client.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "checker",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "auto.offset.reset": "earliest", "log_level": 0})
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
    out: list[Rec] = []
    ended: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(ended) < len(partitions):
            assert time.monotonic() < deadline, f"{topic} did not reach its end"
            for m in consumer.consume(10_000, 0.1):
                error = m.error()
                if error is not None:
                    assert error.name() == "_PARTITION_EOF", error
                    ended.add(m.partition())
                    continue
                ts_type, ts = m.timestamp()
                out.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                               tuple(m.headers() or ()), ts, ts_type))
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def by_partition(records: list[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {}
    for record in records:
        out.setdefault(record.partition, []).append(record)
    return out


def assert_same_records(source: list[Rec], target: list[Rec]) -> None:
    """Same partitions, same order, same keys, values, headers and timestamps."""
    assert len(target) == len(source)
    assert [r.content for r in target] == [r.content for r in source]


def watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marks", "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in sorted(partitions)}
    finally:
        consumer.close()


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], tuple[int, str | None]],
           ) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "log_level": 0})
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o, m) if m is not None
                                 else TopicPartition(t, p, o)
                                 for (t, p), (o, m) in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, str | None]]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    client = admin(bootstrap)
    (future,) = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)]).values()
    result = future.result(30)
    return {tp.partition: (tp.offset, tp.metadata) for tp in result.topic_partitions
            if tp.topic == topic and tp.offset >= 0}


@dataclass
class RichTopic:
    """A topic with everything a copy must keep, and groups committed on it."""

    name: str
    partitions: int
    groups: dict[str, dict[tuple[str, int], tuple[int, str | None]]] = field(
        default_factory=dict)


SAMPLES: list[tuple[bytes | None, bytes | None, Headers]] = [
    (b"key", b"value", []),
    (None, b"null key", [("h", b"1")]),
    (b"tombstone", None, []),
    (b"", b"", [("dup", b"a"), ("dup", b"b"), ("dup", b"a")]),
    (None, None, [("null", None), ("empty", b""), ("null", None)]),
    (b"\xff\xfe\x00", b"\x00\x01binary\x80", [("bin", b"\xc3\x28")]),
    ("ключ".encode(), "значение ✓".encode(), [("ü", "ö".encode())]),
]


def fill_rich_topic(bootstrap: str, name: str, partitions: int = 3,
                    per_partition: int = 60) -> RichTopic:
    """Records with keys, null keys, tombstones, empty and binary data, duplicate and
    null-valued headers, in batches compressed every way, first with CreateTime, then
    (after a config change) with LogAppendTime; the first records of partition 0 deleted
    (log start 4); groups committed inside, at the end, and before the log start."""
    create_topic(bootstrap, name, partitions)
    producers = [Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0,
                           "compression.type": codec, "enable.idempotence": True})
                 for codec in ("none", "gzip", "snappy", "lz4", "zstd")]
    half = per_partition // 2
    for phase in (0, 1):
        if phase:
            set_config(bootstrap, name, "message.timestamp.type", "LogAppendTime")
        for p in range(partitions):
            for i in range(phase * half, (phase + 1) * half):
                key, value, headers = SAMPLES[i % len(SAMPLES)]
                producer = producers[(i // 7) % len(producers)]
                producer.produce(name, value=value, key=key, partition=p,
                                 timestamp=T0 + p * 1000 + i, headers=headers or None)
            for producer in producers:
                assert producer.flush(30) == 0
    from confluent_kafka import TopicPartition as TP

    client = admin(bootstrap)
    (future,) = client.delete_records([TP(name, 0, 4)]).values()
    future.result(30)
    topic = RichTopic(name, partitions)
    marks = watermarks(bootstrap, name)
    topic.groups = {
        f"{name}-mid": {(name, p): (10 + p, f"meta-{p}") for p in range(partitions)},
        f"{name}-end": {(name, p): (marks[p][1], None) for p in range(partitions)},
        f"{name}-old": {(name, 0): (1, "before the log start")},
    }
    for group, offsets in topic.groups.items():
        commit(bootstrap, group, offsets)
    return topic


@pytest.fixture
def rich_topic(bootstrap: str, topic_name: str) -> RichTopic:
    return fill_rich_topic(bootstrap, topic_name)


def assert_groups_point_at_same_records(
        source_bootstrap: str, source: RichTopic, target_bootstrap: str, target: str,
        source_records: list[Rec], target_records: list[Rec]) -> None:
    """Each group's committed offset on the target points at the record its source
    offset pointed at (the first record at or after it; the end stays the end)."""
    src = by_partition(source_records)
    tgt = by_partition(target_records)
    tgt_marks = watermarks(target_bootstrap, target)
    for group, offsets in source.groups.items():
        now = committed(target_bootstrap, group, target)
        for (_topic, p), (offset, metadata) in offsets.items():
            assert p in now, f"{group} has no offset on {target}[{p}]"
            target_offset, target_metadata = now[p]
            assert target_metadata == metadata, group
            following = [r for r in src.get(p, []) if r.offset >= offset]
            if not following:
                assert target_offset == tgt_marks[p][1], (group, p)
                continue
            landed = [r for r in tgt.get(p, []) if r.offset >= target_offset]
            assert landed, (group, p, target_offset)
            assert landed[0].offset == target_offset
            assert landed[0].content == following[0].content, (group, p)
