"""Offsets: batched watermark and timestamp lookups, and where a read or reset starts.

Lookups use one ListOffsets call for any number of partitions (``AdminClient.list_offsets``),
never one consumer per partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kcli.client.cluster import Cluster
from kcli.client.models import Watermarks
from kcli.errors import BadInput, KcliError, OperationFailed, Unreachable

TP = tuple[str, int]

SpecKind = Literal["beginning", "end", "offset", "last", "time", "shift", "committed"]


@dataclass(frozen=True)
class PositionSpec:
    """A position on every partition: ``beginning``/``earliest``, ``end``/``latest``, an
    absolute ``offset``, the ``last`` N records (``-N``), a ``time`` (ISO-8601),
    ``shift:N`` from the committed offset (reset only), or the group's ``committed``."""

    kind: SpecKind
    value: int = 0

    def __str__(self) -> str:
        if self.kind in ("offset", "time"):
            return f"{self.kind} {self.value}"
        if self.kind in ("last", "shift"):
            return f"{self.kind} {self.value}"
        return self.kind


def parse_position(text: str, *, allow_shift: bool = False, option: str = "--from") -> PositionSpec:
    """Parse a user's position; raises BadInput naming the accepted forms."""
    from kcli.formats.times import parse_time_ms

    raw = text.strip()
    lowered = raw.lower()
    if lowered in ("beginning", "earliest", "start", "oldest"):
        return PositionSpec("beginning")
    if lowered in ("end", "latest", "newest"):
        return PositionSpec("end")
    if allow_shift and lowered.startswith("shift:"):
        amount = lowered[len("shift:"):]
        try:
            return PositionSpec("shift", int(amount))
        except ValueError:
            pass
    elif raw.isdigit():
        return PositionSpec("offset", int(raw))
    elif raw.startswith("-") and raw[1:].isdigit() and not allow_shift:
        return PositionSpec("last", int(raw[1:]))
    else:
        try:
            return PositionSpec("time", parse_time_ms(raw))
        except ValueError:
            pass
    forms = "beginning, end, OFFSET, " + ("TIME (ISO-8601) or shift:N" if allow_shift
                                         else "-N (last N records) or TIME (ISO-8601)")
    raise BadInput(f"{option}: bad offset {text!r} (use {forms})")


def watermarks(cluster: Cluster, partitions: Iterable[TP], *, stable: bool = False
               ) -> Watermarks:
    """Low and high watermarks of many partitions: two batched ListOffsets calls, and a
    third for the last stable offsets with ``stable``. Partitions whose lookup failed are
    absent from the result."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    tps = sorted(set(partitions))
    result = Watermarks()
    if not tps:
        return result
    lookups = [(OffsetSpec.earliest(), result.low, IsolationLevel.READ_UNCOMMITTED),
               (OffsetSpec.latest(), result.high, IsolationLevel.READ_UNCOMMITTED)]
    if stable:
        lookups.append((OffsetSpec.latest(), result.stable, IsolationLevel.READ_COMMITTED))
    for spec, target, isolation in lookups:
        futures = cluster.admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in tps}, isolation_level=isolation,
            request_timeout=cluster.timeout)
        for tp, value in cluster.wait_all(futures, "list offsets").items():
            if not isinstance(value, KcliError):
                target[(tp.topic, tp.partition)] = value.offset
            else:
                result.errors.setdefault((tp.topic, tp.partition), value)
    return result


def no_offsets_error(cluster: Cluster, tp: TP, marks: Watermarks) -> KcliError:
    """Why a partition has no watermarks, as specific as the cluster can tell: most
    often it has no leader (its brokers are down), which is exit 3, not bad input."""
    name = f"{tp[0]}[{tp[1]}]"
    try:
        topic = cluster.metadata(tp[0]).topics.get(tp[0])
        partition = topic.partitions.get(tp[1]) if topic is not None else None
    except KcliError:
        partition = None
    if partition is not None and partition.leader < 0:
        replicas = ", ".join(map(str, partition.replicas)) or "none"
        return Unreachable(f"{name} has no leader: none of its replicas (brokers {replicas}) "
                           "is available")
    error = marks.errors.get(tp)
    if isinstance(error, KcliError):
        return error
    return OperationFailed(f"no offsets for {name}")


def offsets_for_time(cluster: Cluster, partitions: Iterable[TP], timestamp_ms: int,
                     ) -> dict[TP, int | None]:
    """First offset with a timestamp >= ``timestamp_ms`` per partition (None: no such
    record, i.e. the end). One batched ListOffsets call."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    tps = sorted(set(partitions))
    if not tps:
        return {}
    futures = cluster.admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.for_timestamp(timestamp_ms) for t, p in tps},
        request_timeout=cluster.timeout)
    out: dict[TP, int | None] = {}
    for tp, value in cluster.wait_all(futures, "offsets for time").items():
        if isinstance(value, KcliError):
            raise value
        out[(tp.topic, tp.partition)] = value.offset if value.offset >= 0 else None
    return out


def resolve_positions(cluster: Cluster, partitions: Iterable[TP], spec: PositionSpec,
                      committed: dict[TP, int] | None = None,
                      marks: Watermarks | None = None) -> dict[TP, tuple[int, bool]]:
    """Concrete offsets for ``spec`` on each partition, clamped to [low, high]:
    {tp: (offset, clamped)}."""
    tps = sorted(set(partitions))
    marks = marks or watermarks(cluster, tps)
    by_time: dict[TP, int | None] = {}
    if spec.kind == "time":
        by_time = offsets_for_time(cluster, tps, spec.value)
    out: dict[TP, tuple[int, bool]] = {}
    for tp in tps:
        low, high = marks.low.get(tp), marks.high.get(tp)
        if low is None or high is None:
            raise no_offsets_error(cluster, tp, marks)
        if spec.kind == "beginning":
            wanted = low
        elif spec.kind == "end":
            wanted = high
        elif spec.kind == "offset":
            wanted = spec.value
        elif spec.kind == "last":
            wanted = high - spec.value
        elif spec.kind == "time":
            found = by_time.get(tp)
            wanted = high if found is None else found
        elif spec.kind == "shift":
            base = (committed or {}).get(tp)
            wanted = (low if base is None or base < 0 else base) + spec.value
        else:  # committed
            base = (committed or {}).get(tp)
            wanted = low if base is None or base < 0 else base
        clamped_value = min(max(wanted, low), high)
        clamped = clamped_value != wanted and spec.kind in ("offset", "shift")
        out[tp] = (clamped_value, clamped)
    return out
