"""What the screens render: immutable snapshots built from what one refresh fetched.

:class:`SnapshotBuilder` is pure: it is fed :class:`Sample` objects (client models and a
poll time) and keeps the history that rates, lag trends, Burrow-like statuses and time
lag need. The service feeds it from the cluster; the snapshot tests feed it fixed data.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kcli.client.models import (
    BrokerInfo,
    ClusterLayout,
    GroupDetail,
    GroupMember,
    PartitionDetail,
    Transaction,
    Watermarks,
)
from kcli.tui.lag import (
    WINDOW,
    EndOffsetTable,
    Point,
    Status,
    TimeLag,
    clamp_lag,
    partition_status,
    rate,
    slope,
    worst,
)

TP = tuple[str, int]
TREND_SECONDS = 300.0
"""How much lag history a group's sparkline covers."""
SLOPE_SECONDS = 60.0
"""The stretch of history a growing/draining badge looks at."""
CONSUME_RATE_SECONDS = 30.0
"""The stretch of committed offsets a group's consume rate is measured over. Consumers
commit in steps (auto-commit every 5 s by default) while the dashboard polls every 2 s:
a rate over one poll swings between 0 and more than twice the real one. Over several
commit intervals it is what the offsets really moved."""
MIN_CONSUME_RATE_SECONDS = 5.0
"""No consume rate before this much history: one auto-commit interval."""


@dataclass(frozen=True)
class Sample:
    """What one refresh fetched."""

    t: float
    """Poll time: seconds since the epoch when the refresh started."""
    took: float
    """Seconds the refresh took."""
    layout: ClusterLayout
    marks: Watermarks
    groups: Sequence[GroupDetail]
    sizes: Mapping[str, int] | None = None
    """Bytes per topic, or None when not measured by this refresh (the last known
    sizes are kept)."""
    expected_brokers: Mapping[int, tuple[str, int]] = field(default_factory=dict)
    """Brokers that should be there, {id: (host, port)}: a local cluster's, from its
    registry. Metadata lists only live brokers."""
    transactions: Sequence[Transaction] | None = None
    """Open transactions (Ongoing or being ended), None when the cluster could not
    say."""


@dataclass(frozen=True)
class BrokerRow:
    """A broker with the partitions it leads and holds."""

    id: int
    host: str
    port: int
    controller: bool
    leaders: int
    replicas: int
    up: bool = True
    """False for a broker that is expected but missing from the cluster's metadata."""


@dataclass(frozen=True)
class PartitionRow(PartitionDetail):
    """One partition of a topic, as `topic describe` has it, with its produce rate."""

    rate: float | None = None
    stable: int | None = None
    """The last stable offset: below the high watermark while a transaction is open."""

    @property
    def under_replicated(self) -> bool:
        """Fewer in-sync replicas than replicas."""
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class TopicRow:
    """One topic of the topics table."""

    name: str
    partitions: int
    replication: int
    records: int | None
    size: int | None
    rate: float | None
    internal: bool
    under_replicated: int
    offline: int


@dataclass(frozen=True)
class GroupPartitionRow:
    """A group's position on one partition."""

    topic: str
    partition: int
    committed: int | None
    end: int | None
    low: int | None
    lag: int | None
    time_lag: TimeLag
    status: Status
    member: str | None

    @property
    def lost(self) -> bool:
        """The committed offset fell below the earliest retained offset: records the
        group never read are gone."""
        return self.committed is not None and self.low is not None and self.committed < self.low


@dataclass(frozen=True)
class GroupRow:
    """One group of the groups table."""

    group: str
    state: str
    members: int
    lag: int | None
    max_lag: int | None
    trend: tuple[int, ...]
    """Total lag at each of the last polls, oldest first."""
    slope: float | None
    """Change of the total lag in records/s over the last minute (> 0: growing)."""
    status: Status | None
    """Worst partition status; None without committed offsets."""
    window: int
    """Polls in the fullest partition window (out of the snapshot's ``window``)."""
    consume_rate: float | None
    topics: tuple[str, ...]
    protocol_type: str | None = None


@dataclass(frozen=True)
class GroupView:
    """Everything the group screen shows."""

    row: GroupRow
    protocol: str | None
    coordinator: int | None
    members: tuple[GroupMember, ...]
    partitions: tuple[GroupPartitionRow, ...]
    group_protocol: str | None = None
    """"consumer" (KIP-848) or "classic"."""
    group_epoch: int | None = None
    assignment_epoch: int | None = None


@dataclass(frozen=True, eq=False)
class ClusterSnapshot:
    """The cluster at one poll."""

    t: float
    took: float
    interval: float
    bootstrap: str
    cluster_id: str | None
    controller: int | None
    brokers: tuple[BrokerRow, ...]
    topics: tuple[TopicRow, ...]
    partitions: Mapping[str, tuple[PartitionRow, ...]]
    groups: tuple[GroupRow, ...]
    group_views: Mapping[str, GroupView]
    produce_rate: float | None
    consume_rate: float | None
    window: int = WINDOW
    groups_by_state: tuple[tuple[str, int], ...] = ()
    partition_count: int = 0
    under_replicated: int = 0
    offline: int = 0
    sizes_known: bool = field(default=False)
    transactions: tuple[Transaction, ...] | None = None
    """Open transactions, None when unknown."""

    def topic(self, name: str) -> TopicRow | None:
        """One topic's row, if it exists."""
        for row in self.topics:
            if row.name == name:
                return row
        return None


class SnapshotBuilder:
    """Turns samples into snapshots, keeping the history between them."""

    def __init__(self, *, bootstrap: str = "", interval: float = 2.0, window: int = WINDOW,
                 trend_seconds: float = TREND_SECONDS) -> None:
        self.bootstrap = bootstrap
        self.interval = interval
        self.window = window
        self._trend_len = max(2, int(trend_seconds / max(interval, 0.1)))
        self._prev_t: float | None = None
        self._prev_high: dict[TP, int] = {}
        self._committed: dict[str, deque[tuple[float, dict[TP, int]]]] = {}
        self._ends: dict[TP, EndOffsetTable] = {}
        self._windows: dict[tuple[str, TP], deque[Point]] = {}
        self._trends: dict[str, deque[tuple[float, int]]] = {}
        self._sizes: dict[str, int] | None = None
        self._seen_brokers: dict[int, BrokerInfo] = {}

    def add(self, sample: Sample) -> ClusterSnapshot:
        """Fold one sample into the history and return the snapshot it makes."""
        t = sample.t
        dt = t - self._prev_t if self._prev_t is not None else 0.0
        layout, marks = sample.layout, sample.marks
        if sample.sizes is not None:
            self._sizes = dict(sample.sizes)
        sizes = self._sizes or {}

        for tp, end_offset in marks.high.items():
            table = self._ends.get(tp)
            if table is None:
                table = self._ends[tp] = EndOffsetTable()
            table.add(end_offset, t)

        partitions: dict[str, tuple[PartitionRow, ...]] = {}
        topics: list[TopicRow] = []
        leaders: Counter[int] = Counter()
        replicas: Counter[int] = Counter()
        produced_now: dict[TP, int] = {}
        for name in sorted(layout.topics):
            rows = []
            for p in layout.topics[name]:
                tp = (name, p.partition)
                high = marks.high.get(tp)
                before = self._prev_high.get(tp)
                p_rate = (max(0, high - before) / dt
                          if high is not None and before is not None and dt > 0 else None)
                rows.append(PartitionRow(p.partition, p.leader, p.replicas, p.isr,
                                         marks.low.get(tp), high, p.error, rate=p_rate,
                                         stable=marks.stable.get(tp)))
                if p.leader is not None:
                    leaders[p.leader] += 1
                for replica in p.replicas:
                    replicas[replica] += 1
                if high is not None and not name.startswith("__"):
                    produced_now[tp] = high
            partitions[name] = tuple(rows)
            counts = [r.records for r in rows]
            rates = [r.rate for r in rows]
            topics.append(TopicRow(
                name=name, partitions=len(rows),
                replication=max((len(r.replicas) for r in rows), default=0),
                records=None if any(c is None for c in counts) else sum(c or 0 for c in counts),
                size=sizes.get(name),
                rate=None if not rows or any(r is None for r in rates)
                else sum(r or 0.0 for r in rates),
                internal=name.startswith("__"),
                under_replicated=sum(1 for r in rows if r.under_replicated),
                offline=sum(1 for r in rows if r.leader is None),
            ))
        produce_rate = rate({k: v for k, v in self._prev_high.items()
                             if not k[0].startswith("__")}, produced_now, dt)

        groups, views, consume_total = self._groups(sample)

        brokers = self._brokers(sample, leaders, replicas)
        states = Counter(g.state for g in groups)
        snapshot = ClusterSnapshot(
            t=t, took=sample.took, interval=self.interval, bootstrap=self.bootstrap,
            cluster_id=layout.cluster_id, controller=layout.controller, brokers=brokers,
            topics=tuple(topics), partitions=partitions, groups=tuple(groups),
            group_views=views, produce_rate=produce_rate, consume_rate=consume_total,
            window=self.window, groups_by_state=tuple(sorted(states.items())),
            partition_count=sum(len(rows) for rows in partitions.values()),
            under_replicated=sum(r.under_replicated for r in topics),
            offline=sum(r.offline for r in topics), sizes_known=self._sizes is not None,
            transactions=tuple(sample.transactions) if sample.transactions is not None
            else None,
        )
        self._forget(layout, groups)
        self._prev_t = t
        self._prev_high = dict(marks.high)
        return snapshot

    def _brokers(self, sample: Sample, leaders: Counter[int], replicas: Counter[int],
                 ) -> tuple[BrokerRow, ...]:
        """Live brokers, and as down the ones that vanished from the metadata: seen in
        an earlier poll, named in a replica assignment, or expected by the registry."""
        layout = sample.layout
        live = {b.id: b for b in layout.brokers}
        self._seen_brokers.update(live)
        known = dict(self._seen_brokers)
        for node_id, (host, port) in sample.expected_brokers.items():
            known.setdefault(node_id, BrokerInfo(node_id, host, port))
        for node_id in replicas:
            known.setdefault(node_id, BrokerInfo(node_id, "?", 0))
        return tuple(BrokerRow(b.id, b.host, b.port, b.id == layout.controller,
                               leaders[b.id], replicas[b.id], up=b.id in live)
                     for b in sorted(known.values(), key=lambda b: b.id))

    def _groups(self, sample: Sample) -> tuple[list[GroupRow], dict[str, GroupView], float | None]:
        t = sample.t
        rows: list[GroupRow] = []
        views: dict[str, GroupView] = {}
        consume_total: float | None = None
        for detail in sorted(sample.groups, key=lambda g: g.group):
            committed_now: dict[TP, int] = {}
            partition_rows: list[GroupPartitionRow] = []
            lags: list[int] = []
            fullest = 0
            for p in detail.partitions:
                tp = (p.topic, p.partition)
                end = p.end if p.end is not None else sample.marks.high.get(tp)
                lag = clamp_lag(p.committed, end)
                status = Status.OK
                if p.committed is not None and end is not None:
                    committed_now[tp] = p.committed
                    window = self._windows.get((detail.group, tp))
                    if window is None:
                        window = self._windows[(detail.group, tp)] = deque(maxlen=self.window)
                    window.append(Point(t, p.committed, end))
                    fullest = max(fullest, len(window))
                    status = partition_status(window, assigned=p.member is not None)
                if lag is not None:
                    lags.append(lag)
                table = self._ends.get(tp)
                time_lag = table.time_lag(p.committed, t) if table is not None else TimeLag(
                    "unknown")
                partition_rows.append(GroupPartitionRow(
                    topic=p.topic, partition=p.partition, committed=p.committed, end=end,
                    low=sample.marks.low.get(tp), lag=lag, time_lag=time_lag, status=status,
                    member=p.member))
            total = sum(lags) if lags else None
            trend = self._trends.get(detail.group)
            if trend is None:
                trend = self._trends[detail.group] = deque(maxlen=self._trend_len)
            if total is not None:
                trend.append((t, total))
            recent = [(pt, float(v)) for pt, v in trend if pt >= t - SLOPE_SECONDS]
            group_rate = self._consume_rate(detail.group, t, committed_now)
            if group_rate is not None:
                consume_total = (consume_total or 0.0) + group_rate
            row = GroupRow(
                group=detail.group, state=detail.state, members=len(detail.members),
                lag=total, max_lag=max(lags) if lags else None,
                trend=tuple(v for _, v in trend), slope=slope(recent),
                status=worst(r.status for r in partition_rows) if committed_now else None,
                window=fullest, consume_rate=group_rate,
                topics=tuple(sorted({p.topic for p in detail.partitions})),
                protocol_type=detail.protocol_type,
            )
            rows.append(row)
            views[detail.group] = GroupView(row, detail.protocol, detail.coordinator,
                                            detail.members, tuple(partition_rows),
                                            detail.group_protocol, detail.group_epoch,
                                            detail.assignment_epoch)
        return rows, views, consume_total

    def _consume_rate(self, group: str, t: float, committed: dict[TP, int]) -> float | None:
        """Records per second the group's committed offsets moved over the last
        CONSUME_RATE_SECONDS (from the newest sample at least that old, else the
        oldest); None with less than MIN_CONSUME_RATE_SECONDS of history."""
        history = self._committed.get(group)
        if history is None:
            history = self._committed[group] = deque()
        history.append((t, committed))
        while len(history) > 1 and history[1][0] <= t - CONSUME_RATE_SECONDS:
            history.popleft()
        then, before = history[0]
        if t - then < MIN_CONSUME_RATE_SECONDS:
            return None
        return rate(before, committed, t - then)

    def _forget(self, layout: ClusterLayout, groups: Sequence[GroupRow]) -> None:
        """Drop the history of partitions and groups that are gone."""
        live_tps = {(name, p.partition) for name, ps in layout.topics.items() for p in ps}
        for tp in [tp for tp in self._ends if tp not in live_tps]:
            del self._ends[tp]
        live_groups = {g.group for g in groups}
        for key in [k for k in self._windows
                    if k[0] not in live_groups or k[1] not in live_tps]:
            del self._windows[key]
        for group in [g for g in self._trends if g not in live_groups]:
            del self._trends[group]
        for group in [g for g in self._committed if g not in live_groups]:
            del self._committed[group]
