"""Registry-framed records for produce and consume: confluent-kafka's Avro serializer
writes them, and its SchemaRegistryClient fetches each schema once per id.

Reading uses fastavro's schemaless reader on the parsed writer schema directly:
measured (bench/registry_decode.py), confluent-kafka's AvroDeserializer spent 80% of
the decode time per record outside fastavro (it walks the schema for data-contract
tags on every record), which held `consume -f avro` to 27% of the raw rate. Schemas
with references still go through AvroDeserializer, which resolves them.

A framed key or value is a magic byte 0, the schema id (4 bytes, big-endian), then the
body: Avro binary, or UTF-8 JSON for JSON Schema. Protobuf bodies are not decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import orjson
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kcli.client.schemas import RegistryClient, StoredSchema, framed_id
from kcli.errors import BadInput, NotFound, OperationFailed
from kcli.formats.avro import AvroCodec, json_default, without_logical_types


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
        # registered now, before any input is read: an incompatible schema fails at
        # once, and the serializer finds the id in the client's cache
        registry.register(subject, StoredSchema(schema_text))
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
        self._readers: dict[int, Callable[[bytes], Any] | None] = {}
        self._avro = AvroDeserializer(registry.client) if registry is not None else None
        self._contexts = {field: SerializationContext(topic, field)
                          for field in (MessageField.KEY, MessageField.VALUE)}

    def _type_of(self, schema_id: int) -> str | None:
        if schema_id not in self._types:
            assert self.registry is not None
            try:
                schema = self.registry.schema(schema_id)
            except NotFound:
                return None
            self._types[schema_id] = schema.schema_type
            self._readers[schema_id] = _fast_reader(schema) \
                if schema.schema_type == "AVRO" and not schema.references else None
        return self._types[schema_id]

    def decode(self, data: bytes | None, key: bool = False) -> bytes | None:
        """The JSON text of a framed key or value; keys that are not framed stay as
        they are. BadInput (OperationFailed for a type kcli does not decode) says why a
        value cannot be decoded; the caller names the record."""
        if data is None:
            return None
        if len(data) > 4 and data[0] == 0:  # the hot path: a known, self-contained schema
            read = self._readers.get(int.from_bytes(data[1:5], "big"))
            if read is not None:
                try:
                    return orjson.dumps(read(data), default=json_default)
                except Exception as error:  # truncated or foreign bytes: EOFError, ...
                    raise BadInput(f"not Avro for schema id {framed_id(data)}: "
                                   f"{type(error).__name__}") from None
        return self._decode_slowly(data, key)

    def decode_values(self, values: list[bytes | None]) -> list[bytes] | None:
        """The JSON text of every value of a batch, when each is framed with a schema
        already seen (the steady state of a topic); None sends the caller to
        :meth:`decode`, record by record, which also explains failures."""
        readers = self._readers
        dumps = orjson.dumps
        out: list[bytes] = []
        append = out.append
        for data in values:
            if data is None or len(data) < 5 or data[0] != 0:
                return None
            read = readers.get(int.from_bytes(data[1:5], "big"))
            if read is None:
                return None
            try:
                append(dumps(read(data), default=json_default))
            except Exception:
                return None
        return out

    def _decode_slowly(self, data: bytes, key: bool) -> bytes | None:
        schema_id = framed_id(data) if self.registry is not None else None
        kind = self._type_of(schema_id) if schema_id is not None else None
        if kind is None:
            if key:
                return data
            if self.bare is not None:
                return self.bare.decode(data)
            if schema_id is None:
                raise BadInput("not a schema-registry record (no magic byte 0 and schema "
                               "id); give --schema FILE.avsc for bare Avro")
            raise BadInput(f"schema id {schema_id} is not in the registry at "
                           f"{self.registry.url if self.registry else '?'}")
        if kind == "JSON":
            try:
                return orjson.dumps(orjson.loads(data[5:]))
            except orjson.JSONDecodeError:
                raise BadInput("the JSON Schema body is not JSON") from None
        if kind != "AVRO":
            raise OperationFailed(f"schema id {schema_id} is {kind}; kcli decodes Avro and "
                                  "JSON Schema records (use --on-error raw)")
        assert self._avro is not None
        assert schema_id is not None
        if self._readers.get(schema_id) is not None:
            return self.decode(data, key)  # first record of a new id: now cached
        field = MessageField.KEY if key else MessageField.VALUE
        try:
            datum: Any = self._avro(data, self._contexts[field])
        except Exception as error:  # truncated or foreign bytes: EOFError, ValueError, ...
            raise BadInput(f"not Avro for schema id {schema_id}: "
                           f"{type(error).__name__}") from None
        return orjson.dumps(datum, default=json_default)

    def close(self) -> None:
        """Close the registry client's connections."""
        if self.registry is not None:
            self.registry.close()


def _fast_reader(schema: StoredSchema) -> Callable[[bytes], Any] | None:
    """A reader of framed bodies for a self-contained Avro schema (None: let
    AvroDeserializer handle it)."""
    from fastavro import parse_schema, schemaless_reader

    try:
        parsed = parse_schema(without_logical_types(orjson.loads(schema.text)))
    except Exception:  # fastavro raises several unrelated types; AvroDeserializer reports
        return None

    def read(data: bytes) -> Any:
        buffer = BytesIO(data[5:])
        datum = schemaless_reader(buffer, parsed, None)
        if buffer.tell() != len(data) - 5:
            raise ValueError(f"{len(data) - 5 - buffer.tell()} bytes left over")
        return datum

    return read
