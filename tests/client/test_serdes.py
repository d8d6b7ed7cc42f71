"""Registry-framed decoding: one schema request per id, whatever the record count, and
every decode path (batch, record by record, bare fallback) gives the same JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kcli.client.schemas import RegistryClient
from kcli.client.serdes import RegistryDecoder
from kcli.errors import BadInput
from kcli.formats.avro import AvroCodec

EVENT = {"type": "record", "name": "Event", "fields": [
    {"name": "n", "type": "int"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}


@pytest.fixture
def registry(schema_registry: str) -> Iterator[RegistryClient]:
    client = RegistryClient({"url": schema_registry})
    yield client
    client.close()


def framed(registry: RegistryClient, subject_topic: str, count: int) -> list[bytes]:
    serialize = AvroSerializer(registry.client, json.dumps(EVENT))
    context = SerializationContext(subject_topic, MessageField.VALUE)
    out = [serialize({"n": i, "at": 1_700_000_000_000 + i}, context) for i in range(count)]
    return [value for value in out if value is not None]


def test_one_request_per_id(registry: RegistryClient, topic_name: str) -> None:
    values = framed(registry, topic_name, 500)
    reader = RegistryClient({"url": registry.url})
    calls: list[Any] = []
    fetch = reader.client._rest_client.get

    def counted(url: str, query: Any = None) -> Any:
        calls.append(url)
        return fetch(url, query)

    reader.client._rest_client.get = counted  # type: ignore[method-assign]
    decoder = RegistryDecoder(reader, topic_name)
    try:
        batched = decoder.decode_lines(values)  # the first fetches the schema
        one_by_one = [decoder.decode(v) for v in values]
    finally:
        reader.close()
    assert batched == b"".join(line + b"\n" for line in one_by_one if line is not None)
    assert orjson.loads(one_by_one[3]) == {"n": 3, "at": 1_700_000_000_003}  # Avro's JSON
    assert len([c for c in calls if "schemas/ids" in c]) == 1


def test_bare_fallback_and_errors(registry: RegistryClient, topic_name: str) -> None:
    bare = AvroCodec(EVENT)
    body = bare.encode(b'{"n": 7, "at": 5}')
    decoder = RegistryDecoder(registry, topic_name, bare)
    assert decoder.decode(body) == b'{"n":7,"at":5}'  # not framed: the --schema path
    strict = RegistryDecoder(registry, topic_name)
    with pytest.raises(BadInput, match="not a schema-registry record"):
        strict.decode(body)
    value = framed(registry, topic_name, 1)[0]
    with pytest.raises(BadInput, match=r"not Avro for schema id \d+: the body ends early"):
        strict.decode(value[:-1])
    with pytest.raises(BadInput, match=r"not Avro for schema id \d+: 2 bytes left over"):
        strict.decode(value + b"\0\0")
    assert strict.decode(b"plain key", key=True) == b"plain key"
