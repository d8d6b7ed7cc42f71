"""The group coordinator: classic consumer groups and committed offsets, as Kafka runs them.

Groups and offsets live in ``__consumer_offsets`` (internal, compacted), created on first
use. A group belongs to partition ``abs(hash(group_id)) % partitions`` of that topic and
is coordinated by the broker that leads that partition; every other broker answers
NOT_COORDINATOR, so moving leadership moves the coordinator. When this broker becomes
leader of an offsets partition it replays the partition's log (latest record per key
wins) before serving its groups; until then they get COORDINATOR_LOAD_IN_PROGRESS.

Layers: ``runtime`` (where groups live: loading, writing, timers), ``membership`` (the
rebalance protocol), and here the offsets and the group administration APIs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from kcli.broker.errors import ErrorCode
from kcli.broker.group.consumer_group import ConsumerGroup
from kcli.broker.group.errors import CoordinatorError
from kcli.broker.group.group import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupState,
    JoinedMember,
    JoinResult,
    SyncResult,
)
from kcli.broker.group.membership import append_error_for_group
from kcli.broker.group.migration import ProtocolMigration
from kcli.broker.group.models import (
    GROUP_TYPE_CLASSIC,
    FetchedOffset,
    GroupDescription,
    ListedGroup,
    MemberDescription,
    OffsetCommitEntry,
)
from kcli.broker.group.runtime import OFFSETS_TOPIC, now_ms
from kcli.broker.group.shard import (
    CommittedOffset,
    KeyValue,
    Shard,
    consumer_group_tombstone,
    group_tombstone,
    offset_record,
    offset_tombstone,
)

log = logging.getLogger("kcli.broker.group")

GROUP_TYPE_CONSUMER = "consumer"
_DEAD = GroupState.DEAD
_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE

class GroupCoordinator(ProtocolMigration):
    """Serves the group APIs for the groups whose offsets partitions this broker leads:
    classic groups (``Membership``), consumer protocol ones (``ConsumerProtocol``) and
    groups moving between them (``ProtocolMigration``)."""

    def start(self) -> None:
        """Start background work: offset expiry."""
        super().start()
        self._spawn(self._expire_periodically(), "offsets-expiry")

    # ================================================================== offsets

    def _known_partition(self, topic: str, partition: int) -> bool:
        state = self.broker.topic(topic)
        return state is not None and 0 <= partition < len(state.partitions)

    def _metadata_too_large(self, metadata: str | None) -> bool:
        if metadata is None:
            return False
        limit = self._setting("offset.metadata.max.bytes")
        # Kafka counts UTF-16 code units; the stored string also needs an int16 length
        return (len(metadata.encode("utf-16-le")) // 2 > limit
                or len(metadata.encode("utf-8")) > 32767)

    @staticmethod
    def _validate_offset_commit(group: Group, member_id: str, instance_id: str | None,
                                generation_id: int) -> int:
        if group.is_in(_DEAD):
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.is_in(_EMPTY):
            return ErrorCode.none  # a commit without membership (admin tools, assign())
        if generation_id >= 0 or member_id or instance_id is not None:
            error = group.validate_member(member_id, instance_id)
            if error != ErrorCode.none:
                return error
            if generation_id != group.generation_id:
                return ErrorCode.illegal_generation
        elif not group.is_in(_EMPTY):
            return ErrorCode.unknown_member_id
        if group.is_in(_COMPLETING):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    async def commit_offsets(
        self,
        *,
        group_id: str | None,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        entries: Sequence[OffsetCommitEntry],
        retention_ms: int = -1,
        api_version: int = 9,
    ) -> list[int]:
        """Handle an OffsetCommit; returns an error code per entry."""
        if group_id is None:
            return [ErrorCode.invalid_group_id] * len(entries)
        try:
            shard, results = self._commit_target(group_id, entries)
        except CoordinatorError as failure:
            return [failure.error_code] * len(entries)
        group = shard.groups.get(group_id)
        modern = shard.consumer_groups.get(group_id)
        error: int
        if modern is not None:
            error = _validate_consumer_commit(modern, member_id, generation_id, api_version)
        elif group is None:
            if generation_id < 0:
                log.info("group %s: created by an offset commit without membership", group_id)
                group = shard.groups[group_id] = Group(group_id, now_ms())
                error = ErrorCode.none
            else:
                error = (ErrorCode.group_id_not_found if api_version >= 9
                         else ErrorCode.illegal_generation)
        else:
            error = self._validate_offset_commit(group, member_id, group_instance_id,
                                                 generation_id)
        if error != ErrorCode.none:
            return [r if r != ErrorCode.none else error for r in results]
        if (group is not None and group.is_in(_STABLE, _PREPARING)
                and member_id in group.members):
            self._reschedule_heartbeat(shard, group, group.members[member_id])
        await self._write_offsets(shard, group_id, entries, results, retention_ms)
        return results

    def _commit_target(self, group_id: str, entries: Sequence[OffsetCommitEntry]
                       ) -> tuple[Shard, list[int]]:
        """The group's shard (CoordinatorError when this broker cannot take its commits)
        and a result per entry: NONE, or UNKNOWN_TOPIC_OR_PARTITION."""
        if not all(self._known_partition(e.topic, e.partition) for e in entries):
            self._fresh()  # a topic created a moment ago through another broker
        shard = self._shard_for(group_id)
        return shard, [ErrorCode.none if self._known_partition(e.topic, e.partition)
                       else ErrorCode.unknown_topic_or_partition for e in entries]

    async def _write_offsets(self, shard: Shard, group_id: str,
                             entries: Sequence[OffsetCommitEntry], results: list[int],
                             retention_ms: int = -1,
                             producer: tuple[int, int] | None = None) -> None:
        """Write the entries still NONE in ``results`` and wait for the in-sync replicas,
        setting each entry's result. They become committed at once, or with ``producer``
        (TxnOffsetCommit) pending until its transaction's marker."""
        now = now_ms()
        expire = now + retention_ms if retention_ms >= 0 else -1
        records: list[KeyValue] = []
        offsets: dict[tuple[str, int], CommittedOffset] = {}
        written: list[int] = []
        for i, entry in enumerate(entries):
            if results[i] != ErrorCode.none:
                continue
            if self._metadata_too_large(entry.metadata):
                results[i] = ErrorCode.offset_metadata_too_large
                continue
            value = CommittedOffset(entry.offset, entry.leader_epoch, entry.metadata or "", now,
                                    expire)
            offsets[(entry.topic, entry.partition)] = value
            records.append(offset_record(group_id, entry.topic, entry.partition, value))
            written.append(i)
        if not records:
            return
        try:
            last = self._append(shard, records, producer=producer)
        except CoordinatorError as failure:
            code = _append_error_for_commit(failure.error_code)
            for i in written:
                results[i] = code
            return
        if producer is None:
            shard.commit(group_id, offsets)
        else:
            shard.pending.setdefault(producer[0], {}).setdefault(group_id, {}).update(offsets)
        try:
            await self._await_committed(shard, last)
        except CoordinatorError as failure:
            for i in written:
                results[i] = failure.error_code

    def fetch_offsets(self, group_id: str | None,
                      topics: Sequence[tuple[str, Sequence[int]]] | None,
                      member_id: str | None = None, member_epoch: int = -1,
                      require_stable: bool = False,
                      ) -> tuple[int, list[tuple[str, list[FetchedOffset]]]]:
        """Handle one group of an OffsetFetch: the committed offsets of the partitions
        asked (-1 for none), or of every partition with one when ``topics`` is None. A
        member of a consumer protocol group must give its current epoch (v9+). With
        ``require_stable`` (v7+, read_committed consumers) a partition whose offset a
        transaction holds gets UNSTABLE_OFFSET_COMMIT, which the client retries."""
        if group_id is None:
            return ErrorCode.invalid_group_id, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        modern = shard.consumer_groups.get(group_id)
        if modern is not None and (member_epoch >= 0 or member_id):
            member = modern.members.get(member_id or "")
            if member is None:
                return ErrorCode.unknown_member_id, []
            if member.member_epoch != member_epoch:
                return ErrorCode.stale_member_epoch, []
        offsets = shard.offsets.get(group_id, {}) if shard.has_group(group_id) else {}
        if topics is None:
            by_topic: dict[str, list[FetchedOffset]] = {}
            for (topic, partition), o in sorted(offsets.items()):
                by_topic.setdefault(topic, []).append(
                    FetchedOffset(partition, -1, error=ErrorCode.unstable_offset_commit)
                    if require_stable and shard.has_pending(group_id, (topic, partition))
                    else FetchedOffset(partition, o.offset, o.leader_epoch, o.metadata))
            return ErrorCode.none, list(by_topic.items())
        result = []
        for topic, partitions in topics:
            fetched = []
            for partition in partitions:
                found = offsets.get((topic, partition))
                if require_stable and shard.has_pending(group_id, (topic, partition)):
                    fetched.append(FetchedOffset(partition, -1,
                                                 error=ErrorCode.unstable_offset_commit))
                    continue
                fetched.append(FetchedOffset(partition, -1) if found is None else FetchedOffset(
                    partition, found.offset, found.leader_epoch, found.metadata))
            result.append((topic, fetched))
        return ErrorCode.none, result

    async def txn_commit_offsets(
        self,
        *,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        entries: Sequence[OffsetCommitEntry],
    ) -> list[int]:
        """Handle a TxnOffsetCommit: the offsets are written as part of the producer's
        transaction and held until its marker (Kafka's ``OffsetMetadataManager``). A
        member's generation is checked when given (v3+; -1 and no member skip it)."""
        try:
            shard, results = self._commit_target(group_id, entries)
        except CoordinatorError as failure:
            return [failure.error_code] * len(entries)
        group = shard.groups.get(group_id)
        modern = shard.consumer_groups.get(group_id)
        error: int = ErrorCode.none
        if generation_id >= 0 or member_id or group_instance_id is not None:
            if modern is not None:
                error = _validate_consumer_commit(modern, member_id, generation_id, 9)
            elif group is None:
                error = ErrorCode.illegal_generation
            else:
                error = self._validate_offset_commit(group, member_id, group_instance_id,
                                                     generation_id)
                if error == ErrorCode.rebalance_in_progress:
                    error = ErrorCode.none  # Kafka lets a transaction commit mid-rebalance
        if error != ErrorCode.none:
            return [r if r != ErrorCode.none else error for r in results]
        await self._write_offsets(shard, group_id, entries, results,
                                  producer=(producer_id, producer_epoch))
        return results

    def complete_transaction(self, index: int, producer_id: int, commit: bool) -> None:
        """A marker was written to ``__consumer_offsets``-``index``: the transaction's
        offsets there become committed, or are dropped."""
        shard = self._shards.get(index)
        if shard is not None:
            shard.end_transaction(producer_id, commit)

    async def delete_offsets(self, group_id: str, topics: Sequence[tuple[str, Sequence[int]]]
                             ) -> tuple[int, list[tuple[str, list[tuple[int, int]]]]]:
        """Handle an OffsetDelete: refused per partition for topics the group subscribes to."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        try:
            shard = self._shard_for(group_id)
        except CoordinatorError as failure:
            return failure.error_code, []
        group: Group | ConsumerGroup | None = shard.consumer_groups.get(group_id)
        if group is None:
            group = shard.groups.get(group_id)
            if group is None or group.is_in(_DEAD):
                return ErrorCode.group_id_not_found, []
            if not group.is_in(_EMPTY) and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                return ErrorCode.non_empty_group, []
        offsets = shard.offsets.get(group_id, {})
        records: list[KeyValue] = []
        doomed: list[tuple[str, int]] = []
        result: list[tuple[str, list[tuple[int, int]]]] = []
        for topic, partitions in topics:
            subscribed = group.is_subscribed_to(topic)
            answers: list[tuple[int, int]] = []
            for partition in partitions:
                if not self._known_partition(topic, partition):
                    answers.append((partition, ErrorCode.unknown_topic_or_partition))
                elif subscribed:
                    answers.append((partition, ErrorCode.group_subscribed_to_topic))
                else:
                    answers.append((partition, ErrorCode.none))
                    if (topic, partition) in offsets:
                        records.append(offset_tombstone(group_id, topic, partition))
                        doomed.append((topic, partition))
            result.append((topic, answers))
        if records:
            try:
                last = self._append(shard, records)
            except CoordinatorError as failure:
                return append_error_for_group(failure.error_code), []
            shard.forget(group_id, doomed)
            try:
                await self._await_committed(shard, last)
            except CoordinatorError as failure:
                return failure.error_code, []
        return ErrorCode.none, result

    # ================================================================== groups

    def describe_groups(self, group_ids: Sequence[str | None], *, not_found_error: bool
                        ) -> list[GroupDescription]:
        """Handle a DescribeGroups; an unknown group is "Dead", with GROUP_ID_NOT_FOUND
        when ``not_found_error`` (v6+)."""
        described = []
        for group_id in group_ids:
            if group_id is None:
                described.append(GroupDescription("", ErrorCode.invalid_group_id))
                continue
            try:
                shard = self._shard_for(group_id)
            except CoordinatorError as failure:
                described.append(GroupDescription(group_id, failure.error_code))
                continue
            group = shard.groups.get(group_id)
            if group is None or group.is_in(_DEAD):
                error = ErrorCode.group_id_not_found if not_found_error else ErrorCode.none
                described.append(GroupDescription(group_id, error, _DEAD.value))
                continue
            stable = group.is_in(_STABLE)
            members = tuple(
                MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                  m.metadata(group.protocol_name) if stable else b"",
                                  m.assignment)
                for m in group.members.values()
            )
            described.append(GroupDescription(
                group_id, ErrorCode.none, group.state.value, group.protocol_type or "",
                (group.protocol_name or "") if stable else "", members,
            ))
        return described

    def list_groups(self, states: Sequence[str] = (), types: Sequence[str] = ()
                    ) -> tuple[int, list[ListedGroup]]:
        """Handle a ListGroups: every group this broker coordinates, filtered by state and
        type ("classic" or "consumer"; both case-insensitive)."""
        if any(shard.loading for shard in self._shards.values()):
            return ErrorCode.coordinator_load_in_progress, []
        wanted_states = {s.strip().lower() for s in states}
        wanted_types = {t.strip().lower() for t in types} or {GROUP_TYPE_CLASSIC,
                                                               GROUP_TYPE_CONSUMER}
        listed: list[ListedGroup] = []
        for shard in self._shards.values():
            if GROUP_TYPE_CLASSIC in wanted_types:
                listed.extend(ListedGroup(g.group_id, g.protocol_type or "", g.state.value)
                              for g in shard.groups.values() if not g.is_in(_DEAD))
            if GROUP_TYPE_CONSUMER in wanted_types:
                listed.extend(ListedGroup(g.group_id, CONSUMER_PROTOCOL_TYPE, g.state.value,
                                          GROUP_TYPE_CONSUMER)
                              for g in shard.consumer_groups.values())
        if wanted_states:
            listed = [g for g in listed if g.state.lower() in wanted_states]
        return ErrorCode.none, sorted(listed, key=lambda g: g.group_id)

    async def delete_groups(self, group_ids: Sequence[str | None]) -> list[tuple[str | None, int]]:
        """Handle a DeleteGroups: only empty groups; their offsets go with them."""
        results: dict[int, int] = {}
        by_shard: dict[int, list[tuple[int, Group | ConsumerGroup]]] = {}
        for i, group_id in enumerate(group_ids):
            if group_id is None:
                results[i] = ErrorCode.invalid_group_id
                continue
            try:
                shard = self._shard_for(group_id)
            except CoordinatorError as failure:
                results[i] = failure.error_code
                continue
            modern = shard.consumer_groups.get(group_id)
            group = shard.groups.get(group_id)
            if modern is not None:
                if modern.members:
                    results[i] = ErrorCode.non_empty_group
                else:
                    by_shard.setdefault(shard.index, []).append((i, modern))
            elif group is None or group.is_in(_DEAD):
                results[i] = ErrorCode.group_id_not_found
            elif not group.is_in(_EMPTY):
                results[i] = ErrorCode.non_empty_group
            else:
                by_shard.setdefault(shard.index, []).append((i, group))
        for index, doomed in by_shard.items():
            shard = self._shards[index]
            records: list[KeyValue] = []
            for _i, doomed_group in doomed:
                group_id = doomed_group.group_id
                for topic, partition in sorted(shard.offsets.get(group_id, {})):
                    records.append(offset_tombstone(group_id, topic, partition))
                records.append(_tombstone(doomed_group))
            try:
                last = self._append(shard, records)
            except CoordinatorError as failure:
                for i, _group in doomed:
                    results[i] = append_error_for_group(failure.error_code)
                continue
            for i, doomed_group in doomed:
                self._drop_group(shard, doomed_group)
                results[i] = ErrorCode.none
                log.info("group %s: deleted", doomed_group.group_id)
            try:
                await self._await_committed(shard, last)
            except CoordinatorError as failure:
                for i, _group in doomed:
                    results[i] = failure.error_code
        return [(group_id, results[i]) for i, group_id in enumerate(group_ids)]

    def _drop_group(self, shard: Shard, group: Group | ConsumerGroup) -> None:
        if isinstance(group, ConsumerGroup):
            group.close()
            shard.consumer_groups.pop(group.group_id, None)
        else:
            group.transition_to(_DEAD, now_ms())
            group.cancel_timers()
            shard.groups.pop(group.group_id, None)
        shard.offsets.pop(group.group_id, None)

    # ================================================================== housekeeping

    def on_topic_deleted(self, topic: str) -> None:
        """Remove every group's committed offsets of a deleted topic."""
        for shard in list(self._shards.values()):
            if shard.loading:
                continue
            records: list[KeyValue] = []
            doomed: list[tuple[str, tuple[str, int]]] = []
            for group_id, offsets in shard.offsets.items():
                for key in offsets:
                    if key[0] == topic:
                        records.append(offset_tombstone(group_id, *key))
                        doomed.append((group_id, key))
            if not records:
                continue
            try:
                self._append(shard, records)
            except CoordinatorError as failure:
                log.error("cannot remove offsets of deleted topic %s: %s", topic, failure)
                continue
            for group_id, key in doomed:
                shard.forget(group_id, [key])
            log.info("removed %d committed offset(s) of deleted topic %s", len(doomed), topic)

    async def _expire_periodically(self) -> None:
        interval = self._setting("offsets.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.expire_offsets(now_ms())
            except Exception:  # keep expiring on the next round whatever happened
                log.exception("offset expiry failed")

    def expire_offsets(self, now_ms: int) -> int:
        """Remove offsets past ``offsets.retention.minutes`` (for an empty group, counted
        from when it became empty) and empty groups left without offsets; returns how
        many records were written."""
        retention = self._retention_ms
        written = 0
        for shard in list(self._shards.values()):
            if shard.loading:
                continue
            records: list[KeyValue] = []
            expired: list[tuple[str, tuple[str, int]]] = []
            deleted: list[Group | ConsumerGroup] = []
            groups: list[tuple[Group | ConsumerGroup, Callable[[CommittedOffset], int] | None,
                               Callable[[str], bool], bool]] = [
                (g, _expiry_base(g), g.is_subscribed_to, g.is_in(_EMPTY))
                for g in shard.groups.values()]
            # a consumer protocol group's offsets age from their commit, as in Kafka
            groups.extend((g, _commit_time, g.is_subscribed_to, not g.members)
                          for g in shard.consumer_groups.values())
            for group, base, subscribed, empty in groups:
                offsets = shard.offsets.get(group.group_id, {})
                all_expired = True
                if offsets and base is None:
                    all_expired = False
                for key, o in offsets.items():
                    if base is None or subscribed(key[0]):
                        all_expired = False
                        continue
                    if o.expire_timestamp >= 0:
                        is_expired = now_ms >= o.expire_timestamp
                    else:
                        is_expired = now_ms - base(o) >= retention
                    if is_expired:
                        records.append(offset_tombstone(group.group_id, *key))
                        expired.append((group.group_id, key))
                    else:
                        all_expired = False
                if all_expired and empty:
                    records.append(_tombstone(group))
                    deleted.append(group)
            if not records:
                continue
            try:
                self._append(shard, records)
            except CoordinatorError as failure:
                log.error("%s-%d: cannot write expired offsets: %s", OFFSETS_TOPIC, shard.index,
                          failure)
                continue
            written += len(records)
            for group_id, key in expired:
                shard.forget(group_id, [key])
            for group in deleted:
                self._drop_group(shard, group)
            if expired or deleted:
                log.info("%s-%d: expired %d offset(s), removed %d empty group(s)", OFFSETS_TOPIC,
                         shard.index, len(expired), len(deleted))
        return written


def _expiry_base(group: Group) -> Callable[[CommittedOffset], int] | None:
    """What an offset's age is counted from, or None when the group's offsets do not
    expire now (Kafka's rules)."""
    if group.protocol_type is None:
        return lambda o: o.commit_timestamp  # offsets committed without membership
    if group.is_in(_EMPTY):
        became_empty = group.state_timestamp
        if became_empty is None:
            return lambda o: o.commit_timestamp
        return lambda o: became_empty
    if (group.protocol_type == CONSUMER_PROTOCOL_TYPE and group.subscribed_topics is not None
            and group.is_in(_STABLE)):
        return lambda o: o.commit_timestamp
    return None


def _tombstone(group: Group | ConsumerGroup) -> KeyValue:
    """The record that removes a group, of either kind."""
    if isinstance(group, ConsumerGroup):
        return consumer_group_tombstone(group.group_id)
    return group_tombstone(group.group_id)


def _commit_time(offset: CommittedOffset) -> int:
    return offset.commit_timestamp


def _validate_consumer_commit(group: ConsumerGroup, member_id: str, member_epoch: int,
                              api_version: int) -> int:
    """Kafka's ConsumerGroup.validateOffsetCommit: a member commits in its current epoch,
    with OffsetCommit v9+; a commit without membership only while the group is empty."""
    if member_epoch < 0 and not group.members:
        return ErrorCode.none
    member = group.members.get(member_id)
    if member is None:
        return ErrorCode.unknown_member_id
    if member.classic is not None:  # a JoinGroup member: its generation is its epoch
        return (ErrorCode.none if member_epoch == member.member_epoch
                else ErrorCode.illegal_generation)
    if api_version < 9:
        return ErrorCode.unsupported_version
    if member_epoch > member.member_epoch:
        return ErrorCode.fenced_member_epoch
    if member_epoch < member.member_epoch:
        return ErrorCode.stale_member_epoch
    return ErrorCode.none


def _append_error_for_commit(error: int) -> int:
    """Kafka's mapping of a failed offset write to the error a committer sees."""
    if error in (ErrorCode.unknown_topic_or_partition, ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    return error


__all__ = [
    "OFFSETS_TOPIC",
    "CommittedOffset",
    "FetchedOffset",
    "GroupCoordinator",
    "GroupDescription",
    "JoinResult",
    "JoinedMember",
    "ListedGroup",
    "MemberDescription",
    "OffsetCommitEntry",
    "SyncResult",
]
