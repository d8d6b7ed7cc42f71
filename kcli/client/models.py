"""Plain dataclasses returned by the client layer (no confluent-kafka types leak out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def lag_of(committed: int | None, end: int | None) -> int | None:
    """Records a group still has to read: max(0, end - committed); None if unknown."""
    if committed is None or end is None or committed < 0 or end < 0:
        return None
    return max(0, end - committed)


@dataclass(frozen=True)
class TopicSummary:
    """One line of `topic list`."""

    name: str
    partitions: int
    replication: int
    records: int | None
    """Sum over partitions of high - low watermark (None if offsets were unavailable)."""
    size: int | None
    """Bytes on disk of the leader replicas, when the cluster reports log dirs."""
    internal: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class PartitionDetail:
    """One partition of `topic describe`."""

    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    low: int | None
    high: int | None
    error: str | None = None

    @property
    def records(self) -> int | None:
        """high - low."""
        if self.low is None or self.high is None:
            return None
        return max(0, self.high - self.low)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["replicas"] = list(self.replicas)
        data["isr"] = list(self.isr)
        data["records"] = self.records
        if data["error"] is None:
            del data["error"]
        return data


@dataclass(frozen=True)
class ConfigValue:
    """One topic config as the cluster reports it."""

    name: str
    value: str | None
    source: str
    sensitive: bool = False
    read_only: bool = False
    is_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (sensitive values are never exposed)."""
        return {"name": self.name, "value": None if self.sensitive else self.value,
                "source": self.source, "sensitive": self.sensitive,
                "read_only": self.read_only}


@dataclass(frozen=True)
class TopicDetail:
    """`topic describe`: partitions with offsets, and the non-default configs."""

    name: str
    partitions: tuple[PartitionDetail, ...]
    configs: tuple[ConfigValue, ...]
    internal: bool = False

    @property
    def replication(self) -> int:
        """Replicas of the first partition (all partitions of a topic usually agree)."""
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def records(self) -> int | None:
        """Sum of partition record counts."""
        counts = [p.records for p in self.partitions]
        if any(c is None for c in counts):
            return None
        return sum(c for c in counts if c is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name, "internal": self.internal,
            "partition_count": len(self.partitions), "replication": self.replication,
            "records": self.records,
            "partitions": [p.to_dict() for p in self.partitions],
            "configs": {c.name: (None if c.sensitive else c.value) for c in self.configs},
        }


@dataclass(frozen=True)
class PartitionLag:
    """A group's position on one partition."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int | None
    member: str | None = None
    """Client id / host of the member the partition is assigned to, if any."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class GroupMember:
    """A member of a consumer group and the partitions assigned to it."""

    member_id: str
    client_id: str
    host: str
    assignments: tuple[tuple[str, int], ...] = ()
    target: tuple[tuple[str, int], ...] | None = None
    """What the coordinator is moving the member to (consumer protocol groups only)."""
    member_epoch: int | None = None
    """The member's epoch (consumer protocol groups, when the cluster told it)."""

    @property
    def reconciling(self) -> bool:
        """Whether the member has not yet reached its target assignment."""
        return self.target is not None and self.target != self.assignments

    def owned_text(self) -> str:
        """Its partitions as ``t[0],t[1]``, and `` → `` the target while it reconciles."""
        owned = partition_list(self.assignments)
        if self.reconciling:
            owned += " → " + partition_list(self.target or ())
        return owned

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = {
            "member_id": self.member_id, "client_id": self.client_id, "host": self.host,
            "assignments": [{"topic": t, "partition": p} for t, p in self.assignments]}
        if self.target is not None:
            data["target"] = [{"topic": t, "partition": p} for t, p in self.target]
        if self.member_epoch is not None:
            data["member_epoch"] = self.member_epoch
        return data


def partition_list(partitions: Sequence[tuple[str, int]]) -> str:
    """Partitions as ``topic[N],...``, or ``-`` for none."""
    return ",".join(f"{t}[{p}]" for t, p in partitions) or "-"


@dataclass(frozen=True)
class GroupSummary:
    """One line of `group list`."""

    group: str
    state: str
    members: int
    lag: int | None
    max_lag: int | None
    protocol_type: str | None = None
    topics: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["topics"] = list(self.topics)
        return data


@dataclass(frozen=True)
class GroupDetail:
    """`group describe`: members and per-partition committed/end/lag."""

    group: str
    state: str
    protocol_type: str | None
    protocol: str | None
    coordinator: int | None
    members: tuple[GroupMember, ...]
    partitions: tuple[PartitionLag, ...]
    group_protocol: str | None = None
    """"consumer" (KIP-848, the coordinator assigns) or "classic"; None if not known."""
    group_epoch: int | None = None
    assignment_epoch: int | None = None
    """Epochs of a consumer protocol group (its target assignment's is the second)."""

    @property
    def lag(self) -> int | None:
        """Total lag over partitions with a known lag."""
        lags = [p.lag for p in self.partitions if p.lag is not None]
        return sum(lags) if lags else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "group": self.group, "state": self.state, "protocol_type": self.protocol_type,
            "group_protocol": self.group_protocol, "group_epoch": self.group_epoch,
            "assignment_epoch": self.assignment_epoch, "protocol": self.protocol,
            "coordinator": self.coordinator, "lag": self.lag,
            "members": [m.to_dict() for m in self.members],
            "partitions": [p.to_dict() for p in self.partitions],
        }


@dataclass(frozen=True)
class OffsetChange:
    """One line of a `group reset` plan."""

    topic: str
    partition: int
    current: int | None
    target: int
    low: int | None = None
    high: int | None = None
    clamped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["lag_after"] = lag_of(self.target, self.high)
        return data


@dataclass
class Watermarks:
    """Low and high watermarks of many partitions, keyed by (topic, partition)."""

    low: dict[tuple[str, int], int] = field(default_factory=dict)
    high: dict[tuple[str, int], int] = field(default_factory=dict)
    errors: dict[tuple[str, int], Any] = field(default_factory=dict)
    """Why a partition's lookup failed (a KcliError), for those absent from low/high."""
    stable: dict[tuple[str, int], int] = field(default_factory=dict)
    """Last stable offsets (the end a read_committed consumer sees), when asked for."""


@dataclass(frozen=True)
class BrokerInfo:
    """One broker as the cluster's metadata lists it."""

    id: int
    host: str
    port: int


@dataclass(frozen=True)
class PartitionLayout:
    """Where one partition lives: leader (None while offline), replicas, in-sync replicas."""

    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: str | None = None

    @property
    def offline(self) -> bool:
        """No leader."""
        return self.leader is None

    @property
    def under_replicated(self) -> bool:
        """Fewer in-sync replicas than replicas."""
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class ClusterLayout:
    """Brokers, controller and every topic's partitions, from one Metadata request."""

    cluster_id: str | None
    controller: int | None
    brokers: tuple[BrokerInfo, ...]
    topics: dict[str, tuple[PartitionLayout, ...]] = field(default_factory=dict)
    """Partitions of each topic, by partition id; topics with an error are left out."""


@dataclass(frozen=True)
class Transaction:
    """A transactional id as its coordinator knows it."""

    transactional_id: str
    producer_id: int
    state: str
    coordinator: int
    producer_epoch: int = -1
    timeout_ms: int = -1
    start_ms: int = -1
    """When the open transaction began, ms since the epoch (-1: none open)."""
    partitions: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out = asdict(self)
        out["partitions"] = [{"topic": t, "partition": p} for t, p in self.partitions]
        return out
