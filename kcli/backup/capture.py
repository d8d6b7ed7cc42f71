"""Reading a source cluster's state: topic layouts, the snapshot cut, committed offsets.

Shared by backup and migrate; everything goes through :mod:`kcli.client`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kcli.backup.archive import GroupOffset, TopicLayout
from kcli.client.cluster import Cluster
from kcli.client.offsets import TP, no_offsets_error, offsets_for_time, watermarks
from kcli.errors import KcliError, NotFound

# Configs a topic is created without, and given once its records are written back:
# with them in place the broker would overwrite the timestamps being restored
# (LogAppendTime) or refuse old ones.
DEFERRED_CONFIGS = frozenset({
    "message.timestamp.type", "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
})


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def cluster_id(cluster: Cluster) -> str | None:
    """The cluster id from Metadata (None if the cluster does not say)."""
    return getattr(cluster.metadata(), "cluster_id", None) or None


def layouts(cluster: Cluster, names: Sequence[str]) -> dict[str, TopicLayout]:
    """Partitions, replication factor and non-default (dynamic) configs of topics: one
    Metadata and one DescribeConfigs request for all of them."""
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    metadata = cluster.metadata()
    for name in names:
        topic = metadata.topics.get(name)
        if topic is None or (topic.error is not None and topic.error.code() != 0):
            raise NotFound(f"topic {name!r} does not exist")
    configs: dict[str, dict[str, str]] = {name: {} for name in names}
    if names:
        futures = cluster.admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, name) for name in names],
            request_timeout=cluster.timeout)
        dynamic = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        for resource, entries in cluster.wait_all(futures, "describe configs of").items():
            if isinstance(entries, KcliError):
                raise entries
            configs[resource.name] = {
                entry.name: entry.value for entry in entries.values()
                if getattr(entry.source, "value", entry.source) == dynamic
                and entry.value is not None and not entry.is_sensitive}
    out = {}
    for name in names:
        topic = metadata.topics[name]
        replication = max((len(p.replicas) for p in topic.partitions.values()), default=1)
        out[name] = TopicLayout(name, len(topic.partitions), replication, configs[name])
    return out


@dataclass(frozen=True)
class Cut:
    """Where a snapshot of one partition starts and stops."""

    low: int
    high: int
    stable: int
    """Last stable offset (what a read_committed consumer can reach)."""
    target: int
    """The snapshot stops before this offset: min(stable, --until)."""


def stable_offsets(cluster: Cluster, tps: Iterable[TP]) -> dict[TP, int]:
    """Last stable offsets (ListOffsets latest with read_committed isolation)."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    tps = sorted(set(tps))
    if not tps:
        return {}
    futures = cluster.admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
        isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=cluster.timeout)
    out = {}
    for tp, value in cluster.wait_all(futures, "list stable offsets").items():
        if isinstance(value, KcliError):
            raise value
        out[(tp.topic, tp.partition)] = value.offset
    return out


def cuts(cluster: Cluster, tps: Sequence[TP], until_ms: int | None = None) -> dict[TP, Cut]:
    """The snapshot cut of every partition, read once at the start of a run."""
    marks = watermarks(cluster, tps)
    stable = stable_offsets(cluster, tps)
    by_time = offsets_for_time(cluster, tps, until_ms) if until_ms is not None else {}
    out = {}
    for tp in tps:
        if tp not in marks.low or tp not in marks.high:
            raise no_offsets_error(cluster, tp, marks)
        high = marks.high[tp]
        last_stable = min(stable.get(tp, high), high)
        target = last_stable
        if until_ms is not None:
            found = by_time.get(tp)
            if found is not None:
                target = min(target, found)
        out[tp] = Cut(marks.low[tp], high, last_stable, target)
    return out


def group_commits(cluster: Cluster, topics: Iterable[str]) -> list[GroupOffset]:
    """Every group's committed offsets (and metadata) on the given topics."""
    from kcli.client.groups import committed_offsets_with_metadata, list_group_ids

    wanted = set(topics)
    groups = [g for g, _state, _kind in list_group_ids(cluster)]
    captured = now_ms()
    out = []
    for group, offsets in committed_offsets_with_metadata(cluster, groups).items():
        for (topic, partition), (offset, metadata) in sorted(offsets.items()):
            if topic in wanted:
                out.append(GroupOffset(group, topic, partition, offset, metadata, captured))
    return sorted(out, key=lambda g: (g.group, g.topic, g.partition))
