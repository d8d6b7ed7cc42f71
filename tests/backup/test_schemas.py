"""Registry-framed records through backup, restore and migrate: the archive carries the
schemas, and a target registry that already gave those ids to other schemas gets the
records rewritten to its own ids (or, in IMPORT mode, keeps them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.backup.conftest import Kcli, create_topic, read_all
from tests.support.broker import BrokerProcess
from tests.support.registry import RegistryProcess

ORDER = {"type": "record", "name": "Order", "namespace": "kcli.test",
         "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}
KEY = {"type": "record", "name": "OrderKey", "namespace": "kcli.test",
       "fields": [{"name": "id", "type": "long"}]}
OTHER = {"type": "record", "name": "Unrelated", "fields": [{"name": "x", "type": "int"}]}


@pytest.fixture
def target(make_broker: Callable[..., BrokerProcess], tmp_path: Path) -> Iterator[
        tuple[str, str]]:
    """(bootstrap, registry URL) of a second cluster with its own registry."""
    broker = make_broker("target").start()
    registry = RegistryProcess(broker.bootstrap, tmp_path / "target-registry.log").start()
    yield broker.bootstrap, registry.url
    registry.stop()


def produce_orders(bootstrap: str, registry: SchemaRegistryClient, topic: str,
                   count: int) -> list[dict[str, object]]:
    """Framed keys and values written by confluent-kafka's serializer; also a record
    with a bare value and one with a null value, which must pass unchanged."""
    create_topic(bootstrap, topic, 2)
    values = AvroSerializer(registry, json.dumps(ORDER))
    keys = AvroSerializer(registry, json.dumps(KEY))
    producer = Producer({"bootstrap.servers": bootstrap})
    sent = []
    for i in range(count):
        order = {"id": i, "item": f"item-{i}"}
        producer.produce(topic, partition=i % 2,
                         key=keys({"id": i}, SerializationContext(topic, MessageField.KEY)),
                         value=values(order, SerializationContext(topic, MessageField.VALUE)))
        sent.append(order)
    producer.produce(topic, partition=0, key=b"plain", value=b"not framed")
    producer.produce(topic, partition=1, key=None, value=None)
    producer.flush(30)
    return sent


def decoded(bootstrap: str, registry: SchemaRegistryClient, topic: str) -> list[object]:
    """Every record of the topic decoded with the given registry, in offset order."""
    deserialize = AvroDeserializer(registry)
    out: list[object] = []
    for record in sorted(read_all(bootstrap, topic), key=lambda r: (r.partition, r.offset)):
        if record.value is None or not record.value.startswith(b"\x00"):
            out.append(record.value)
            continue
        out.append((deserialize(record.key, SerializationContext(topic, MessageField.KEY)),
                    deserialize(record.value, SerializationContext(topic, MessageField.VALUE))))
    return out


def test_restore_into_another_registry_rewrites_the_ids(
        kcli: Kcli, bootstrap: str, schema_registry: str, topic_name: str,
        target: tuple[str, str], tmp_path: Path,
        registry_clients: Callable[[str], SchemaRegistryClient]) -> None:
    source = registry_clients(schema_registry)
    produce_orders(bootstrap, source, topic_name, 20)
    archive = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(archive), "--registry", schema_registry).ok()
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    carried = orjson.loads((archive / manifest["cluster"]["schemas"]["path"]).read_bytes())
    subjects = {s["subject"] for schema in carried["schemas"] for s in schema["subjects"]}
    assert {f"{topic_name}-key", f"{topic_name}-value"} <= subjects
    kcli("backup", "verify", str(archive)).ok()

    target_bootstrap, target_url = target
    sink = registry_clients(target_url)
    for i in range(3):  # the target gave ids 1-3 to schemas of its own
        sink.register_schema(f"taken-{i}", Schema(json.dumps({**OTHER, "name": f"U{i}"}),
                                                  "AVRO"))
    renamed = f"{topic_name}-copy"
    done = kcli("-b", target_bootstrap, "restore", str(archive), "--topic",
                f"{topic_name}={renamed}", "--registry", target_url, "-o", "json").ok()
    assert "rewritten" in orjson.loads(done.out)["schemas"]
    assert decoded(target_bootstrap, sink, renamed) == decoded(bootstrap, source, topic_name)
    # subjects follow the renamed topic (TopicNameStrategy)
    assert {f"{renamed}-key", f"{renamed}-value"} <= set(sink.get_subjects())
    # rerunning the restore writes nothing twice
    again = kcli("-b", target_bootstrap, "restore", str(archive), "--topic",
                 f"{topic_name}={renamed}", "--registry", target_url, "-o", "json").ok()
    assert sum(t["copied"] for t in orjson.loads(again.out)["topics"]) == 0


def test_restore_into_an_import_mode_registry_keeps_the_ids(
        kcli: Kcli, bootstrap: str, schema_registry: str, topic_name: str,
        target: tuple[str, str], tmp_path: Path,
        registry_clients: Callable[[str], SchemaRegistryClient]) -> None:
    source = registry_clients(schema_registry)
    produce_orders(bootstrap, source, topic_name, 5)
    archive = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(archive), "--registry", schema_registry).ok()
    target_bootstrap, target_url = target
    sink = registry_clients(target_url)
    sink.update_global_mode("IMPORT")
    kcli("-b", target_bootstrap, "restore", str(archive), "--registry", target_url).ok()
    source_ids = {source.get_latest_version(f"{topic_name}-{f}").schema_id
                  for f in ("key", "value")}
    assert {sink.get_latest_version(f"{topic_name}-{f}").schema_id
            for f in ("key", "value")} == source_ids
    assert [r.value for r in read_all(target_bootstrap, topic_name)] == \
        [r.value for r in read_all(bootstrap, topic_name)]


def test_restore_without_a_target_registry_warns(
        kcli: Kcli, bootstrap: str, schema_registry: str, topic_name: str,
        target: tuple[str, str], tmp_path: Path,
        registry_clients: Callable[[str], SchemaRegistryClient]) -> None:
    produce_orders(bootstrap, registry_clients(schema_registry), topic_name, 2)
    archive = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(archive), "--registry", schema_registry).ok()
    done = kcli("-b", target[0], "restore", str(archive), "--registry", "none").ok()
    assert "no schema registry is known for the target" in done.err


def test_migrate_between_registries(
        kcli: Kcli, bootstrap: str, schema_registry: str, topic_name: str,
        target: tuple[str, str], registry_clients: Callable[[str], SchemaRegistryClient]) -> None:
    source = registry_clients(schema_registry)
    produce_orders(bootstrap, source, topic_name, 10)
    target_bootstrap, target_url = target
    sink = registry_clients(target_url)
    sink.register_schema("taken", Schema(json.dumps(OTHER), "AVRO"))
    kcli("migrate", topic_name, "--to", target_bootstrap, "--registry-from", schema_registry,
         "--registry-to", target_url).ok()
    assert decoded(target_bootstrap, sink, topic_name) == decoded(bootstrap, source, topic_name)
    kcli("migrate", topic_name, "--to", target_bootstrap, "--registry-from",
         schema_registry).fails(2, "give both --registry-from and --registry-to")
