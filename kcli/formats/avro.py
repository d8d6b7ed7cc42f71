"""Avro values for produce and consume: JSON text in, Avro binary out, and back.

The schema comes from a ``.avsc`` file (``--schema``). Values are plain JSON as a
person writes them (``{"name": "a", "age": 3}``; a union takes the bare value), encoded
with fastavro's schemaless writer, i.e. the bare Avro binary body with no framing.
Decoded values print logical types as their underlying type (see
:func:`without_logical_types`).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson

from kcli.errors import BadInput


def json_default(value: Any) -> Any:
    """orjson's fallback for what Avro decodes to: bytes, decimals, uuids, dates."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _schema_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " or ".join(_schema_name(s) for s in schema)
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)


def _explain(errors: Any) -> str:
    if not errors:
        return "does not match"
    first = errors[0]
    datum = repr(getattr(first, "datum", None))
    if len(datum) > 40:
        datum = datum[:37] + "..."
    where = getattr(first, "field", None) or "value"
    return f"{where} is {datum}, expected {_schema_name(getattr(first, 'schema', None))}"


def without_logical_types(schema: Any) -> Any:
    """The schema with its logical types dropped, for reading: values come out as
    their underlying type (timestamp-millis as a long, date as an int), which is Avro's
    JSON form, what Confluent's kafka-avro-console-consumer prints, and what `produce
    -f avro` takes back. It is also a quarter faster to read."""
    if isinstance(schema, list):
        return [without_logical_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    stripped = {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if "fields" in stripped and isinstance(stripped["fields"], list):
        stripped["fields"] = [
            {**f, "type": without_logical_types(f.get("type"))} if isinstance(f, dict) else f
            for f in schema["fields"]]
    if set(stripped) == {"type"} and isinstance(stripped["type"], str):
        return stripped["type"]  # {"type": "long", "logicalType": ...} -> "long"
    return stripped


class AvroCodec:
    """One parsed schema, converting between JSON text and Avro binary."""

    def __init__(self, schema: Any, source: str = "schema") -> None:
        import fastavro

        try:
            self.schema = fastavro.parse_schema(schema)
            self.reading_schema = fastavro.parse_schema(without_logical_types(schema))
        except Exception as error:  # fastavro raises several unrelated types
            raise BadInput(f"{source}: not a valid Avro schema: {error}") from None
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> AvroCodec:
        """Load a ``.avsc`` file; raises BadInput when unreadable or invalid."""
        try:
            schema = orjson.loads(path.read_bytes())
        except OSError as error:
            raise BadInput(f"cannot read schema {path}: {error.strerror or error}") from None
        except orjson.JSONDecodeError as error:
            raise BadInput(f"schema {path} is not valid JSON: {error.msg}") from None
        return cls(schema, str(path))

    def datum(self, text: bytes | str, where: str = "") -> Any:
        """JSON text of one value, checked against the schema; raises BadInput saying
        what is wrong."""
        from fastavro.validation import ValidationError, validate

        prefix = f"{where}: " if where else ""
        try:
            datum = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise BadInput(f"{prefix}not valid JSON: {error.msg}") from None
        try:
            validate(datum, self.schema, raise_errors=True)
        except ValidationError as error:
            raise BadInput(f"{prefix}record does not match the Avro schema: "
                           f"{_explain(error.errors)}") from None
        return datum

    def encode(self, text: bytes | str, where: str = "") -> bytes:
        """JSON text of one value -> Avro binary; raises BadInput saying what is wrong."""
        from fastavro import schemaless_writer

        prefix = f"{where}: " if where else ""
        datum = self.datum(text, where)
        out = BytesIO()
        try:
            schemaless_writer(out, self.schema, datum)
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise BadInput(f"{prefix}record does not match the Avro schema: {error}") from None
        return out.getvalue()

    def decode(self, data: bytes | None, where: str = "") -> bytes | None:
        """Avro binary -> compact JSON text; raises BadInput if the bytes do not decode."""
        if data is None:
            return None
        from fastavro import schemaless_reader

        buffer = BytesIO(data)
        try:
            datum = schemaless_reader(buffer, self.reading_schema, None)
        except Exception as error:  # truncated or foreign bytes: EOFError, ValueError, ...
            prefix = f"{where}: " if where else ""
            raise BadInput(f"{prefix}value is not Avro for {self.source}: "
                           f"{type(error).__name__}") from None
        if buffer.tell() != len(data):
            prefix = f"{where}: " if where else ""
            raise BadInput(f"{prefix}value is not Avro for {self.source}: "
                           f"{len(data) - buffer.tell()} bytes left over")
        return orjson.dumps(datum, default=json_default)
