"""`kcli schema` and registry-framed produce/consume, against the session registry, with
confluent-kafka's serdes on the other side."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.backup.conftest import read_all
from tests.cli.conftest import Kcli

USER = {"type": "record", "name": "User", "fields": [
    {"name": "name", "type": "string"}, {"name": "age", "type": "int"},
    {"name": "email", "type": ["null", "string"], "default": None}]}


@pytest.fixture
def registry_client(schema_registry: str) -> Iterator[SchemaRegistryClient]:
    client = SchemaRegistryClient({"url": schema_registry})
    yield client
    client.close()


@pytest.fixture
def user_schema(tmp_path: Path) -> Path:
    path = tmp_path / "user.avsc"
    path.write_text(json.dumps(USER, indent=2))
    return path


def test_produce_frames_what_the_deserializer_reads(
        kcli: Kcli, bootstrap: str, topic: str, schema_registry: str, user_schema: Path,
        registry_client: SchemaRegistryClient) -> None:
    lines = b'{"name":"ada","age":36,"email":"ada@example.com"}\n{"name":"bob","age":7}\n'
    kcli("produce", topic, "-f", "avro", "--schema", str(user_schema), "-P", "0",
         "--registry", schema_registry, input=lines).ok()
    registered = registry_client.get_latest_version(f"{topic}-value")
    records = read_all(bootstrap, topic)
    assert [r.value[:5] for r in records if r.value] == \
        [b"\x00" + registered.schema_id.to_bytes(4, "big")] * 2
    deserialize = AvroDeserializer(registry_client)
    context = SerializationContext(topic, MessageField.VALUE)
    assert [deserialize(r.value, context) for r in records] == [
        {"name": "ada", "age": 36, "email": "ada@example.com"},
        {"name": "bob", "age": 7, "email": None}]
    # and kcli reads its own framing back as JSON
    out = kcli("consume", topic, "-f", "avro", "--registry", schema_registry).ok()
    assert [orjson.loads(line) for line in out.out.splitlines()] == [
        {"name": "ada", "age": 36, "email": "ada@example.com"},
        {"name": "bob", "age": 7, "email": None}]


def test_consume_decodes_serializer_output_keys_and_values(
        kcli: Kcli, bootstrap: str, topic: str, schema_registry: str,
        registry_client: SchemaRegistryClient) -> None:
    key_schema = {"type": "record", "name": "K", "fields": [{"name": "id", "type": "long"}]}
    values = AvroSerializer(registry_client, json.dumps(USER))
    keys = AvroSerializer(registry_client, json.dumps(key_schema))
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        producer.produce(topic, partition=0,
                         key=keys({"id": i}, SerializationContext(topic, MessageField.KEY)),
                         value=values({"name": f"u{i}", "age": i, "email": None},
                                      SerializationContext(topic, MessageField.VALUE)))
    producer.flush(30)
    out = kcli("consume", topic, "-f", "avro", "--registry", schema_registry,
               "-F", "%k|%s\n").ok()
    assert out.text.splitlines() == [
        f'{{"id":{i}}}|{{"name":"u{i}","age":{i},"email":null}}' for i in range(3)]
    envelope = kcli("consume", topic, "-f", "avro", "--registry", schema_registry,
                    "-o", "jsonl", "-n", "1").ok()
    first = orjson.loads(envelope.out.splitlines()[0])
    assert (first["key"], orjson.loads(first["value"])["name"]) == ('{"id":0}', "u0")


def test_records_that_cannot_be_decoded(kcli: Kcli, bootstrap: str, topic: str,
                                        schema_registry: str, user_schema: Path) -> None:
    kcli("produce", topic, "-f", "avro", "--schema", str(user_schema), "-P", "0",
         "--registry", schema_registry, input=b'{"name":"a","age":1}\n').ok()
    framed = read_all(bootstrap, topic)[0].value
    assert framed is not None
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, partition=0, value=b"\x01not framed")            # wrong magic
    producer.produce(topic, partition=0, value=framed[:6])                  # truncated
    producer.produce(topic, partition=0, value=b"\x00\x7f\xff\xff\xf0body")  # unknown id
    producer.flush(30)
    base = ("consume", topic, "-f", "avro", "--registry", schema_registry)
    kcli(*base).fails(2, rf"{topic} partition 0 offset 1: not a schema-registry record")
    kcli(*base, "--from", "2").fails(2, rf"{topic} partition 0 offset 2: not Avro for "
                                        "schema id")
    kcli(*base, "--from", "3").fails(2, r"offset 3: schema id 2147483632 is not in the "
                                        "registry")
    raw = kcli(*base, "--on-error", "raw").ok()
    assert raw.out.splitlines()[0] == b'{"name":"a","age":1,"email":null}'
    assert raw.out.splitlines()[1] == b"\x01not framed"
    assert "3 records could not be decoded and were printed raw" in raw.err


def test_schema_commands(kcli: Kcli, schema_registry: str, user_schema: Path,
                         tmp_path: Path) -> None:
    subject = f"cli-{uuid.uuid4().hex[:8]}-value"
    reg = ("--registry", schema_registry)
    first = kcli("schema", "register", subject, "--schema", str(user_schema), *reg).ok()
    schema_id = int(first.text.strip())
    assert f"{subject}: schema id {schema_id}, version 1" in first.err
    listed = orjson.loads(kcli("schema", "list", *reg, "-o", "json").ok().out)
    assert {"subject": subject, "versions": 1, "latest": 1, "id": schema_id,
            "type": "AVRO"} in listed
    got = orjson.loads(kcli("schema", "get", subject, *reg, "-o", "json").ok().out)
    assert (got["version"], got["id"], orjson.loads(got["schema"])) == (1, schema_id, USER)
    raw = kcli("schema", "get", "--id", str(schema_id), "--raw", *reg).ok()
    assert orjson.loads(raw.out) == USER

    breaking = tmp_path / "breaking.avsc"
    breaking.write_text(json.dumps({**USER, "fields": [*USER["fields"],
                                                       {"name": "zip", "type": "string"}]}))
    check = kcli("schema", "compat", subject, "--schema", str(breaking), *reg, "-o", "json")
    assert check.code == 1, check.explain()
    verdict = orjson.loads(check.out)
    assert verdict["compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in verdict["messages"])
    kcli("schema", "register", subject, "--schema", str(breaking), *reg).fails(
        1, "incompatible with an earlier schema.*registry error 40901")
    kcli("schema", "config", subject, "--set", "none", *reg).ok()
    assert orjson.loads(kcli("schema", "config", subject, *reg, "-o", "json").ok().out)[
        "compatibility"] == "NONE"
    kcli("schema", "register", subject, "--schema", str(breaking), *reg).ok()

    kcli("schema", "delete", subject, "--version", "1", "--permanent", *reg).fails(
        1, "not deleted first.*40407")
    kcli("schema", "delete", subject, "--version", "1", *reg).ok()
    kcli("schema", "delete", subject, *reg).ok()
    kcli("schema", "delete", subject, "--permanent", *reg).ok()
    kcli("schema", "get", subject, *reg).fails(4, "40401")


def test_bad_input(kcli: Kcli, topic: str, schema_registry: str, user_schema: Path,
                   tmp_path: Path) -> None:
    reg = ("--registry", schema_registry)
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record", "name": "R"}')
    kcli("schema", "register", "x-value", "--schema", str(bad), *reg).fails(
        2, "Invalid schema.*42201")
    kcli("schema", "get", "--id", "99999999", *reg).fails(4, "40403")
    kcli("schema", "list", "--registry", "http://127.0.0.1:9").fails(
        3, "cannot reach the schema registry at http://127.0.0.1:9")
    kcli("schema", "list").fails(2, "no schema registry")
    kcli("produce", topic, "-f", "avro", "--schema", str(user_schema), *reg,
         input=b'{"name":"a","age":"old"}\n').fails(
        2, "line 1: record does not match the Avro schema: User.age is .old., expected int")
    kcli("produce", topic, "-f", "avro", "--subject", f"{topic}-none", *reg,
         input=b"{}\n").fails(4, "40401")
    kcli("consume", topic, "-f", "avro", "--registry", "none").fails(
        2, "-f avro needs a schema registry")
    kcli("consume", topic, "-f", "avro", *reg, "--on-error", "skip").fails(
        2, "--on-error")


def test_produce_with_a_subjects_latest_schema(
        kcli: Kcli, bootstrap: str, topic: str, schema_registry: str, user_schema: Path,
        registry_client: SchemaRegistryClient) -> None:
    """--subject without --schema writes with the subject's latest version (as
    use.latest.version does), under any subject name (RecordNameStrategy and the like)."""
    subject = f"kcli.test.User-{topic}"
    kcli("schema", "register", subject, "--schema", str(user_schema),
         "--registry", schema_registry).ok()
    kcli("produce", topic, "-f", "avro", "--subject", subject, "-P", "1",
         "--registry", schema_registry, input=b'{"name":"c","age":3}\n').ok()
    value = read_all(bootstrap, topic)[0].value
    assert value is not None
    assert int.from_bytes(value[1:5], "big") == \
        registry_client.get_latest_version(subject).schema_id
    assert f"{topic}-value" not in registry_client.get_subjects()
