"""Topic operations: list, describe, create, delete, configs, partitions, delete records."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kcli.client.cluster import Cluster
from kcli.client.models import ConfigValue, PartitionDetail, TopicDetail, TopicSummary
from kcli.client.offsets import TP, PositionSpec, offsets_for_time, watermarks
from kcli.errors import BadInput, KcliError, NotFound, OperationFailed, from_kafka_error

_GLOB_CHARS = frozenset("*?[")


SCHEMAS_TOPIC = "_schemas"


def is_internal(name: str) -> bool:
    """Kafka's internal topics (__consumer_offsets, __transaction_state, ...) and the
    Schema Registry's store (``_schemas``), which only the registry writes."""
    return name.startswith("__") or name == SCHEMAS_TOPIC


def _topic_error(topic_metadata: Any) -> KcliError | None:
    error = topic_metadata.error
    if error is None or error.code() == 0:
        return None
    if error.name() in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
        return NotFound(f"topic {topic_metadata.topic!r} does not exist")
    return from_kafka_error(error, f"topic {topic_metadata.topic}")


def list_topics(cluster: Cluster, include_internal: bool = False,
                with_size: bool = True) -> list[TopicSummary]:
    """Every topic with partition count, replication, record count and size."""
    metadata = cluster.metadata()
    topics = [t for name, t in metadata.topics.items()
              if (include_internal or not is_internal(name)) and _topic_error(t) is None]
    tps = [(t.topic, p) for t in topics for p in t.partitions]
    marks = watermarks(cluster, tps)
    # here, not at the top: its wire client imports kio (about 0.1 s), which `consume`
    # and `produce` (importing this module for topic_partitions) never need
    from kcli.client.logdirs import topic_sizes

    sizes = topic_sizes(cluster, metadata, [t.topic for t in topics]) if with_size else {}
    out = []
    for topic in sorted(topics, key=lambda t: t.topic):
        counts = []
        for p in topic.partitions:
            low, high = marks.low.get((topic.topic, p)), marks.high.get((topic.topic, p))
            counts.append(None if low is None or high is None else max(0, high - low))
        records = None if any(c is None for c in counts) else sum(c or 0 for c in counts)
        replication = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        out.append(TopicSummary(
            name=topic.topic, partitions=len(topic.partitions), replication=replication,
            records=records, size=sizes.get(topic.topic), internal=is_internal(topic.topic),
        ))
    return out


def topic_partitions(cluster: Cluster, name: str) -> list[int]:
    """Partition ids of a topic; raises NotFound if it does not exist."""
    metadata = cluster.metadata(name)
    topic = metadata.topics.get(name)
    if topic is None:
        raise NotFound(f"topic {name!r} does not exist")
    error = _topic_error(topic)
    if error is not None:
        raise error
    return sorted(topic.partitions)


def topic_layout(cluster: Cluster, name: str) -> tuple[int, int] | None:
    """(partition count, replication factor) as the metadata shows them; None while the
    topic is not listed yet (a new topic reaches every broker's metadata a moment later)."""
    topic = cluster.metadata(name).topics.get(name)
    if topic is None or _topic_error(topic) is not None or not topic.partitions:
        return None
    return len(topic.partitions), max(len(p.replicas) for p in topic.partitions.values())


def describe_topic(cluster: Cluster, name: str, all_configs: bool = False) -> TopicDetail:
    """Partitions (leader, replicas, ISR, watermarks) and configs of one topic."""
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    metadata = cluster.metadata(name)
    topic = metadata.topics.get(name)
    if topic is None:
        raise NotFound(f"topic {name!r} does not exist")
    error = _topic_error(topic)
    if error is not None:
        raise error
    marks = watermarks(cluster, [(name, p) for p in topic.partitions])
    partitions = []
    for pid in sorted(topic.partitions):
        p = topic.partitions[pid]
        partitions.append(PartitionDetail(
            partition=pid, leader=p.leader if p.leader >= 0 else None,
            replicas=tuple(p.replicas), isr=tuple(p.isrs),
            low=marks.low.get((name, pid)), high=marks.high.get((name, pid)),
            error=p.error.str() if p.error is not None and p.error.code() != 0 else None,
        ))
    resource = ConfigResource(ResourceType.TOPIC, name)
    futures = cluster.admin.describe_configs([resource], request_timeout=cluster.timeout)
    entries = cluster.wait(next(iter(futures.values())), f"describe configs of {name}")
    configs = []
    for entry in sorted(entries.values(), key=lambda e: e.name):
        dynamic = entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value or (
            getattr(entry.source, "value", None) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        if not all_configs and not dynamic:
            continue
        configs.append(ConfigValue(
            name=entry.name, value=entry.value, source=_source_name(entry.source),
            sensitive=bool(entry.is_sensitive), read_only=bool(entry.is_read_only),
            is_default=bool(entry.is_default),
        ))
    return TopicDetail(name=name, partitions=tuple(partitions), configs=tuple(configs),
                       internal=is_internal(name))


def _source_name(source: Any) -> str:
    from confluent_kafka.admin import ConfigSource

    try:
        return ConfigSource(getattr(source, "value", source)).name
    except ValueError:
        return str(source)


def create_topic(cluster: Cluster, name: str, partitions: int | None,
                 replication: int | None, configs: Mapping[str, str],
                 if_not_exists: bool = False) -> bool:
    """Create a topic; returns False if it existed and ``if_not_exists``."""
    from confluent_kafka.admin import NewTopic

    new = NewTopic(name, num_partitions=partitions if partitions is not None else -1,
                   replication_factor=replication if replication is not None else -1,
                   config=dict(configs))
    futures = cluster.admin.create_topics([new], operation_timeout=cluster.timeout,
                                          request_timeout=cluster.timeout)
    try:
        cluster.wait(futures[name], f"create topic {name}")
    except OperationFailed as error:
        if if_not_exists and "already exists" in error.message.lower():
            return False
        raise
    return True


def resolve_patterns(cluster: Cluster, patterns: Sequence[str]) -> list[str]:
    """Topic names matching names or glob patterns (``logs-*``). A plain name that does
    not exist, or a pattern matching nothing, raises NotFound."""
    existing = sorted(n for n in cluster.metadata().topics if not is_internal(n))
    chosen: list[str] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            matches = fnmatch.filter(existing, pattern)
            if not matches:
                raise NotFound(f"no topic matches {pattern!r}")
        elif pattern in existing or pattern in cluster.metadata().topics:
            matches = [pattern]
        else:
            raise NotFound(f"topic {pattern!r} does not exist")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def delete_topics(cluster: Cluster, names: Sequence[str]) -> dict[str, KcliError | None]:
    """Delete topics; per topic, None or the error it got."""
    if not names:
        return {}
    futures = cluster.admin.delete_topics(list(names), operation_timeout=cluster.timeout,
                                          request_timeout=cluster.timeout)
    results = cluster.wait_all(futures, "delete topic")
    return {name: (value if isinstance(value, KcliError) else None)
            for name, value in results.items()}


def alter_configs(cluster: Cluster, name: str, set_configs: Mapping[str, str],
                  delete: Iterable[str] = ()) -> None:
    """Incrementally set and delete (revert to default) topic configs."""
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in set_configs.items()]
    entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                for k in delete]
    if not entries:
        raise BadInput("nothing to change: give -c key=value or --delete key")
    topic_partitions(cluster, name)  # NotFound before the broker's generic error
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
    futures = cluster.admin.incremental_alter_configs([resource],
                                                      request_timeout=cluster.timeout)
    cluster.wait(next(iter(futures.values())), f"alter configs of {name}")


def add_partitions(cluster: Cluster, name: str, count: int) -> tuple[int, int]:
    """Add ``count`` partitions; returns (before, after)."""
    from confluent_kafka.admin import NewPartitions

    if count < 1:
        raise BadInput("add-partitions needs a positive number of partitions to add")
    before = len(topic_partitions(cluster, name))
    futures = cluster.admin.create_partitions([NewPartitions(name, before + count)],
                                              operation_timeout=cluster.timeout,
                                              request_timeout=cluster.timeout)
    cluster.wait(futures[name], f"add partitions to {name}")
    return before, before + count


@dataclass(frozen=True)
class DeletedRecords:
    """Outcome of delete-records on one partition."""

    partition: int
    before: int
    low: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"partition": self.partition, "before": self.before, "low": self.low}


def delete_records(cluster: Cluster, name: str, before: PositionSpec,
                   partitions: Sequence[int] | None = None) -> list[DeletedRecords]:
    """Delete records below an offset (the same on each partition) or below the first
    record at or after a time. Offsets beyond the end are BadInput."""
    from confluent_kafka import TopicPartition

    all_partitions = topic_partitions(cluster, name)
    chosen = list(partitions) if partitions else all_partitions
    missing = [p for p in chosen if p not in all_partitions]
    if missing:
        raise NotFound(f"topic {name!r} has no partition {missing[0]}")
    tps: list[TP] = [(name, p) for p in chosen]
    marks = watermarks(cluster, tps)
    targets: dict[int, int] = {}
    if before.kind == "offset":
        for _, p in tps:
            high = marks.high.get((name, p), 0)
            if before.value > high:
                raise BadInput(f"offset {before.value} is beyond the end of "
                               f"{name}[{p}] ({high})")
            targets[p] = before.value
    elif before.kind == "time":
        found = offsets_for_time(cluster, tps, before.value)
        for tp in tps:
            offset = found.get(tp)
            targets[tp[1]] = marks.high.get(tp, 0) if offset is None else offset
    elif before.kind == "end":
        targets = {p: marks.high.get((name, p), 0) for _, p in tps}
    else:
        raise BadInput("--before takes an OFFSET, a TIME (ISO-8601) or 'end'")
    futures = cluster.admin.delete_records(
        [TopicPartition(name, p, off) for p, off in targets.items()],
        request_timeout=cluster.timeout, operation_timeout=cluster.timeout)
    out = []
    for tp, value in cluster.wait_all(futures, f"delete records of {name}").items():
        if isinstance(value, KcliError):
            raise value
        out.append(DeletedRecords(tp.partition, targets[tp.partition], value.low_watermark))
    return sorted(out, key=lambda d: d.partition)
