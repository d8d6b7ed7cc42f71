"""Registry-framed records for produce and consume, through confluent-kafka's Avro
serializer and deserializer (fastavro underneath, one schema fetch per id).

A framed key or value is a magic byte 0, the schema id (4 bytes, big-endian), then the
body: Avro binary, or UTF-8 JSON for JSON Schema. Protobuf bodies are not decoded.
"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kcli.client.schemas import RegistryClient, StoredSchema, framed_id
from kcli.errors import BadInput, NotFound, OperationFailed
from kcli.formats.avro import AvroCodec, json_default


class RegistryEncoder:
    """JSON text -> registry-framed Avro for one topic and subject: the schema from a
    file (registered, or found, under the subject) or the subject's latest version."""

    def __init__(self, registry: RegistryClient, topic: str, subject: str,
                 schema_text: str | None, source: str) -> None:
        if schema_text is None:
            latest = registry.version(subject)
            if latest["type"] != "AVRO":
                raise BadInput(f"subject {subject} holds {latest['type']} schemas, not Avro")
            schema_text, source = latest["schema"], f"{subject} version {latest['version']}"
        try:
            parsed = orjson.loads(schema_text)
        except orjson.JSONDecodeError as error:
            raise BadInput(f"{source} is not valid JSON: {error.msg}") from None
        self.codec = AvroCodec(parsed, source)  # checks records with readable errors
        self.schema_id = registry.register(subject, StoredSchema(schema_text))
        self._serialize = AvroSerializer(
            registry.client, schema_text,
            conf={"auto.register.schemas": True, "normalize.schemas": False,
                  "subject.name.strategy": lambda _ctx, _name: subject})
        self._context = SerializationContext(topic, MessageField.VALUE)
        self.registry = registry

    def encode(self, text: bytes | str, where: str = "") -> bytes:
        """One JSON value -> framed Avro; BadInput says what does not match."""
        datum = self.codec.datum(text, where)
        framed = self.registry.call("serializing", lambda: self._serialize(datum, self._context))
        assert framed is not None
        return framed


class RegistryDecoder:
    """Framed keys and values -> JSON text, by their schema id. With a local schema
    (``--schema``), values that are not framed, or whose id the registry does not
    know, are read as bare Avro bodies with it."""

    def __init__(self, registry: RegistryClient | None, topic: str,
                 bare: AvroCodec | None = None) -> None:
        self.registry = registry
        self.bare = bare
        self._types: dict[int, str] = {}
        self._avro = AvroDeserializer(registry.client) if registry is not None else None
        self._contexts = {field: SerializationContext(topic, field)
                          for field in (MessageField.KEY, MessageField.VALUE)}

    def _type_of(self, schema_id: int) -> str | None:
        if schema_id not in self._types:
            assert self.registry is not None
            try:
                self._types[schema_id] = self.registry.schema(schema_id).schema_type
            except NotFound:
                return None
        return self._types[schema_id]

    def decode(self, data: bytes | None, where: str, key: bool = False) -> bytes | None:
        """The JSON text of a framed key or value; keys that are not framed stay as
        they are. BadInput names the record (partition and offset) when it cannot be
        decoded."""
        if data is None:
            return None
        schema_id = framed_id(data) if self.registry is not None else None
        kind = self._type_of(schema_id) if schema_id is not None else None
        if kind is None:
            if key:
                return data
            if self.bare is not None:
                return self.bare.decode(data, where)
            if schema_id is None:
                raise BadInput(f"{where}: not a schema-registry record (no magic byte 0 "
                               "and schema id); give --schema FILE.avsc for bare Avro")
            raise BadInput(f"{where}: schema id {schema_id} is not in the registry at "
                           f"{self.registry.url if self.registry else '?'}")
        if kind == "JSON":
            try:
                return orjson.dumps(orjson.loads(data[5:]))
            except orjson.JSONDecodeError:
                raise BadInput(f"{where}: the JSON Schema body is not JSON") from None
        if kind != "AVRO":
            raise OperationFailed(f"{where}: schema id {schema_id} is {kind}; kcli decodes "
                                  "Avro and JSON Schema records (use --on-error raw)")
        assert self._avro is not None
        field = MessageField.KEY if key else MessageField.VALUE
        try:
            datum: Any = self._avro(data, self._contexts[field])
        except Exception as error:  # truncated or foreign bytes: EOFError, ValueError, ...
            raise BadInput(f"{where}: not Avro for schema id {schema_id}: "
                           f"{type(error).__name__}") from None
        return orjson.dumps(datum, default=json_default)

    def close(self) -> None:
        """Close the registry client's connections."""
        if self.registry is not None:
            self.registry.close()
