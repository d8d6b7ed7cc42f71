"""Registry-framed records for produce and consume: confluent-kafka's Avro serializer
writes them; reading fetches each schema once per id (schema_fetch.py).

Reading does not use confluent-kafka's AvroDeserializer, measured
(bench/registry_decode.py): it spent 80% of the decode time per record outside
fastavro (it walks the schema for data-contract tags on every record), which held
`consume -f avro` to 27% of the raw rate. Each writer schema is compiled into a
decoder instead (kcli/formats/avro_compiled.py), or read with fastavro's schemaless
reader where the compiler declines. Schemas with references still go through
AvroDeserializer, which resolves them.

A framed key or value is a magic byte 0, the schema id (4 bytes, big-endian), then the
body: Avro binary, or UTF-8 JSON for JSON Schema. Protobuf bodies are not decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

import orjson
from confluent_kafka.serialization import MessageField, SerializationContext

from kcli.client.schema_fetch import SchemaFetcher
from kcli.client.schemas import RegistryClient, StoredSchema, framed_id
from kcli.errors import BadInput, NotFound, OperationFailed
from kcli.formats.avro import AvroCodec, json_default, without_logical_types
from kcli.formats.avro_compiled import Unsupported, compile_reader


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
        from confluent_kafka.schema_registry.avro import AvroSerializer

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

    def __init__(self, registry: RegistryClient | SchemaFetcher | None, topic: str,
                 bare: AvroCodec | None = None) -> None:
        self.registry = registry
        self.bare = bare
        self._types: dict[int, str] = {}
        self._readers: dict[int, Callable[[bytes, int], Any] | None] = {}
        self._avro: Callable[[bytes, SerializationContext], Any] | None = None
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
                    return orjson.dumps(read(data, 5), default=json_default)
                except Exception as error:  # truncated or foreign bytes: IndexError, ...
                    raise BadInput(f"not Avro for schema id {framed_id(data)}: "
                                   f"{_why(error)}") from None
        return self._decode_slowly(data, key)

    def decode_lines(self, values: list[bytes | None]) -> bytes | None:
        """The JSON text of every value of a batch, one line each, when each is framed
        with a self-contained Avro schema the registry has (the steady state of a
        topic); None sends the caller to :meth:`decode`, record by record, which also
        explains failures."""
        chunks = []
        # 512 at a time: measured, decoding 10,000 values into one list before joining
        # cost half as much again per value as chunks of 512 (their texts stay in cache)
        for start in range(0, len(values), 512):
            texts = self._decode_chunk(values[start:start + 512])
            if texts is None:
                return None
            texts.append(b"")
            chunks.append(b"\n".join(texts))
        return b"".join(chunks)

    def _decode_chunk(self, values: list[bytes | None]) -> list[bytes] | None:
        readers = self._readers
        dumps = orjson.dumps
        out: list[bytes] = []
        append = out.append
        last_head = b""
        read: Callable[[bytes, int], Any] | None = None
        try:
            for data in values:
                if data is None:
                    return None
                head = data[:5]
                if head != last_head:  # most batches have one schema: look it up once
                    if len(head) < 5 or head[0] != 0:
                        return None
                    schema_id = int.from_bytes(head[1:], "big")
                    if schema_id not in self._types and self.registry is not None:
                        self._type_of(schema_id)  # a new id: fetch it once, here
                    read = readers.get(schema_id)
                    if read is None:
                        return None
                    last_head = head
                # read is set: the first value always takes the branch above
                append(dumps(read(data, 5), default=json_default))  # type: ignore[misc]
        except Exception:  # truncated or foreign: decode() says so, record by record
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
        assert schema_id is not None
        if self._readers.get(schema_id) is not None:
            return self.decode(data, key)  # first record of a new id: now cached
        if self._avro is None:  # references: AvroDeserializer resolves them
            from confluent_kafka.schema_registry.avro import AvroDeserializer

            assert self.registry is not None
            self._avro = AvroDeserializer(self.registry.client)
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


def _why(error: Exception) -> str:
    """A decoder's exception as a reason: the compiled reader's ValueErrors say it."""
    if isinstance(error, IndexError | struct.error | EOFError):
        return "the body ends early"
    if isinstance(error, ValueError) and str(error):
        return str(error)
    return type(error).__name__


def _fast_reader(schema: StoredSchema) -> Callable[[bytes, int], Any] | None:
    """A reader of framed bodies for a self-contained Avro schema (None: let
    AvroDeserializer handle it): compiled for the schema, or fastavro's where the
    compiler declines."""
    from fastavro import parse_schema, schemaless_reader

    try:
        parsed = parse_schema(without_logical_types(orjson.loads(schema.text)))
    except Exception:  # fastavro raises several unrelated types; AvroDeserializer reports
        return None
    try:
        compiled = compile_reader(parsed)
    except Unsupported:
        pass
    else:
        return compiled

    def read(data: bytes, start: int) -> Any:
        buffer = BytesIO(data[start:])
        datum = schemaless_reader(buffer, parsed, None)
        if buffer.tell() != len(data) - start:
            raise ValueError(f"{len(data) - start - buffer.tell()} bytes left over")
        return datum

    return read
