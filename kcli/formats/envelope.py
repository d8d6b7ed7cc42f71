"""The record envelope: one JSON object per line, the same for consume and produce.

    {"topic": "t", "partition": 0, "offset": 42, "timestamp": 1700000000000,
     "timestamp_type": "CreateTime", "key": "k", "value": "v",
     "headers": [["h", "1"], ["h", "2"], ["empty", ""], ["none", null]]}

- ``key``/``value``: a string (the bytes as UTF-8), ``null`` for a null key/value,
  ``""`` for empty bytes. Bytes that are not valid UTF-8 are written base64 with
  ``"key_encoding": "base64"`` / ``"value_encoding": "base64"`` next to them.
- ``headers``: an ordered list of ``[key, value]`` pairs; duplicates and null values
  kept. A header value that is not valid UTF-8 is ``[key, "<base64>", "base64"]``.
- ``timestamp``: milliseconds since the epoch; ``timestamp_type`` is ``CreateTime``,
  ``LogAppendTime`` or null.

``produce -f json`` reads the same objects back: ``topic``, ``offset`` and
``timestamp_type`` are ignored, ``partition`` and ``timestamp`` are honoured. For
convenience it also accepts headers as an object (``{"k": "v"}``), a non-string JSON
``key``/``value`` (stored as its compact JSON text) and an ISO-8601 ``timestamp``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kcli.errors import BadInput

TIMESTAMP_TYPES: dict[int, str | None] = {0: None, 1: "CreateTime", 2: "LogAppendTime"}
ENCODINGS = ("utf-8", "base64")
_IGNORED = frozenset({"topic", "offset", "timestamp_type"})
_KNOWN = frozenset({"key", "value", "headers", "partition", "timestamp", "key_encoding",
                    "value_encoding"}) | _IGNORED

Header = tuple[str, bytes | None]


@dataclass(slots=True)
class Record:
    """One record as the CLI sees it (both directions)."""

    key: bytes | None = None
    value: bytes | None = None
    headers: list[Header] = field(default_factory=list)
    partition: int | None = None
    timestamp: int | None = None
    topic: str | None = None
    offset: int | None = None
    timestamp_type: str | None = None


def _text(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def to_dict(record: Record) -> dict[str, Any]:
    """The envelope object of a record, fields in their documented order."""
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestamp_type": record.timestamp_type,
    }
    for name, data in (("key", record.key), ("value", record.value)):
        if data is None:
            out[name] = None
        else:
            text, encoding = _text(data)
            out[name] = text
            if encoding:
                out[f"{name}_encoding"] = encoding
    headers: list[list[str | None]] = []
    for hkey, hvalue in record.headers:
        if hvalue is None:
            headers.append([hkey, None])
        else:
            text, encoding = _text(hvalue)
            headers.append([hkey, text, encoding] if encoding else [hkey, text])
    out["headers"] = headers
    return out


def dumps(record: Record) -> bytes:
    """One envelope line, without the newline."""
    return orjson.dumps(to_dict(record))


def from_message(message: Any) -> Record:
    """A Record from a confluent-kafka Message."""
    ts_type, ts = message.timestamp()
    return Record(
        key=message.key(), value=message.value(), headers=list(message.headers() or ()),
        partition=message.partition(), offset=message.offset(),
        timestamp=ts if ts_type else None, timestamp_type=TIMESTAMP_TYPES.get(ts_type),
        topic=message.topic(),
    )


def dumps_message(message: Any) -> bytes:
    """One envelope line for a confluent-kafka Message, without the newline."""
    return orjson.dumps(to_dict(from_message(message)))


# ------------------------------------------------------------------------------ reading


def _where(lineno: int | None) -> str:
    return f"line {lineno}: " if lineno is not None else ""


def _decode(value: Any, encoding: Any, name: str, where: str) -> bytes | None:
    if encoding is not None and encoding not in ENCODINGS:
        raise BadInput(f"{where}{name}_encoding must be one of {', '.join(ENCODINGS)}, "
                       f"not {encoding!r}")
    if value is None:
        if encoding is not None:
            raise BadInput(f"{where}{name}_encoding given for a null {name}")
        return None
    if encoding == "base64":
        if not isinstance(value, str):
            raise BadInput(f"{where}base64 {name} must be a string")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise BadInput(f"{where}{name} is not valid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    return orjson.dumps(value)


def _headers(raw: Any, where: str) -> list[Header]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        items: Sequence[Any] = [[k, v] for k, v in raw.items()]
    elif isinstance(raw, list):
        items = raw
    else:
        raise BadInput(f"{where}headers must be a list of [key, value] pairs")
    headers: list[Header] = []
    for item in items:
        if not isinstance(item, list) or len(item) not in (2, 3) or not isinstance(item[0], str):
            raise BadInput(f"{where}each header must be [key, value] or "
                           f"[key, value, encoding], got {orjson.dumps(item).decode()}")
        encoding = item[2] if len(item) == 3 else None
        value = item[1]
        if value is not None and not isinstance(value, str):
            raise BadInput(f"{where}header {item[0]!r}: value must be a string or null")
        headers.append((item[0], _decode(value, encoding, "header", where)))
    return headers


def _timestamp(raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BadInput(f"{where}timestamp must be milliseconds or an ISO-8601 time")
    if isinstance(raw, int):
        if raw < 0:
            raise BadInput(f"{where}timestamp must not be negative")
        return raw
    if isinstance(raw, str):
        from kcli.formats.times import parse_time_ms

        try:
            return parse_time_ms(raw)
        except ValueError:
            pass
    raise BadInput(f"{where}timestamp must be milliseconds or an ISO-8601 time, not {raw!r}")


def loads(line: bytes | str, lineno: int | None = None) -> Record:
    """Parse one envelope line; raises BadInput naming the line on any problem."""
    where = _where(lineno)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadInput(f"{where}not valid JSON: {error.msg}") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{where}expected a JSON object with key/value/headers")
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        raise BadInput(f"{where}unknown field {unknown[0]!r} (expected "
                       f"key, value, headers, partition, timestamp)")
    partition = obj.get("partition")
    if partition is not None and (not isinstance(partition, int) or isinstance(partition, bool)
                                  or partition < 0):
        raise BadInput(f"{where}partition must be a non-negative integer")
    return Record(
        key=_decode(obj.get("key"), obj.get("key_encoding"), "key", where),
        value=_decode(obj.get("value"), obj.get("value_encoding"), "value", where),
        headers=_headers(obj.get("headers"), where),
        partition=partition,
        timestamp=_timestamp(obj.get("timestamp"), where),
    )
