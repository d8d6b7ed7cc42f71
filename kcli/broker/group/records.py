"""Keys and values of ``__consumer_offsets`` records, in Kafka's own formats.

Written exactly as Kafka's group coordinator writes them, so Kafka tooling (and a Kafka
broker given this log) reads them. Every key and value starts with an int16 version;
the key version also says what the record is:

    key v0/v1  OffsetCommitKey     group string, topic string, partition int32
    key v2     GroupMetadataKey    group string
    key v3     ConsumerGroupMetadataKey  group string (a KIP-848 group and its epoch)
    key v4+    a KIP-848 group's members and assignments, share groups (skipped on load:
               members rejoin with a heartbeat)

Values, big endian, versioned as in Kafka's ``OffsetCommitValue.json`` (v0-4) and
``GroupMetadataValue.json`` (v0-4); version 4 of both is the first flexible version
(compact strings and bytes, tagged fields). A tombstone (null value) deletes the key.
Kafka writes OffsetCommitValue v3 (v1 when the commit carries an expiry time) and
GroupMetadataValue v3; so do we. Every version is read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ConsumerGroupMetadataKey",
    "GroupMetadataKey",
    "GroupMetadataValue",
    "MemberMetadata",
    "OffsetCommitKey",
    "OffsetCommitValue",
    "RecordFormatError",
    "decode_consumer_group_value",
    "decode_group_metadata_value",
    "decode_key",
    "decode_offset_commit_value",
    "encode_consumer_group_key",
    "encode_consumer_group_value",
    "encode_group_metadata_key",
    "encode_group_metadata_value",
    "encode_offset_commit_key",
    "encode_offset_commit_value",
    "java_string_hashcode",
    "partition_for_group",
    "storable",
]

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
CONSUMER_GROUP_KEY_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_METADATA_VALUE_VERSION = 3
MAX_VALUE_VERSION = 4
"""Highest value version known; a higher one is read as this one (KIP-915: later
versions only add tagged fields)."""

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_INT16_MAX = 32767
_MAX_MEMBERS = 1 << 20


def storable(text: str | None, reserve: int = 0) -> bool:
    """Whether ``text`` (plus ``reserve`` more bytes) fits the int16-length strings of the
    record versions written (flexible requests can carry longer ones)."""
    return text is None or len(text.encode("utf-8")) + reserve <= _INT16_MAX


class RecordFormatError(ValueError):
    """A key or value is not in any format this reader knows."""


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    """Key of a committed offset."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetCommitValue:
    """A committed offset, as stored."""

    offset: int
    metadata: str
    commit_timestamp: int
    leader_epoch: int = -1
    """Leader epoch the client saw at the offset (v3+), -1 when unknown."""
    expire_timestamp: int = -1
    """Explicit expiry (v1 only: OffsetCommit v2-v4 with a retention time), -1 when none."""


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    """Key of a group's metadata."""

    group: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataKey:
    """Key of a consumer protocol group's epoch record (KIP-848, key version 3)."""

    group: str


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    """One member of a group, as stored."""

    member_id: str
    client_id: str
    client_host: str
    session_timeout: int
    subscription: bytes
    assignment: bytes
    rebalance_timeout: int = -1
    """v1+; -1 when unknown (readers then use the session timeout)."""
    group_instance_id: str | None = None
    """v3+: the static member's instance id."""


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    """A classic group's generation, protocol, leader and members."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    members: tuple[MemberMetadata, ...] = ()
    current_state_timestamp: int = -1
    """v2+: when the group entered its current state (ms), -1 when unknown."""


# --------------------------------------------------------------------------- writing


class _Writer:
    def __init__(self, flexible: bool) -> None:
        self.out = bytearray()
        self.flexible = flexible

    def i16(self, value: int) -> None:
        self.out += _I16.pack(value)

    def i32(self, value: int) -> None:
        self.out += _I32.pack(value)

    def i64(self, value: int) -> None:
        self.out += _I64.pack(value)

    def uvarint(self, value: int) -> None:
        while value > 0x7F:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)

    def string(self, value: str | None) -> None:
        if value is None:
            if self.flexible:
                self.uvarint(0)
            else:
                self.i16(-1)
            return
        raw = value.encode("utf-8")
        if self.flexible:
            self.uvarint(len(raw) + 1)
        else:
            if len(raw) > _INT16_MAX:
                raise RecordFormatError(f"string of {len(raw)} bytes does not fit an int16 length")
            self.i16(len(raw))
        self.out += raw

    def bytes_(self, value: bytes) -> None:
        if self.flexible:
            self.uvarint(len(value) + 1)
        else:
            self.i32(len(value))
        self.out += value

    def array_length(self, count: int) -> None:
        if self.flexible:
            self.uvarint(count + 1)
        else:
            self.i32(count)

    def no_tagged_fields(self) -> None:
        if self.flexible:
            self.uvarint(0)


def encode_offset_commit_key(key: OffsetCommitKey) -> bytes:
    """The record key of a committed offset (version 1, as Kafka writes it)."""
    w = _Writer(flexible=False)
    w.i16(OFFSET_COMMIT_KEY_VERSION)
    w.string(key.group)
    w.string(key.topic)
    w.i32(key.partition)
    return bytes(w.out)


def encode_group_metadata_key(key: GroupMetadataKey) -> bytes:
    """The record key of a group's metadata (version 2)."""
    w = _Writer(flexible=False)
    w.i16(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return bytes(w.out)


def encode_consumer_group_key(key: ConsumerGroupMetadataKey) -> bytes:
    """The record key of a consumer protocol group (version 3)."""
    w = _Writer(flexible=False)
    w.i16(CONSUMER_GROUP_KEY_VERSION)
    w.string(key.group)
    return bytes(w.out)


def encode_consumer_group_value(epoch: int) -> bytes:
    """ConsumerGroupMetadataValue v0: the group epoch."""
    w = _Writer(flexible=True)
    w.i16(0)
    w.i32(epoch)
    w.no_tagged_fields()
    return bytes(w.out)


def decode_consumer_group_value(data: bytes) -> int:
    """The group epoch of a ConsumerGroupMetadataValue (later versions only add tagged
    fields, which are skipped)."""
    r = _Reader(data, flexible=True)
    if r.i16() < 0:
        raise RecordFormatError("ConsumerGroupMetadataValue has a negative version")
    epoch = r.i32()
    r.tagged_fields()
    return epoch


def encode_offset_commit_value(value: OffsetCommitValue, version: int | None = None) -> bytes:
    """A committed offset: v3 by default, v1 when it carries an expiry time (as Kafka)."""
    if version is None:
        version = (OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY if value.expire_timestamp >= 0
                   else OFFSET_COMMIT_VALUE_VERSION)
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise RecordFormatError(f"no OffsetCommitValue version {version}")
    w = _Writer(flexible=version >= 4)
    w.i16(version)
    w.i64(value.offset)
    if version >= 3:
        w.i32(value.leader_epoch)
    w.string(value.metadata)
    w.i64(value.commit_timestamp)
    if version == 1:
        w.i64(value.expire_timestamp)
    w.no_tagged_fields()
    return bytes(w.out)


def encode_group_metadata_value(
    value: GroupMetadataValue, version: int = GROUP_METADATA_VALUE_VERSION
) -> bytes:
    """A group's metadata, v3 by default (as Kafka)."""
    if not 0 <= version <= MAX_VALUE_VERSION:
        raise RecordFormatError(f"no GroupMetadataValue version {version}")
    w = _Writer(flexible=version >= 4)
    w.i16(version)
    w.string(value.protocol_type)
    w.i32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    if version >= 2:
        w.i64(value.current_state_timestamp)
    w.array_length(len(value.members))
    for member in value.members:
        w.string(member.member_id)
        if version >= 3:
            w.string(member.group_instance_id)
        w.string(member.client_id)
        w.string(member.client_host)
        if version >= 1:
            w.i32(member.rebalance_timeout)
        w.i32(member.session_timeout)
        w.bytes_(member.subscription)
        w.bytes_(member.assignment)
        w.no_tagged_fields()
    w.no_tagged_fields()
    return bytes(w.out)


# --------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes, flexible: bool) -> None:
        self.data = data
        self.pos = 0
        self.flexible = flexible

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise RecordFormatError("record ends early")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise RecordFormatError("varint too long")

    def _length(self) -> int:
        """A string or bytes length; -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.i16()

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("null where a string is required")
        return value

    def nullable_string(self) -> str | None:
        length = self._length()
        if length < 0:
            if length != -1:
                raise RecordFormatError(f"negative string length {length}")
            return None
        try:
            return self._take(length).decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordFormatError(f"string is not UTF-8: {error}") from None

    def bytes_(self) -> bytes:
        length = self.uvarint() - 1 if self.flexible else self.i32()
        if length < 0:
            raise RecordFormatError("null where bytes are required")
        return self._take(length)

    def array_length(self) -> int:
        count = self.uvarint() - 1 if self.flexible else self.i32()
        if not 0 <= count <= _MAX_MEMBERS:
            raise RecordFormatError(f"impossible array length {count}")
        return count

    def tagged_fields(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())

    def done(self, strict: bool) -> None:
        if strict and self.pos != len(self.data):
            raise RecordFormatError(f"{len(self.data) - self.pos} bytes left over")


StoredKey = OffsetCommitKey | GroupMetadataKey | ConsumerGroupMetadataKey


def decode_key(data: bytes) -> StoredKey | None:
    """The key of a ``__consumer_offsets`` record; None for the record types this
    coordinator does not hold (a consumer group's member and assignment records, share
    groups): it rebuilds those from the members' heartbeats."""
    r = _Reader(data, flexible=False)
    version = r.i16()
    if version in (0, 1):
        key: StoredKey = OffsetCommitKey(r.string(), r.string(), r.i32())
    elif version == 2:
        key = GroupMetadataKey(r.string())
    elif version == CONSUMER_GROUP_KEY_VERSION:
        key = ConsumerGroupMetadataKey(r.string())
    elif version > 2:
        return None
    else:
        raise RecordFormatError(f"unknown key version {version}")
    r.done(strict=True)
    return key


def _value_reader(data: bytes, kind: str) -> tuple[_Reader, int, bool]:
    version = _Reader(data, flexible=False).i16()
    if version < 0:
        raise RecordFormatError(f"{kind} has negative version {version}")
    effective = min(version, MAX_VALUE_VERSION)
    reader = _Reader(data, flexible=effective >= 4)
    reader.pos = 2
    return reader, effective, version <= MAX_VALUE_VERSION


def decode_offset_commit_value(data: bytes) -> OffsetCommitValue:
    """A committed offset of any version."""
    r, version, known = _value_reader(data, "OffsetCommitValue")
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.i64()
    expire_timestamp = r.i64() if version == 1 else -1
    r.tagged_fields()
    r.done(strict=known)
    return OffsetCommitValue(offset, metadata, commit_timestamp, leader_epoch, expire_timestamp)


def decode_group_metadata_value(data: bytes) -> GroupMetadataValue:
    """A group's metadata of any version."""
    r, version, known = _value_reader(data, "GroupMetadataValue")
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_timestamp = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.array_length()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.tagged_fields()
        members.append(MemberMetadata(member_id, client_id, client_host, session_timeout,
                                      subscription, assignment, rebalance_timeout, instance_id))
    r.tagged_fields()
    r.done(strict=known)
    return GroupMetadataValue(protocol_type, generation, protocol, leader, tuple(members),
                              state_timestamp)


# --------------------------------------------------------------------------- placement


def java_string_hashcode(value: str) -> int:
    """``String.hashCode()`` of Java: over UTF-16 code units, in 32-bit signed arithmetic."""
    units = value.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for_group(group_id: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of a group, as Kafka computes it
    (``Utils.abs(groupId.hashCode()) % partitions``, where abs(MIN_VALUE) is 0)."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions
