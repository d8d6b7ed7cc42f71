"""The topic tail of the dashboard decodes registry-framed records by their schema id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from kcli.tui.app import KcliApp
from kcli.tui.screens.topic import TopicScreen
from kcli.tui.service import KafkaService
from tests.tui.conftest import INTERVAL, create_topic, drive, produce, row, until

PRICE = {"type": "record", "name": "Price", "fields": [
    {"name": "sku", "type": "string"}, {"name": "cents", "type": "long"}]}


@pytest.fixture
def registry_service(bootstrap: str, schema_registry: str) -> Iterator[KafkaService]:
    svc = KafkaService({"bootstrap.servers": bootstrap, "log_level": 0,
                        "allow.auto.create.topics": False}, timeout=10, interval=INTERVAL,
                       registry={"url": schema_registry})
    yield svc
    svc.close()


def test_the_tail_shows_framed_records_decoded(
        registry_service: KafkaService, admin: AdminClient, bootstrap: str,
        schema_registry: str, topic_name: str) -> None:
    topic = create_topic(admin, topic_name, 1)
    client = SchemaRegistryClient({"url": schema_registry})
    serialize = AvroSerializer(client, json.dumps(PRICE))
    framed = serialize({"sku": "A-1", "cents": 250},
                       SerializationContext(topic, MessageField.VALUE))
    assert framed is not None
    produce(bootstrap, topic, [framed, b"plain text", b"\x00\x00\x00\xff\xffnot a schema"])
    client.close()
    app = KcliApp(registry_service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        await pilot.press("2", "slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*topic[-6:], "enter", "enter")
        await until(pilot, "the topic screen", lambda: isinstance(app.screen, TopicScreen))
        tail = app.screen.query_one("#tail", DataTable)
        await until(pilot, "the tail", lambda: len(tail.rows) == 3)
        assert row(tail, "0:0")[4] == '{"sku":"A-1","cents":250}'
        assert row(tail, "0:1")[4] == "plain text"
        assert row(tail, "0:2")[4] == "<17 bytes, binary>"  # unknown id: as it is

    drive(app, script, size=(120, 30))
