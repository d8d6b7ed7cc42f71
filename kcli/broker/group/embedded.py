"""The consumer protocol embedded in classic groups' JoinGroup and SyncGroup: a member's
subscription and its assignment (Kafka's ConsumerProtocolSubscription and
ConsumerProtocolAssignment, v0-v3), each an int16 version and a body.

The coordinator reads them only to move groups between the classic and the consumer
protocol (KIP-848), and writes assignments for classic members of consumer groups. A
client sends these bytes, so they are bounds-checked before kio decodes them, and a
version above 3 is read as 3 (later versions only append fields).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.schema.consumer_protocol_assignment.v0.data import (
    ConsumerProtocolAssignment,
    TopicPartition,
)
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError
from kio.static.primitive import i32

from kcli.broker.protocol.bounds import OutOfBounds, check_body

_VERSION = struct.Struct(">h")
HIGHEST_VERSION = 3


class EmbeddedFormatError(ValueError):
    """Bytes that are not a consumer protocol subscription or assignment."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a classic consumer protocol member subscribes to and says it owns."""

    topics: tuple[str, ...]
    owned: dict[str, frozenset[int]]
    rack_id: str | None = None


@cache
def _subscription_class(version: int) -> Any:
    module = __import__(f"kio.schema.consumer_protocol_subscription.v{version}.data",
                        fromlist=["ConsumerProtocolSubscription"])
    return module.ConsumerProtocolSubscription


def _read(data: bytes, cls_for: Any, what: str) -> tuple[int, Any]:
    if len(data) < 2:
        raise EmbeddedFormatError(f"{what} shorter than its version")
    (version,) = _VERSION.unpack_from(data, 0)
    if version < 0:
        raise EmbeddedFormatError(f"{what} has version {version}")
    cls = cls_for(min(version, HIGHEST_VERSION))
    try:
        check_body(cls, data, 2)
        value, _size = entity_reader(cls)(data, 2)
    except (OutOfBounds, SerialError, ValueError, TypeError, OverflowError, IndexError) as error:
        raise EmbeddedFormatError(f"malformed {what}: {error}") from None
    return version, value


def parse_subscription(data: bytes) -> Subscription:
    """A member's subscription from its JoinGroup protocol metadata."""
    version, value = _read(data, _subscription_class, "subscription")
    owned: dict[str, frozenset[int]] = {}
    for tp in getattr(value, "owned_partitions", None) or ():
        owned[tp.topic] = owned.get(tp.topic, frozenset()) | frozenset(int(p)
                                                                       for p in tp.partitions)
    return Subscription(tuple(value.topics), owned,
                        getattr(value, "rack_id", None) if version >= 3 else None)


def subscription_version(data: bytes) -> int:
    """The version a member speaks, for the assignment written back to it (0-3)."""
    if len(data) < 2:
        return 0
    return max(0, min(_VERSION.unpack_from(data, 0)[0], HIGHEST_VERSION))


def parse_assignment(data: bytes) -> dict[str, frozenset[int]]:
    """A classic member's assignment as its leader gave it (empty bytes: nothing)."""
    if not data:
        return {}
    _version, value = _read(data, lambda _v: ConsumerProtocolAssignment, "assignment")
    assigned: dict[str, frozenset[int]] = {}
    for tp in value.assigned_partitions:
        assigned[tp.topic] = assigned.get(tp.topic, frozenset()) | frozenset(
            int(p) for p in tp.partitions)
    return assigned


def encode_assignment(assignment: Mapping[str, frozenset[int]], version: int) -> bytes:
    """An assignment as SyncGroup carries it to a classic member (same body in v0-v3)."""
    out = io.BytesIO()
    out.write(_VERSION.pack(version))
    entity_writer(ConsumerProtocolAssignment)(out, ConsumerProtocolAssignment(
        assigned_partitions=tuple(
            TopicPartition(topic=TopicName(topic), partitions=tuple(i32(p) for p in sorted(ps)))
            for topic, ps in sorted(assignment.items())),
        user_data=None))
    return out.getvalue()
