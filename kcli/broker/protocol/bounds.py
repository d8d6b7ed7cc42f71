"""Bounds check of request bodies before kio decodes them.

kio's native reader allocates as many elements as an array count claims before it
reads them, so a 20-byte request claiming four billion elements aborts the process.
This module walks a body along the same generated schema without building anything
and refuses it when a count or length needs more bytes than are left (or nests past
any schema's depth). Every array element takes at least one byte, so after this check
no allocation can exceed the frame size, which the framing layer already bounds.

It also refuses a null (length -1) array, string or bytes value in a field the schema
does not declare nullable for that version, as Kafka's generated readers do ("non-nullable
field ... was serialized as null"): kio would decode it as None, and a handler iterating
the field would fail. Nullable fields keep their meaning (Metadata ``topics`` null: all
topics; DescribeConfigs ``configuration_keys`` null: all keys).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from kcli.broker.protocol.framing import Frame

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")

# Skips one value in data[pos:end]; returns the position after it.
Skipper = Callable[[Frame, int, int], int]

_FIXED_SIZES = {
    "int8": 1, "uint8": 1, "bool": 1,
    "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4,
    "int64": 8, "uint64": 8, "float64": 8, "timedelta_i64": 8, "datetime_i64": 8,
    "uuid": 16,
}


class OutOfBounds(ValueError):
    """A count or length in the body needs more bytes than the body has, or a field the
    schema does not allow to be null is."""


def _uvarint(data: Frame, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for shift in (0, 7, 14, 21, 28):
        if pos >= end:
            raise OutOfBounds("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise OutOfBounds("varint longer than 5 bytes")


def _need(pos: int, size: int, end: int) -> int:
    if size < 0 or pos + size > end:
        raise OutOfBounds(f"length {size} at byte {pos} runs past the end ({end})")
    return pos + size


def _fixed(size: int) -> Skipper:
    def skip(data: Frame, pos: int, end: int) -> int:
        return _need(pos, size, end)

    return skip


def _null(name: str, pos: int) -> OutOfBounds:
    return OutOfBounds(f"non-nullable field {name} is null at byte {pos}")


def _sized(flexible: bool, legacy: struct.Struct, name: str, nullable: bool) -> Skipper:
    """A string or bytes value: compact (uvarint n+1, 0 = null) or legacy (-1 = null)."""
    if flexible:
        def skip_compact(data: Frame, pos: int, end: int) -> int:
            n, after = _uvarint(data, pos, end)
            if n == 0:
                if not nullable:
                    raise _null(name, pos)
                return after
            return _need(after, n - 1, end)

        return skip_compact

    def skip_legacy(data: Frame, pos: int, end: int) -> int:
        start = _need(pos, legacy.size, end)
        (n,) = legacy.unpack_from(data, pos)
        if n < -1:
            raise OutOfBounds(f"negative length {n} at byte {pos}")
        if n == -1:
            if not nullable:
                raise _null(name, pos)
            return start
        return _need(start, n, end)

    return skip_legacy


def _array(flexible: bool, element: Skipper, min_size: int, name: str,
           nullable: bool) -> Skipper:
    min_size = max(1, min_size)

    def skip(data: Frame, pos: int, end: int) -> int:
        at = pos
        if flexible:
            n, pos = _uvarint(data, pos, end)
            count = n - 1
        else:
            start = _need(pos, 4, end)
            (count,) = _INT32.unpack_from(data, pos)
            pos = start
            if count < -1:
                raise OutOfBounds(f"negative array count {count}")
        if count == -1 and not nullable:
            raise _null(name, at)
        if count <= 0:
            return pos
        if count * min_size > end - pos:
            raise OutOfBounds(f"array of {count} needs more than the {end - pos} bytes left")
        for _ in range(count):
            pos = element(data, pos, end)
        return pos

    return skip


def _strip_none(hint: Any) -> tuple[Any, bool]:
    """(the type, whether it is nullable) of ``X | None`` or ``X``: kio annotates a field
    (or an array element) that is nullable in its version as ``X | None``."""
    if get_origin(hint) in (UnionType, Union):
        args = [a for a in get_args(hint) if a is not NoneType]
        return args[0], len(args) != len(get_args(hint))
    return hint, False


def _inner_type(hint: Any) -> tuple[Any, bool, bool, bool]:
    """(element or value type, is_array, is_optional, element is_optional) of a field's
    annotation."""
    hint, optional = _strip_none(hint)
    if get_origin(hint) is tuple:
        element, element_optional = _strip_none(get_args(hint)[0])
        return element, True, optional, element_optional
    return hint, False, optional, optional


@cache
def _entity_plan(cls: type) -> tuple[Skipper, int]:
    """A skipper for one entity class, and the fewest bytes it can take."""
    hints = get_type_hints(cls)
    flexible = bool(getattr(cls, "__flexible__", False))
    steps: list[Skipper] = []
    tagged: dict[int, Skipper] = {}
    min_size = 0
    for f in fields(cls):
        inner, is_array, optional, element_optional = _inner_type(hints[f.name])
        kafka_type = f.metadata.get("kafka_type")
        name = f"{cls.__name__}.{f.name}"
        element_min = 1
        if is_dataclass(inner):
            element, element_min = _entity_plan(inner)  # type: ignore[arg-type]
            if optional and not is_array and "tag" not in f.metadata:
                element = _nullable_entity(element)
        elif kafka_type in _FIXED_SIZES:
            element_min = _FIXED_SIZES[kafka_type]
            element = _fixed(element_min)
        elif kafka_type == "string":
            element = _sized(flexible, _INT16, name, element_optional)
        elif kafka_type in ("bytes", "records"):
            element = _sized(flexible, _INT32, name, element_optional)
        else:
            raise TypeError(f"{name}: no bounds rule for {kafka_type!r}")
        skipper = (_array(flexible, element, element_min, name, optional) if is_array
                   else element)
        if "tag" in f.metadata:
            tagged[int(f.metadata["tag"])] = skipper
        else:
            steps.append(skipper)
            min_size += 1 if is_array else element_min
    if flexible:
        steps.append(_tagged_fields(tagged))
        min_size += 1

    def skip_entity(data: Frame, pos: int, end: int) -> int:
        for step in steps:
            pos = step(data, pos, end)
        return pos

    return skip_entity, min_size


def _nullable_entity(entity: Skipper) -> Skipper:
    def skip(data: Frame, pos: int, end: int) -> int:
        start = _need(pos, 1, end)
        return start if data[pos] == 0xFF else entity(data, start, end)

    return skip


def _tagged_fields(known: dict[int, Skipper]) -> Skipper:
    def skip(data: Frame, pos: int, end: int) -> int:
        count, pos = _uvarint(data, pos, end)
        if count > end - pos:
            raise OutOfBounds(f"{count} tagged fields in {end - pos} bytes")
        for _ in range(count):
            tag, pos = _uvarint(data, pos, end)
            size, pos = _uvarint(data, pos, end)
            field_end = _need(pos, size, end)
            inner = known.get(tag)
            if inner is not None:
                inner(data, pos, field_end)  # a known tag's value must fit in its size
            pos = field_end
        return pos

    return skip


def check_body(request_class: type, data: Frame, pos: int) -> None:
    """Raise OutOfBounds unless every count and length in the body fits in ``data``."""
    skip, _min = _entity_plan(request_class)
    skip(data, pos, len(data))
