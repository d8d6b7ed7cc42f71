"""Consumer groups: list, describe, lag, reset and delete through the AdminClient.

Lag is computed in batches: the committed offsets of every group are requested at once
(one OffsetFetch per group, all in flight together) and the end offsets of every
partition involved in ONE ListOffsets call. lag = max(0, end - committed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kcli.client.cluster import Cluster
from kcli.client.models import (
    GroupDetail,
    GroupMember,
    GroupSummary,
    OffsetChange,
    PartitionLag,
    lag_of,
)
from kcli.client.offsets import TP, PositionSpec, resolve_positions, watermarks
from kcli.client.topics import topic_partitions
from kcli.errors import BadInput, KcliError, NotFound, OperationFailed, from_kafka_error

_STATES = {
    "UNKNOWN": "Unknown", "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance", "STABLE": "Stable", "DEAD": "Dead",
    "EMPTY": "Empty", "ASSIGNING": "Assigning", "RECONCILING": "Reconciling",
}
INACTIVE_STATES = frozenset({"Empty", "Dead"})


def state_name(state: Any) -> str:
    """Kafka's spelling of a group state (Stable, Empty, PreparingRebalance, ...)."""
    name = getattr(state, "name", None) or str(state)
    return _STATES.get(name.upper(), name)


def list_group_ids(cluster: Cluster) -> list[tuple[str, str, str | None]]:
    """(group id, state, protocol type) of every group the cluster lists."""
    result = cluster.wait(cluster.admin.list_consumer_groups(request_timeout=cluster.timeout),
                          "list groups")
    if result.errors:  # a broker that could not answer: the list would be incomplete
        raise from_kafka_error(result.errors[0], "list groups")
    out = []
    for listing in result.valid:
        kind = "simple" if listing.is_simple_consumer_group else "consumer"
        out.append((listing.group_id, state_name(listing.state), kind))
    return sorted(out)


def _waves(groups: Sequence[str], max_in_flight: int | None) -> list[list[str]]:
    size = max_in_flight if max_in_flight and max_in_flight > 0 else max(1, len(groups))
    return [list(groups[i:i + size]) for i in range(0, len(groups), size)]


def _describe(cluster: Cluster, groups: Sequence[str],
              max_in_flight: int | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for wave in _waves(groups, max_in_flight):
        futures = cluster.admin.describe_consumer_groups(wave, request_timeout=cluster.timeout)
        results.update(cluster.wait_all(futures, "describe group"))
    return results


def committed_offsets(cluster: Cluster, groups: Sequence[str],
                      max_in_flight: int | None = None) -> dict[str, dict[TP, int]]:
    """Committed offsets of many groups: one OffsetFetch per group, all in flight at
    once, or at most ``max_in_flight`` at a time."""
    return {group: {tp: offset for tp, (offset, _meta) in offsets.items()}
            for group, offsets in committed_offsets_with_metadata(
                cluster, groups, max_in_flight).items()}


def committed_offsets_with_metadata(cluster: Cluster, groups: Sequence[str],
                                    max_in_flight: int | None = None,
                                    ) -> dict[str, dict[TP, tuple[int, str | None]]]:
    """Committed offsets of many groups with each commit's metadata string."""
    out: dict[str, dict[TP, tuple[int, str | None]]] = {}
    for group, value in _committed(cluster, groups, max_in_flight).items():
        if isinstance(value, KcliError):
            raise value
        out[group] = value
    return out


def _committed(cluster: Cluster, groups: Sequence[str], max_in_flight: int | None,
               ) -> dict[str, dict[TP, tuple[int, str | None]] | KcliError]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    results: dict[str, Any] = {}
    for wave in _waves(groups, max_in_flight):
        futures: dict[str, Any] = {}
        for group in wave:
            (future,) = cluster.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=cluster.timeout).values()
            futures[group] = future
        results.update(cluster.wait_all(futures, "committed offsets of"))
    out: dict[str, dict[TP, tuple[int, str | None]] | KcliError] = {}
    for group, value in results.items():
        if isinstance(value, KcliError):
            out[group] = value
        else:
            out[group] = {(tp.topic, tp.partition): (tp.offset, commit_metadata(tp))
                          for tp in value.topic_partitions if tp.offset >= 0}
    return out


def commit_metadata(tp: Any) -> str | None:
    """A committed offset's metadata string. confluent-kafka decodes it as UTF-8 when
    it is read, and raises on bytes that are not: such a commit (any client may write
    one) reads as no metadata rather than failing every command that lists groups."""
    try:
        metadata: str | None = tp.metadata
    except UnicodeDecodeError:
        return None
    return metadata


def commit_offsets(cluster: Cluster, group: str,
                   offsets: Sequence[tuple[str, int, int, str | None]]) -> None:
    """Write committed offsets (topic, partition, offset, metadata) of a group that has
    no active members (the broker refuses otherwise)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    if not offsets:
        return
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p, o, metadata) if metadata is not None
                else TopicPartition(t, p, o) for t, p, o, metadata in offsets])
    (future,) = cluster.admin.alter_consumer_group_offsets(
        [request], request_timeout=cluster.timeout).values()
    result = cluster.wait(future, f"commit offsets of group {group}")
    for tp in result.topic_partitions or ():
        if tp.error is not None and tp.error.code() != 0:
            from kcli.errors import from_kafka_error

            raise from_kafka_error(tp.error, f"commit {group} {tp.topic}[{tp.partition}]")


def _partitions_of(assignment: Any) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((tp.topic, tp.partition)
                        for tp in (getattr(assignment, "topic_partitions", None) or ())))


def _members(description: Any) -> tuple[GroupMember, ...]:
    consumer_protocol = group_protocol(description) == "consumer"
    members = []
    for member in description.members or ():
        target = getattr(member, "target_assignment", None)
        members.append(GroupMember(
            member.member_id, member.client_id or "", member.host or "",
            _partitions_of(getattr(member, "assignment", None)),
            _partitions_of(target) if consumer_protocol and target is not None else None))
    return tuple(sorted(members, key=lambda m: (m.client_id, m.member_id)))


def group_state(state: Any, members: Sequence[GroupMember]) -> str:
    """Kafka's name of a group's state. librdkafka knows only the classic states and
    reports a consumer protocol group's "Reconciling" as unknown; its members' targets
    tell it all the same."""
    name = state_name(state)
    if name == "Unknown" and any(m.reconciling for m in members):
        return "Reconciling"
    return name


@dataclass(frozen=True)
class Epochs:
    """A consumer protocol group's epochs, from ConsumerGroupDescribe."""

    state: str
    group_epoch: int
    assignment_epoch: int
    members: dict[str, int]


def consumer_group_epochs(cluster: Cluster, coordinators: Mapping[str, Any]
                          ) -> dict[str, Epochs]:
    """Epochs of consumer protocol groups (KIP-848), which librdkafka does not expose:
    one ConsumerGroupDescribe per coordinator, over plain TCP only (see ``wire``); a group
    whose coordinator cannot be asked is left out."""
    from kio.schema.consumer_group_describe.v0.request import ConsumerGroupDescribeRequest
    from kio.schema.types import GroupId

    from kcli.client.wire import exchange, is_plaintext

    if not coordinators or not is_plaintext(cluster.config):
        return {}
    by_node: dict[tuple[str, int], list[str]] = {}
    for group, node in coordinators.items():
        if node is not None and getattr(node, "host", None):
            by_node.setdefault((node.host, node.port), []).append(group)
    out: dict[str, Epochs] = {}
    for (host, port), groups in sorted(by_node.items()):
        request = ConsumerGroupDescribeRequest(group_ids=tuple(GroupId(g) for g in groups),
                                               include_authorized_operations=False)
        try:
            response = exchange(host, port, request, min(2.0, cluster.timeout))
        except (OSError, ValueError):
            continue
        for described in response.groups:
            if described.error_code == 0:
                out[described.group_id] = Epochs(
                    described.group_state, int(described.group_epoch),
                    int(described.assignment_epoch),
                    {m.member_id: int(m.member_epoch) for m in described.members})
    return out


def group_protocol(description: Any) -> str | None:
    """"consumer" for a KIP-848 group, "classic" for the others, None when the cluster
    does not say (brokers before Kafka 3.7)."""
    kind = getattr(getattr(description, "type", None), "name", "UNKNOWN")
    return {"CONSUMER": "consumer", "CLASSIC": "classic"}.get(kind)


def _lags(group: str, committed: dict[TP, int], assigned: dict[TP, str],
          ends: Mapping[TP, int]) -> list[PartitionLag]:
    rows = []
    for tp in sorted(set(committed) | set(assigned)):
        offset = committed.get(tp)
        end = ends.get(tp)
        rows.append(PartitionLag(group, tp[0], tp[1], offset, end, lag_of(offset, end),
                                 assigned.get(tp)))
    return rows


def _assigned(members: Iterable[GroupMember]) -> dict[TP, str]:
    return {tp: (m.client_id or m.member_id) + (f"/{m.host.lstrip('/')}" if m.host else "")
            for m in members for tp in m.assignments}


def _exists(description: Any, committed: dict[TP, int]) -> bool:
    if isinstance(description, KcliError):
        return False
    state = state_name(description.state)
    return not (state in ("Dead", "Unknown") and not description.members and not committed)


def describe_groups(cluster: Cluster, groups: Sequence[str], *,
                    ends: Mapping[TP, int] | None = None, missing_ok: bool = False,
                    max_in_flight: int | None = None) -> list[GroupDetail]:
    """Members and per-partition lag of the named groups; NotFound for an unknown one
    (``missing_ok``: left out instead, as a group deleted since it was listed).

    End offsets come from one batched ListOffsets call, or from ``ends`` when the caller
    already has them (a dashboard refresh asks once for every partition).
    ``max_in_flight`` limits the DescribeGroups and OffsetFetch requests in flight."""
    descriptions = _describe(cluster, groups, max_in_flight)
    committed: dict[str, dict[TP, int]] = {}
    for group, value in _committed(cluster, groups, max_in_flight).items():
        if isinstance(value, NotFound) and missing_ok:
            continue
        if isinstance(value, KcliError):
            raise value
        committed[group] = {tp: offset for tp, (offset, _meta) in value.items()}
    details: list[tuple[str, Any, tuple[GroupMember, ...]]] = []
    for group in groups:
        description = descriptions.get(group)
        if isinstance(description, KcliError) and not isinstance(description, NotFound):
            raise description
        if description is None or not _exists(description, committed.get(group, {})):
            if missing_ok:
                continue
            raise NotFound(f"group {group!r} does not exist")
        details.append((group, description, _members(description)))
    if ends is None:
        tps = {tp for g, _, _ in details for tp in committed.get(g, {})}
        tps |= {tp for _, _, members in details for tp in _assigned(members)}
        ends = watermarks(cluster, tps).high
    epochs = consumer_group_epochs(cluster, {
        group: getattr(description, "coordinator", None) for group, description, _ in details
        if group_protocol(description) == "consumer"})
    out = []
    for group, description, members in details:
        coordinator = getattr(description, "coordinator", None)
        known = epochs.get(group)
        shown = members if known is None else tuple(
            replace(m, member_epoch=known.members.get(m.member_id)) for m in members)
        out.append(GroupDetail(
            group=group,
            state=known.state if known else group_state(description.state, members),
            protocol_type="simple" if description.is_simple_consumer_group else "consumer",
            protocol=description.partition_assignor or None,
            coordinator=getattr(coordinator, "id", None),
            members=shown,
            partitions=tuple(_lags(group, committed.get(group, {}), _assigned(members), ends)),
            group_protocol=group_protocol(description),
            group_epoch=known.group_epoch if known else None,
            assignment_epoch=known.assignment_epoch if known else None,
        ))
    return out


def describe_group(cluster: Cluster, group: str) -> GroupDetail:
    """One group's detail."""
    return describe_groups(cluster, [group])[0]


def list_groups(cluster: Cluster) -> list[GroupSummary]:
    """Every group with state, member count and total lag."""
    listed = list_group_ids(cluster)
    if not listed:
        return []
    details = describe_groups(cluster, [g for g, _, _ in listed])
    out = []
    for detail in details:
        lags = [p.lag for p in detail.partitions if p.lag is not None]
        out.append(GroupSummary(
            group=detail.group, state=detail.state, members=len(detail.members),
            lag=sum(lags) if lags else None, max_lag=max(lags) if lags else None,
            protocol_type=detail.protocol_type,
            topics=tuple(sorted({p.topic for p in detail.partitions})),
        ))
    return out


def group_lag(cluster: Cluster, group: str | None = None) -> list[PartitionLag]:
    """Per-partition lag of one group, or of every group."""
    if group is not None:
        return list(describe_group(cluster, group).partitions)
    groups = [g for g, _, _ in list_group_ids(cluster)]
    return [row for detail in describe_groups(cluster, groups) for row in detail.partitions]


def plan_reset(cluster: Cluster, group: str, topics: Sequence[str] | None,
               spec: PositionSpec) -> tuple[GroupDetail, list[OffsetChange]]:
    """Where each partition's committed offset would move (nothing is changed)."""
    detail = describe_group_or_empty(cluster, group)
    committed = {(p.topic, p.partition): p.committed for p in detail.partitions
                 if p.committed is not None}
    if topics:
        tps = [(t, p) for t in topics for p in topic_partitions(cluster, t)]
    else:
        tps = sorted(committed)
        if not tps:
            raise BadInput(f"group {group!r} has no committed offsets: name topics with -t")
    marks = watermarks(cluster, tps)
    targets = resolve_positions(cluster, tps, spec, committed=committed, marks=marks)
    changes = [
        OffsetChange(topic=t, partition=p, current=committed.get((t, p)),
                     target=targets[(t, p)][0], low=marks.low.get((t, p)),
                     high=marks.high.get((t, p)), clamped=targets[(t, p)][1])
        for t, p in tps
    ]
    return detail, changes


def describe_group_or_empty(cluster: Cluster, group: str) -> GroupDetail:
    """The group's detail, or an empty one for a group that does not exist yet
    (resetting offsets of a new group is how one pre-positions it)."""
    try:
        return describe_group(cluster, group)
    except NotFound:
        return GroupDetail(group, "Dead", None, None, None, (), ())


def apply_reset(cluster: Cluster, group: str, changes: Sequence[OffsetChange]) -> None:
    """Commit the planned offsets; refuses while the group has active members."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    detail = describe_group_or_empty(cluster, group)
    if detail.members or detail.state not in INACTIVE_STATES:
        raise OperationFailed(
            f"group {group!r} is {detail.state} with {len(detail.members)} member(s); "
            "stop its consumers before resetting offsets")
    if not changes:
        return
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(c.topic, c.partition, c.target) for c in changes])
    (future,) = cluster.admin.alter_consumer_group_offsets(
        [request], request_timeout=cluster.timeout).values()
    result = cluster.wait(future, f"reset offsets of {group}")
    for tp in result.topic_partitions or ():
        if tp.error is not None and tp.error.code() != 0:
            raise from_kafka_error(tp.error, f"reset {tp.topic}[{tp.partition}]")


def delete_groups(cluster: Cluster, groups: Sequence[str]) -> dict[str, KcliError | None]:
    """Delete groups; per group, None or the error it got."""
    if not groups:
        return {}
    futures = cluster.admin.delete_consumer_groups(list(groups),
                                                   request_timeout=cluster.timeout)
    results = cluster.wait_all(futures, "delete group")
    out: dict[str, KcliError | None] = {}
    for group, value in results.items():
        if isinstance(value, NotFound):
            out[group] = NotFound(f"group {group!r} does not exist")
        else:
            out[group] = value if isinstance(value, KcliError) else None
    return out
