"""The embedded registry through confluent-kafka's own SchemaRegistryClient and Avro
serdes, as applications use it (client-driven cases of reference/schema-registry.md)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.broker import BrokerProcess
from tests.support.registry import RegistryProcess

V1 = {"type": "record", "name": "User", "namespace": "kcli.test",
      "fields": [{"name": "name", "type": "string"}]}
WITH_DEFAULT = {**V1, "fields": [*V1["fields"],
                                 {"name": "age", "type": "int", "default": 0}]}
NO_DEFAULT = {**V1, "fields": [*V1["fields"], {"name": "age", "type": "int"}]}


def avro(doc: object, indent: int | None = None) -> Schema:
    return Schema(json.dumps(doc, indent=indent), "AVRO")


@pytest.fixture
def client(registry_clients: Callable[[str], SchemaRegistryClient],
           schema_registry: str) -> SchemaRegistryClient:
    return registry_clients(schema_registry)


@pytest.fixture
def subject() -> str:
    return f"s-{uuid.uuid4().hex[:12]}-value"


def error_of(call: Any) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value


def http(url: str, method: str = "GET", body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_the_serializer_registers_and_frames(
        client: SchemaRegistryClient, registry_clients: Callable[[str], SchemaRegistryClient],
        schema_registry: str, subject: str, topic_name: str) -> None:
    serializer = AvroSerializer(client, json.dumps(V1),
                                conf={"subject.name.strategy": lambda ctx, name: subject})
    framed = serializer({"name": "ada"}, SerializationContext(topic_name, MessageField.VALUE))
    assert framed is not None
    schema_id = client.get_latest_version(subject).schema_id
    assert framed[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    # a cold deserializer (its own client, empty caches) reads it back by id
    cold = AvroDeserializer(registry_clients(schema_registry))
    assert cold(framed, SerializationContext(topic_name, MessageField.VALUE)) == {"name": "ada"}


def test_same_schema_same_id_across_subjects_and_whitespace(
        client: SchemaRegistryClient, subject: str) -> None:
    first = client.register_schema(subject, avro(V1))
    assert client.register_schema(subject, avro(V1, indent=4)) == first  # whitespace only
    assert client.get_versions(subject) == [1]  # no new version
    other = subject.replace("-value", "-key")
    assert client.register_schema(other, avro(V1)) == first
    assert client.get_version(other, 1).schema_id == first
    found = client.lookup_schema(subject, avro(V1, indent=2))
    assert (found.version, found.schema_id) == (1, first)


def test_evolution_follows_the_compatibility_level(client: SchemaRegistryClient,
                                                   subject: str) -> None:
    client.register_schema(subject, avro(V1))
    incompatible = error_of(lambda: client.register_schema(subject, avro(NO_DEFAULT)))
    assert (incompatible.http_status_code, incompatible.error_code) == (409, 40901)
    assert client.test_compatibility(subject, avro(WITH_DEFAULT)) is True
    second = client.register_schema(subject, avro(WITH_DEFAULT))
    assert client.get_latest_version(subject).version == 2
    # FORWARD: the old schema must read the new one; dropping a field without a
    # default breaks that, adding one with no default does not
    client.set_compatibility(subject, "FORWARD")
    assert client.register_schema(subject, avro({**WITH_DEFAULT, "fields": [
        *WITH_DEFAULT["fields"], {"name": "email", "type": "string"}]})) != second
    dropped = error_of(lambda: client.register_schema(subject, avro({**V1, "fields": []})))
    assert dropped.error_code == 40901
    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, avro({**V1, "fields": []}))
    assert client.get_versions(subject) == [1, 2, 3, 4]


def test_transitive_levels_check_every_version(client: SchemaRegistryClient,
                                               subject: str, schema_registry: str) -> None:
    client.set_compatibility(subject, "BACKWARD")
    client.register_schema(subject, avro(V1))
    client.register_schema(subject, avro(WITH_DEFAULT))
    # v3 drops the default: v3 reads v2 data (age present), not v1 data
    assert client.test_compatibility(subject, avro(NO_DEFAULT)) is True
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    assert client.test_compatibility_all_versions(subject, avro(NO_DEFAULT)) is False
    assert error_of(lambda: client.register_schema(subject, avro(NO_DEFAULT))).error_code \
        == 40901
    status, body = http(f"{schema_registry}/compatibility/subjects/"
                        f"{subject}/versions/1?verbose=true", "POST",
                        {"schema": json.dumps(NO_DEFAULT)})
    assert status == 200
    assert body["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in body["messages"])


def test_config_and_mode(client: SchemaRegistryClient, subject: str,
                         schema_registry: str) -> None:
    status, body = http(f"{schema_registry}/config/{subject}")
    assert (status, body["error_code"]) == (404, 40408)
    status, body = http(f"{schema_registry}/config/{subject}?defaultToGlobal=true")
    assert (status, body) == (200, {"compatibilityLevel": "BACKWARD"})
    status, body = http(f"{schema_registry}/config/{subject}", "PUT", {"compatibility": "fully"})
    assert (status, body["error_code"]) == (422, 42203)
    assert http(f"{schema_registry}/config/{subject}", "PUT",
                {"compatibility": "full"}) == (200, {"compatibility": "FULL"})
    assert client.get_compatibility(subject) == "FULL"
    client.register_schema(subject, avro(V1))
    assert http(f"{schema_registry}/mode/{subject}", "PUT", {"mode": "READONLY"}) == (
        200, {"mode": "READONLY"})
    refused = error_of(lambda: client.register_schema(subject, avro(WITH_DEFAULT)))
    assert refused.error_code == 42205
    status, body = http(f"{schema_registry}/mode/{subject}", "PUT", {"mode": "IMPORT"})
    assert (status, body["error_code"]) == (422, 42205)  # it has schemas
    assert http(f"{schema_registry}/schemas/types")[1] == ["JSON", "PROTOBUF", "AVRO"]


def test_soft_and_permanent_deletes(client: SchemaRegistryClient, subject: str,
                                    schema_registry: str) -> None:
    first = client.register_schema(subject, avro(V1))
    client.register_schema(subject, avro(WITH_DEFAULT))
    early = error_of(lambda: client.delete_version(subject, 1, permanent=True))
    assert (early.http_status_code, early.error_code) == (404, 40407)
    assert client.delete_version(subject, 1) == 1
    assert error_of(lambda: client.delete_version(subject, 1)).error_code == 40406
    assert client.get_versions(subject) == [2]
    assert http(f"{schema_registry}/subjects/{subject}/versions?deleted=true")[1] == [1, 2]
    assert client.get_schema(first).schema_str  # ids outlive a soft delete
    assert client.delete_version(subject, 1, permanent=True) == 1
    assert error_of(lambda: client.delete_subject(subject, permanent=True)).error_code == 40405
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert subject in http(f"{schema_registry}/subjects?deleted=true")[1]
    assert error_of(lambda: client.delete_subject(subject)).error_code == 40404
    assert client.delete_subject(subject, permanent=True) == [2]
    assert error_of(lambda: client.get_versions(subject)).error_code == 40401
    # a new version after deletes never reuses a number or an id
    again = client.register_schema(subject, avro(NO_DEFAULT))
    assert again > first


def test_references(client: SchemaRegistryClient, subject: str) -> None:
    address = {"type": "record", "name": "Address", "namespace": "kcli.test",
               "fields": [{"name": "city", "type": "string"}]}
    address_subject = subject.replace("-value", "-address")
    client.register_schema(address_subject, avro(address))
    person = {"type": "record", "name": "Person", "namespace": "kcli.test",
              "fields": [{"name": "home", "type": "kcli.test.Address"}]}
    refs = [SchemaReference("kcli.test.Address", address_subject, 1)]
    schema_id = client.register_schema(subject, Schema(json.dumps(person), "AVRO", refs))
    got = client.get_schema(schema_id)
    assert [(r.name, r.subject, r.version) for r in got.references] == [
        ("kcli.test.Address", address_subject, 1)]
    in_use = error_of(lambda: client.delete_subject(address_subject))
    assert in_use.error_code == 42206
    missing = error_of(lambda: client.register_schema(subject + "x", avro(person)))
    assert (missing.http_status_code, missing.error_code) == (422, 42201)
    serializer = AvroSerializer(client, Schema(json.dumps(person), "AVRO", refs),
                                conf={"auto.register.schemas": False,
                                      "use.latest.version": True,
                                      "subject.name.strategy": lambda c, n: subject})
    context = SerializationContext("t", MessageField.VALUE)
    framed = serializer({"home": {"city": "Oslo"}}, context)
    assert AvroDeserializer(client)(framed, context) == {"home": {"city": "Oslo"}}


@pytest.mark.parametrize(("path", "method", "body", "status", "code"), [
    ("/subjects/{s}/versions", "POST", {"schema": "{not json"}, 422, 42201),
    ("/subjects/{s}/versions", "POST", {"schema": '{"type":"record","name":"R"}'}, 422, 42201),
    ("/subjects/{s}/versions", "POST", {"schema": '"int"', "schemaType": "XML"}, 422, 42201),
    ("/subjects/{s}/versions/0", "GET", None, 422, 42202),
    ("/subjects/{s}/versions/latest", "GET", None, 404, 40401),
    ("/schemas/ids/987654321", "GET", None, 404, 40403),
    ("/subjects/{s}", "POST", {"schema": '"int"'}, 404, 40401),
    ("/no/such/route", "GET", None, 404, 404),
])
def test_bad_requests_get_confluents_codes(schema_registry: str, subject: str, path: str,
                                           method: str, body: object, status: int,
                                           code: int) -> None:
    got_status, got = http(schema_registry + path.format(s=subject), method, body)
    assert (got_status, got["error_code"]) == (status, code), got
    assert got["message"]


def test_latest_is_minus_one_and_unknown_versions(client: SchemaRegistryClient,
                                                  subject: str, schema_registry: str) -> None:
    client.register_schema(subject, avro(V1))
    latest = http(f"{schema_registry}/subjects/{subject}/versions/latest")[1]
    assert http(f"{schema_registry}/subjects/{subject}/versions/-1")[1] == latest
    status, body = http(f"{schema_registry}/subjects/{subject}/versions/7")
    assert (status, body["error_code"]) == (404, 40402)
    with urllib.request.urlopen(f"{schema_registry}/subjects/{subject}/versions/1/schema") as raw:
        assert json.loads(raw.read()) == V1


def test_state_survives_a_restart_with_the_same_ids(
        make_broker: Any, tmp_path: Path,
        registry_clients: Callable[[str], SchemaRegistryClient]) -> None:
    """A registry rebuilt from `_schemas` (a second instance, then after a broker restart)
    answers the same ids, and the next id is one more than the highest."""
    broker: BrokerProcess = make_broker("sr").start()
    first = RegistryProcess(broker.bootstrap, tmp_path / "first.log").start()
    client = registry_clients(first.url)
    ids = [client.register_schema(f"s{i}-value", avro({**V1, "name": f"U{i}"}))
           for i in range(3)]
    client.delete_version("s1-value", 1)
    client.set_compatibility("s2-value", "NONE")
    assert first.stop() == 0
    broker.stop()
    broker.start()
    second = RegistryProcess(broker.bootstrap, tmp_path / "second.log").start()
    try:
        again = registry_clients(second.url)
        assert [again.get_version(f"s{i}-value", 1, deleted=True).schema_id
                for i in range(3)] == ids
        assert again.get_subjects() == ["s0-value", "s2-value"]
        assert again.get_compatibility("s2-value") == "NONE"
        assert again.register_schema("s3-value", avro({**V1, "name": "U3"})) == max(ids) + 1
    finally:
        second.stop()


# (level, old, compatible new, incompatible new); NONE accepts a type change
EMAIL_NO_DEFAULT = {**V1, "fields": [*V1["fields"], {"name": "email", "type": "string"}]}
LEVEL_CASES = [
    ("BACKWARD", V1, WITH_DEFAULT, NO_DEFAULT),
    ("BACKWARD_TRANSITIVE", V1, WITH_DEFAULT, NO_DEFAULT),
    ("FORWARD", V1, EMAIL_NO_DEFAULT, {**V1, "fields": [{"name": "other", "type": "int"}]}),
    ("FORWARD_TRANSITIVE", V1, EMAIL_NO_DEFAULT,
     {**V1, "fields": [{"name": "other", "type": "int"}]}),
    ("FULL", V1, WITH_DEFAULT, NO_DEFAULT),
    ("FULL_TRANSITIVE", V1, WITH_DEFAULT, EMAIL_NO_DEFAULT),
    ("NONE", V1, {**V1, "fields": [{"name": "name", "type": "int"}]}, None),
]


@pytest.mark.parametrize(("level", "old", "good", "bad"), LEVEL_CASES,
                         ids=[case[0] for case in LEVEL_CASES])
def test_each_level_through_the_client(client: SchemaRegistryClient, subject: str, level: str,
                                       old: dict[str, Any], good: dict[str, Any],
                                       bad: dict[str, Any] | None) -> None:
    client.set_compatibility(subject, level)
    client.register_schema(subject, avro(old))
    if bad is not None:
        refused = error_of(lambda: client.register_schema(subject, avro(bad)))
        assert (refused.http_status_code, refused.error_code) == (409, 40901)
        assert client.test_compatibility(subject, avro(bad)) is False
    assert client.test_compatibility(subject, avro(good)) is True
    client.register_schema(subject, avro(good))
    assert client.get_versions(subject) == [1, 2]


def test_json_schema_and_protobuf_are_stored_and_served(client: SchemaRegistryClient,
                                                        subject: str) -> None:
    json_schema = Schema(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}),
                         "JSON")
    proto = Schema('syntax = "proto3";\nmessage Thing { string name = 1; }\n', "PROTOBUF")
    json_id = client.register_schema(subject, json_schema)
    proto_subject = subject.replace("-value", "-proto")
    proto_id = client.register_schema(proto_subject, proto)
    assert client.get_schema(json_id).schema_type == "JSON"
    got = client.get_schema(proto_id)
    assert (got.schema_type, "message Thing" in (got.schema_str or "")) == ("PROTOBUF", True)
    # a whitespace-only change of the .proto is the same schema
    again = Schema('syntax = "proto3";  message Thing { string name = 1; }', "PROTOBUF")
    assert client.register_schema(proto_subject, again) == proto_id
    bad_json = error_of(lambda: client.register_schema(subject, Schema("[1, 2", "JSON")))
    assert bad_json.error_code == 42201
