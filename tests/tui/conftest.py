"""Helpers for the dashboard's tests: the real data service against the session broker,
a driver for ``App.run_test()`` without an async plugin, waits on conditions (never on
fixed sleeps), and small producers and consumers that make real lag."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowKey

from kcli.tui.app import KcliApp
from kcli.tui.service import KafkaService

INTERVAL = 0.25
"""Seconds between polls in these tests: several polls happen in a second."""
WAIT = 15.0

Script = Callable[[Pilot[Any]], Awaitable[None]]


def drive(app: KcliApp, script: Script, size: tuple[int, int] = (80, 24)) -> None:
    """Run the app headless at ``size`` and let ``script`` drive it with a Pilot."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await script(pilot)

    asyncio.run(main())


async def until(pilot: Pilot[Any], what: str, predicate: Callable[[], object],
                limit: float = WAIT) -> None:
    """Let the app run until ``predicate()`` holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + limit
    while True:
        try:
            if predicate():
                return
        except LookupError:  # a widget or row not there yet
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit:g} s waiting for {what}")
        await pilot.pause(0.05)


def plain(value: object) -> str:
    """The text of a cell or a Static's content."""
    return value.plain if isinstance(value, Text) else str(value)


def row(table: DataTable[Any], key: str | RowKey) -> list[str]:
    """The cells of one row, as text."""
    return [plain(c).strip() for c in table.get_row(key)]


def static_text(widget: Static) -> str:
    """What a Static shows."""
    return plain(widget.content)


def rendered_text(widget: Static, width: int = 100) -> str:
    """What a Static holding any rich renderable shows, as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def service(bootstrap: str) -> Iterator[KafkaService]:
    """The dashboard's real data service against the session broker."""
    svc = KafkaService({"bootstrap.servers": bootstrap, "log_level": 0,
                        "allow.auto.create.topics": False}, timeout=10, interval=INTERVAL)
    yield svc
    svc.close()


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    """A plain confluent-kafka AdminClient, to check what the dashboard did."""
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def group_name() -> str:
    """A group id no other test uses."""
    return f"g-{uuid.uuid4().hex[:12]}"


def create_topic(admin: AdminClient, name: str, partitions: int = 3) -> str:
    """Create a topic and wait until it is there."""
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=WAIT)
    return name


def produce(bootstrap: str, topic: str, values: Sequence[bytes], *, partition: int | None = None,
            headers: list[tuple[str, bytes]] | None = None) -> None:
    """Produce values (round-robin over partitions unless one is named) and flush."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for i, value in enumerate(values):
        kwargs: dict[str, Any] = {"key": f"k{i}".encode(), "value": value}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        producer.produce(topic, **kwargs)
    assert producer.flush(WAIT) == 0, "records not delivered"


def join_and_commit(bootstrap: str, topic: str, group: str, offsets: dict[int, int],
                    **config: str) -> Consumer:
    """A real group member: subscribes, waits for its assignment, commits ``offsets``
    ({partition: offset}) and stays in the group without committing again (the caller
    closes it). ``config`` adds consumer settings."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "client.id": "tui-member", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, **config})
    consumer.subscribe([topic])
    deadline = time.monotonic() + WAIT
    while len(consumer.assignment()) < len(offsets):
        assert time.monotonic() < deadline, f"assigned only {consumer.assignment()}"
        consumer.poll(0.05)
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False)
    return consumer


def committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets, as the cluster reports them."""
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset
            for tp in future.result(timeout=WAIT).topic_partitions if tp.offset >= 0}
