"""A broker for the group tests that allows short session timeouts, and consumer helpers."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess

GROUP_SETTINGS = {"group.min.session.timeout.ms": "100",
                  "group.consumer.heartbeat.interval.ms": "300"}
FAST_CONSUMER = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 100,
    "fetch.wait.max.ms": 50,
    "topic.metadata.refresh.interval.ms": 1000,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
}


@pytest.fixture(scope="package")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the group tests (short session timeouts allowed)."""
    process = BrokerProcess(tmp_path_factory.mktemp("groups") / "broker", settings=GROUP_SETTINGS)
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker exited with {code}:\n{process.log()}"


@pytest.fixture
def gbootstrap(group_broker: BrokerProcess) -> str:
    return group_broker.bootstrap


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int,
            tag: str = "") -> set[bytes]:
    """Produce ``per_partition`` records to each partition; returns their values."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    values = set()
    for i in range(per_partition * partitions):
        value = f"{tag}{i}".encode()
        producer.produce(topic, value, partition=i % partitions)
        values.add(value)
    assert producer.flush(10) == 0
    return values


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Readiness polling with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


class _Collector(logging.Logger):
    """A logger that keeps librdkafka's log lines in a list."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("librdkafka")
        self.lines = lines

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self.lines.append(str(msg) % args if args else str(msg))


class GroupConsumer:
    """A confluent-kafka consumer polling in its own thread, recording what it owns and reads."""

    def __init__(self, bootstrap: str, group: str, topic: str, **config: Any) -> None:
        self.topic = topic
        self.lock = threading.Lock()
        self.owned: set[int] = set()
        self.messages: list[tuple[int | None, int | None, bytes | None]] = []
        self.assigned_events = 0
        self.revoked_events = 0
        self.errors: list[str] = []
        self.client_log: list[str] = []
        settings = {"bootstrap.servers": bootstrap, "group.id": group, **FAST_CONSUMER, **config}
        if settings.get("group.protocol") == "consumer":  # the broker sets these (KIP-848)
            for classic_only in ("session.timeout.ms", "heartbeat.interval.ms"):
                del settings[classic_only]
        if "debug" in settings:  # keep what librdkafka says, to look for errors it met
            settings["logger"] = _Collector(self.client_log)
        self.consumer = Consumer(settings)
        # KIP-848 assignments are incremental too: callbacks name only what changes
        self.cooperative = (settings.get("partition.assignment.strategy") == "cooperative-sticky"
                            or settings.get("group.protocol") == "consumer")
        self.stop = threading.Event()
        self.consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke,
                                on_lost=self._revoke)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self.lock:
            if not self.cooperative:
                self.owned = set()
            self.owned |= {p.partition for p in partitions}
            self.assigned_events += 1

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self.lock:
            self.owned -= {p.partition for p in partitions}
            self.revoked_events += 1

    def _run(self) -> None:
        while not self.stop.is_set():
            for message in self.consumer.consume(500, timeout=0.05):
                if message.error():
                    self.errors.append(str(message.error()))
                    continue
                with self.lock:
                    self.messages.append((message.partition(), message.offset(),
                                          message.value()))

    def partitions(self) -> set[int]:
        with self.lock:
            return set(self.owned)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def commit_and_close(self) -> None:
        """Stop polling, commit the position of everything read, leave the group."""
        self.stop.set()
        self.thread.join(10)
        positions = self.consumer.position(
            [TopicPartition(self.topic, p) for p in sorted(self.partitions())])
        valid = [p for p in positions if p.offset >= 0]
        deadline = time.monotonic() + 10
        while valid:
            # per-partition errors do not raise, so they are looked at here. A heartbeat
            # can move a KIP-848 member's epoch after the client read it; Kafka 3.9 then
            # answers STALE_MEMBER_EPOCH, the client learns the new epoch from its next
            # heartbeat, and the commit is tried again, as an application would
            try:
                done = self.consumer.commit(offsets=valid, asynchronous=False) or []
                errors = [str(p.error) for p in done if p.error is not None]
                failed = {p.partition for p in done if p.error is not None}
            except KafkaException as error:
                if error.args[0].code() != KafkaError.STALE_MEMBER_EPOCH:
                    raise
                errors, failed = [str(error)], {p.partition for p in valid}
            if not failed:
                break
            assert time.monotonic() < deadline, errors
            valid = [p for p in valid if p.partition in failed]
            time.sleep(0.1)
        self.consumer.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


@pytest.fixture
def consumers() -> Iterator[list[GroupConsumer]]:
    """Consumers a test starts; closed at the end whatever happened."""
    started: list[GroupConsumer] = []
    yield started
    for consumer in started:
        if not consumer.stop.is_set():
            consumer.close()


