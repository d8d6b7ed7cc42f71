"""The stored state of one ``__consumer_offsets`` partition: its groups and committed
offsets, rebuilt by replaying the partition's log, and the records that change it.

Replay is forgiving: a batch with a bad CRC, a record that is not in any known format, a
key of another group kind, all are skipped (with a warning for what looks broken), so a
damaged log never stops the broker from loading the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from kcli.broker.group.consumer_group import ConsumerGroup
from kcli.broker.group.group import Group, GroupState, Member
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
)
from kcli.broker.log import CorruptBatch, Record, UnsupportedMagic, decode_records, iter_batches
from kcli.broker.log.batch import batch_crc
from kcli.broker.txn.markers import read_marker

log = logging.getLogger("kcli.broker.group")

KeyValue = tuple[bytes, bytes | None]
"""A record to append: key and value (None: a tombstone)."""


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """An offset a group committed for a partition."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1


Offsets = dict[tuple[str, int], CommittedOffset]


class Shard:
    """The groups and offsets of one offsets partition this broker leads."""

    def __init__(self, index: int, where: str) -> None:
        self.index = index
        self.where = where
        """The partition's name, for log messages."""
        self.loading = True
        self.groups: dict[str, Group] = {}
        """Classic groups. A group id is in this or in ``consumer_groups``, never both."""
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        """Groups of the consumer protocol (KIP-848)."""
        self.offsets: dict[str, Offsets] = {}
        self.pending: dict[int, dict[str, Offsets]] = {}
        """Offsets committed in a transaction (TxnOffsetCommit), by producer id and group:
        invisible until the transaction's COMMIT marker, dropped by its ABORT."""
        self.load_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ replay

    def replay_chunk(self, data: bytes) -> int:
        """Replay every whole batch in ``data``; returns the offset after the last one
        (-1 when there is none)."""
        next_offset = -1
        try:
            for header in iter_batches(data):
                next_offset = header.next_offset
                if header.is_control:
                    marker = read_marker(data, header) if header.is_transactional else None
                    if marker is not None:
                        self.end_transaction(header.producer_id, marker.commit)
                    continue
                if batch_crc(data, header.position, header.size) != header.crc:
                    log.warning("%s: skipping batch at offset %d with a bad CRC",
                                self.where, header.base_offset)
                    continue
                try:
                    records = decode_records(data, header)
                except (CorruptBatch, UnsupportedMagic) as error:
                    log.warning("%s: skipping unreadable batch at offset %d: %s",
                                self.where, header.base_offset, error)
                    continue
                for record in records:
                    self.replay(record, header.producer_id if header.is_transactional else -1)
        except CorruptBatch as error:
            log.error("%s: corrupt batch after offset %d: %s", self.where, next_offset, error)
        return next_offset

    def replay(self, record: Record, producer_id: int = -1) -> None:
        """Apply one stored record: the latest record of a key wins. An offset commit
        of a transaction (``producer_id`` >= 0) waits for its marker."""
        if record.key is None:
            log.warning("%s: skipping record at offset %d without a key", self.where,
                        record.offset)
            return
        try:
            key = decode_key(record.key)
            if isinstance(key, OffsetCommitKey):
                if producer_id >= 0 and record.value is not None:
                    stored = decode_offset_commit_value(record.value)
                    self.pending.setdefault(producer_id, {}).setdefault(key.group, {})[
                        (key.topic, key.partition)] = CommittedOffset(
                            stored.offset, stored.leader_epoch, stored.metadata,
                            stored.commit_timestamp, stored.expire_timestamp)
                else:
                    self._replay_offset(key, record.value)
            elif isinstance(key, GroupMetadataKey):
                if record.value is None:
                    self.groups.pop(key.group, None)
                else:
                    self.groups[key.group] = group_from_record(
                        key.group, decode_group_metadata_value(record.value))
                    self.consumer_groups.pop(key.group, None)
            elif isinstance(key, ConsumerGroupMetadataKey):
                if record.value is None:
                    self.consumer_groups.pop(key.group, None)
                else:
                    epoch = decode_consumer_group_value(record.value)
                    self.consumer_groups[key.group] = ConsumerGroup(
                        key.group, record.timestamp, group_epoch=epoch, assignment_epoch=epoch)
                    self.groups.pop(key.group, None)
        except RecordFormatError as error:
            log.warning("%s: skipping malformed record at offset %d: %s",
                        self.where, record.offset, error)

    def _replay_offset(self, key: OffsetCommitKey, value: bytes | None) -> None:
        if value is None:
            offsets = self.offsets.get(key.group)
            if offsets is not None:
                offsets.pop((key.topic, key.partition), None)
                if not offsets:
                    del self.offsets[key.group]
            return
        stored = decode_offset_commit_value(value)
        self.offsets.setdefault(key.group, {})[(key.topic, key.partition)] = CommittedOffset(
            stored.offset, stored.leader_epoch, stored.metadata, stored.commit_timestamp,
            stored.expire_timestamp)
        if not self.has_group(key.group):  # offsets committed without membership
            self.groups[key.group] = Group(key.group, stored.commit_timestamp)

    def finish_replay(self) -> None:
        """After the last record: give offsets whose group record was removed a group."""
        for group_id, offsets in self.offsets.items():
            if not self.has_group(group_id):
                self.groups[group_id] = Group(
                    group_id, min(o.commit_timestamp for o in offsets.values()))

    def has_group(self, group_id: str) -> bool:
        """Whether a group of either protocol has this id."""
        return group_id in self.groups or group_id in self.consumer_groups

    # ------------------------------------------------------------------ changes

    def commit(self, group_id: str, committed: Offsets) -> None:
        self.offsets.setdefault(group_id, {}).update(committed)

    def end_transaction(self, producer_id: int, commit: bool) -> None:
        """A transaction's marker: apply its pending offsets on COMMIT, drop them on
        ABORT."""
        pending = self.pending.pop(producer_id, None)
        if not commit or not pending:
            return
        for group_id, offsets in pending.items():
            self.commit(group_id, offsets)
            if not self.has_group(group_id):
                self.groups[group_id] = Group(
                    group_id, min(o.commit_timestamp for o in offsets.values()))

    def has_pending(self, group_id: str, key: tuple[str, int] | None = None) -> bool:
        """Whether a transaction holds offsets of ``group_id`` (for ``key``) not yet
        committed or aborted."""
        return any(group_id in groups and (key is None or key in groups[group_id])
                   for groups in self.pending.values())

    def forget(self, group_id: str, keys: list[tuple[str, int]]) -> None:
        offsets = self.offsets.get(group_id)
        if offsets is None:
            return
        for key in keys:
            offsets.pop(key, None)
        if not offsets:
            del self.offsets[group_id]


def group_from_record(group_id: str, value: GroupMetadataValue) -> Group:
    """A group as its latest GroupMetadata record describes it: Stable with its members,
    or Empty."""
    if value.members and value.protocol is None:
        raise RecordFormatError(f"group {group_id} has members but no protocol")
    instances = [m.group_instance_id for m in value.members if m.group_instance_id is not None]
    if (len({m.member_id for m in value.members}) != len(value.members)
            or len(set(instances)) != len(instances)):
        raise RecordFormatError(f"group {group_id} lists a member twice")
    group = Group(group_id, time.time_ns() // 1_000_000,
                  GroupState.STABLE if value.members else GroupState.EMPTY)
    group.state_timestamp = (value.current_state_timestamp
                             if value.current_state_timestamp >= 0 else None)
    group.generation_id = value.generation
    for m in value.members:
        rebalance = m.rebalance_timeout if m.rebalance_timeout >= 0 else m.session_timeout
        group.add(Member(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                         rebalance, m.session_timeout, value.protocol_type,
                         ((value.protocol or "", m.subscription),), m.assignment))
    group.protocol_type = value.protocol_type or None
    group.protocol_name = value.protocol
    if value.leader in group.members:
        group.leader_id = value.leader
    group.subscribed_topics = group.compute_subscribed_topics()
    return group


def group_record(group: Group, assignments: dict[str, bytes]) -> KeyValue:
    """The GroupMetadata record of a group's current generation with ``assignments``."""
    members = tuple(
        MemberMetadata(
            m.member_id, m.client_id, m.client_host, m.session_timeout_ms,
            m.metadata(group.protocol_name), assignments.get(m.member_id, b""),
            m.rebalance_timeout_ms, m.group_instance_id,
        )
        for m in group.members.values()
    )
    value = GroupMetadataValue(
        group.protocol_type or "", group.generation_id, group.protocol_name,
        group.leader_id if group.members else None, members,
        group.state_timestamp if group.state_timestamp is not None else -1,
    )
    return (encode_group_metadata_key(GroupMetadataKey(group.group_id)),
            encode_group_metadata_value(value))


def group_tombstone(group_id: str) -> KeyValue:
    return encode_group_metadata_key(GroupMetadataKey(group_id)), None


def consumer_group_record(group_id: str, epoch: int) -> KeyValue:
    """A consumer protocol group's epoch record: the group exists, of this kind."""
    return (encode_consumer_group_key(ConsumerGroupMetadataKey(group_id)),
            encode_consumer_group_value(epoch))


def consumer_group_tombstone(group_id: str) -> KeyValue:
    return encode_consumer_group_key(ConsumerGroupMetadataKey(group_id)), None


def offset_record(group_id: str, topic: str, partition: int, offset: CommittedOffset
                  ) -> KeyValue:
    return (
        encode_offset_commit_key(OffsetCommitKey(group_id, topic, partition)),
        encode_offset_commit_value(OffsetCommitValue(
            offset.offset, offset.metadata, offset.commit_timestamp, offset.leader_epoch,
            offset.expire_timestamp)),
    )


def offset_tombstone(group_id: str, topic: str, partition: int) -> KeyValue:
    return encode_offset_commit_key(OffsetCommitKey(group_id, topic, partition)), None
