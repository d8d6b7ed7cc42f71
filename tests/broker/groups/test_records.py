"""The ``__consumer_offsets`` key and value formats: Kafka's bytes, every version."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.group.records import (
    ConsumerGroupMetadataKey,
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordFormatError,
    decode_consumer_group_value,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    encode_consumer_group_key,
    encode_consumer_group_value,
    encode_group_metadata_key,
    encode_group_metadata_value,
    encode_offset_commit_key,
    encode_offset_commit_value,
    java_string_hashcode,
    partition_for_group,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# int16-length strings: at most 32767 UTF-8 bytes; keep them short for speed
TEXT = st.text(max_size=40)
BLOB = st.binary(max_size=200)


@given(TEXT, TEXT, INT32)
def test_offset_commit_key_round_trip(group: str, topic: str, partition: int) -> None:
    key = OffsetCommitKey(group, topic, partition)
    data = encode_offset_commit_key(key)
    assert data[:2] == b"\x00\x01"  # version 1, as Kafka writes it
    assert decode_key(data) == key


@given(TEXT)
def test_group_metadata_key_round_trip(group: str) -> None:
    data = encode_group_metadata_key(GroupMetadataKey(group))
    assert data[:2] == b"\x00\x02"
    assert decode_key(data) == GroupMetadataKey(group)


def offset_values(version: int) -> st.SearchStrategy[OffsetCommitValue]:
    """Values that version ``version`` can hold (others get their defaults)."""
    return st.builds(
        OffsetCommitValue,
        offset=INT64,
        metadata=TEXT,
        commit_timestamp=INT64,
        leader_epoch=INT32 if version >= 3 else st.just(-1),
        expire_timestamp=INT64 if version == 1 else st.just(-1),
    )


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
@given(data=st.data())
def test_offset_commit_value_round_trip_every_version(version: int, data: st.DataObject) -> None:
    value = data.draw(offset_values(version))
    encoded = encode_offset_commit_value(value, version)
    assert struct.unpack_from(">h", encoded)[0] == version
    assert decode_offset_commit_value(encoded) == value
    assert encode_offset_commit_value(decode_offset_commit_value(encoded), version) == encoded


def group_values(version: int) -> st.SearchStrategy[GroupMetadataValue]:
    member = st.builds(
        MemberMetadata,
        member_id=TEXT,
        client_id=TEXT,
        client_host=TEXT,
        session_timeout=INT32,
        subscription=BLOB,
        assignment=BLOB,
        rebalance_timeout=INT32 if version >= 1 else st.just(-1),
        group_instance_id=st.none() | TEXT if version >= 3 else st.none(),
    )
    return st.builds(
        GroupMetadataValue,
        protocol_type=TEXT,
        generation=INT32,
        protocol=st.none() | TEXT,
        leader=st.none() | TEXT,
        members=st.lists(member, max_size=4).map(tuple),
        current_state_timestamp=INT64 if version >= 2 else st.just(-1),
    )


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
@given(data=st.data())
def test_group_metadata_value_round_trip_every_version(version: int, data: st.DataObject) -> None:
    value = data.draw(group_values(version))
    encoded = encode_group_metadata_value(value, version)
    assert decode_group_metadata_value(encoded) == value
    assert encode_group_metadata_value(decode_group_metadata_value(encoded), version) == encoded


def test_default_versions_are_kafkas() -> None:
    plain = encode_offset_commit_value(OffsetCommitValue(5, "m", 7, leader_epoch=2))
    with_expiry = encode_offset_commit_value(OffsetCommitValue(5, "m", 7, expire_timestamp=9))
    group = encode_group_metadata_value(GroupMetadataValue("consumer", 1, "range", "a"))
    assert [struct.unpack_from(">h", b)[0] for b in (plain, with_expiry, group)] == [3, 1, 3]


def test_offset_commit_value_v3_bytes() -> None:
    # version, offset, leader epoch, metadata (int16 length), commit timestamp
    expected = (struct.pack(">hqi", 3, 42, 7) + struct.pack(">h", 2) + b"hi"
                + struct.pack(">q", 1_700_000_000_000))
    value = OffsetCommitValue(42, "hi", 1_700_000_000_000, leader_epoch=7)
    assert encode_offset_commit_value(value) == expected


def test_group_metadata_value_v3_bytes() -> None:
    def s(text: str) -> bytes:
        return struct.pack(">h", len(text)) + text.encode()

    member = MemberMetadata("m-1", "client", "/127.0.0.1", 10_000, b"sub", b"asg", 30_000, "i")
    expected = (struct.pack(">h", 3) + s("consumer") + struct.pack(">i", 4) + s("range")
                + s("m-1") + struct.pack(">q", 123) + struct.pack(">i", 1)
                + s("m-1") + s("i") + s("client") + s("/127.0.0.1")
                + struct.pack(">ii", 30_000, 10_000) + struct.pack(">i", 3) + b"sub"
                + struct.pack(">i", 3) + b"asg")
    value = GroupMetadataValue("consumer", 4, "range", "m-1", (member,), 123)
    assert encode_group_metadata_value(value) == expected
    assert decode_group_metadata_value(expected) == value


def test_flexible_v4_reads_and_skips_unknown_tagged_fields() -> None:
    encoded = bytearray(encode_offset_commit_value(OffsetCommitValue(1, "x", 2), 4))
    assert encoded[-1] == 0  # empty tagged fields
    encoded[-1:] = b"\x01\x05\x02zz"  # one unknown tag (5) of two bytes
    assert decode_offset_commit_value(bytes(encoded)) == OffsetCommitValue(1, "x", 2)


def test_a_newer_value_version_reads_as_the_newest_known() -> None:
    encoded = bytearray(encode_offset_commit_value(OffsetCommitValue(1, "x", 2, 3), 4))
    encoded[0:2] = struct.pack(">h", 9)
    assert decode_offset_commit_value(bytes(encoded)) == OffsetCommitValue(1, "x", 2, 3)


def test_consumer_group_records_and_the_ones_not_kept() -> None:
    key = encode_consumer_group_key(ConsumerGroupMetadataKey("g"))
    assert key == struct.pack(">hh", 3, 1) + b"g"  # as Kafka writes ConsumerGroupMetadataKey
    assert decode_key(key) == ConsumerGroupMetadataKey("g")
    value = encode_consumer_group_value(7)
    assert value == struct.pack(">hi", 0, 7) + b"\x00"  # flexible: no tagged fields
    assert decode_consumer_group_value(value) == 7
    # a member's record (key 5) and share groups' are rebuilt, not read
    assert decode_key(struct.pack(">h", 5) + b"\x00\x01g\x00\x01m") is None


@pytest.mark.parametrize("data", [
    b"", b"\x00", struct.pack(">h", -1), struct.pack(">hh", 1, 50) + b"short",
    encode_offset_commit_key(OffsetCommitKey("g", "t", 0)) + b"extra",
    struct.pack(">hh", 2, 2) + b"\xff\xfe",
])
def test_malformed_keys_raise_record_format_error(data: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode_key(data)


@given(st.binary(max_size=64))
def test_garbage_values_never_raise_anything_else(data: bytes) -> None:
    for decode in (decode_offset_commit_value, decode_group_metadata_value, decode_key,
                   decode_consumer_group_value):
        with contextlib.suppress(RecordFormatError):
            decode(data)


@pytest.mark.parametrize(("text", "expected"), [
    ("", 0), ("a", 97), ("hello", 99162322), ("Hello World", -862545276),
    ("\U0001f600", 1772899),  # a surrogate pair, hashed as two UTF-16 units
])
def test_java_string_hashcode(text: str, expected: int) -> None:
    assert java_string_hashcode(text) == expected


def test_partition_for_group_uses_kafkas_abs() -> None:
    assert partition_for_group("Hello World", 50) == 862545276 % 50
    assert partition_for_group("hello", 16) == 99162322 % 16
    # Integer.MIN_VALUE: Kafka's Utils.abs maps it to 0
    assert java_string_hashcode("polygenelubricants") == -(2**31)
    assert partition_for_group("polygenelubricants", 7) == 0
