"""Consumer groups from clients pinned to old brokers, as the issue's users run them:
kafka-python at 0.10.1 and 1.0.0, aiokafka at 0.10.1. Each produces, joins a group,
consumes everything and commits; a new client sees the commits."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

COUNT = 30


def create(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
        return sum(max(0, tp.offset) for tp in found)
    finally:
        consumer.close()


@pytest.mark.parametrize("api_version", [(0, 10, 1), (1, 0, 0)])
def test_kafka_python_group(bootstrap: str, topic_name: str,
                            api_version: tuple[int, ...]) -> None:
    create(bootstrap, topic_name)
    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version)
    for i in range(COUNT):
        producer.send(topic_name, b"m%d" % i, partition=i % 2)
    producer.flush(10)
    producer.close()
    group = f"kp-{topic_name}"
    consumer = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, group_id=group,
                             api_version=api_version, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=15000)
    seen = []
    for message in consumer:
        seen.append(message.value)
        if len(seen) == COUNT:
            break
    consumer.commit()
    consumer.close()
    assert sorted(seen) == sorted(b"m%d" % i for i in range(COUNT))
    assert committed(bootstrap, group, topic_name) == COUNT


def test_aiokafka_group(bootstrap: str, topic_name: str) -> None:
    create(bootstrap, topic_name)
    group = f"aio-{topic_name}"

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, api_version="0.10.1")
        await producer.start()
        try:
            for i in range(COUNT):
                await producer.send(topic_name, b"m%d" % i, partition=i % 2)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=bootstrap,
                                    api_version="0.10.1", group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: list[bytes] = []
        try:
            while len(seen) < COUNT:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for messages in batches.values():
                    seen += [m.value for m in messages if m.value is not None]
            await consumer.commit()
        finally:
            await consumer.stop()
        return seen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # aiokafka on api_version
        seen = asyncio.run(run())
    assert sorted(seen) == sorted(b"m%d" % i for i in range(COUNT))
    assert committed(bootstrap, group, topic_name) == COUNT
