"""A made-up cluster for the model and snapshot tests: fixed samples fed to the real
SnapshotBuilder, and a data service that hands them out (no broker, no clock)."""

from __future__ import annotations

from collections.abc import Sequence

from kcli.client.models import (
    BrokerInfo,
    ClusterLayout,
    GroupDetail,
    GroupMember,
    OffsetChange,
    PartitionLag,
    PartitionLayout,
    Transaction,
    Watermarks,
    lag_of,
)
from kcli.formats.envelope import Record
from kcli.tui.model import ClusterSnapshot, Sample, SnapshotBuilder
from kcli.tui.service import ResetPlan

TP = tuple[str, int]
T0 = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC: the first poll."""
STEP = 2.0

LAYOUT = ClusterLayout(
    cluster_id="fake-cluster-id", controller=1,
    brokers=(BrokerInfo(1, "kafka-1.local", 9092), BrokerInfo(2, "kafka-2.local", 9092)),
    topics={
        "orders": (PartitionLayout(0, 1, (1, 2), (1, 2)), PartitionLayout(1, 2, (2, 1), (2,)),
                   PartitionLayout(2, 1, (1, 2), (1, 2))),
        "payments": (PartitionLayout(0, 2, (2, 1), (2, 1)),),
        "__consumer_offsets": (PartitionLayout(0, 1, (1,), (1,)),),
    },
)
MEMBER = GroupMember("billing-1-0f3a", "billing-1", "/10.0.0.7",
                     (("orders", 0), ("orders", 1), ("orders", 2)))


def ends_at(i: int) -> dict[TP, int]:
    """End offsets at poll i: orders grow by 40 records a poll per partition,
    payments by 10, the offsets topic by 3."""
    return {("orders", 0): 1000 + 40 * i, ("orders", 1): 2000 + 40 * i,
            ("orders", 2): 500 + 40 * i, ("payments", 0): 300 + 10 * i,
            ("__consumer_offsets", 0): 50 + 3 * i}


def _detail(group: str, state: str, members: tuple[GroupMember, ...],
            committed: dict[TP, int], ends: dict[TP, int]) -> GroupDetail:
    assigned = {tp: m.client_id + "/" + m.host.lstrip("/") for m in members
                for tp in m.assignments}
    return GroupDetail(
        group=group, state=state, protocol_type="consumer",
        protocol="range" if members else None, coordinator=1, members=members,
        partitions=tuple(PartitionLag(group, t, p, off, ends[(t, p)],
                                      lag_of(off, ends[(t, p)]), assigned.get((t, p)))
                         for (t, p), off in sorted(committed.items())))


def groups_at(i: int) -> list[GroupDetail]:
    """billing falls behind (WARNING), audit stopped with lag (STOPPED), reports keeps up
    (OK)."""
    ends = ends_at(i)
    billing = {("orders", 0): 900 + 30 * i, ("orders", 1): 1990 + 30 * i,
               ("orders", 2): 400 + 30 * i}
    audit = {("payments", 0): 250}
    reports = {("payments", 0): ends[("payments", 0)]}
    return [
        _detail("billing", "Stable", (MEMBER,), billing, ends),
        _detail("audit", "Empty", (), audit, ends),
        _detail("reports", "Stable", (GroupMember("r-1", "reports", "/10.0.0.9",
                                                  (("payments", 0),)),), reports, ends),
    ]


def sample(i: int) -> Sample:
    """Poll i of the made-up cluster."""
    ends = ends_at(i)
    lows = dict.fromkeys(ends, 0)
    lows[("payments", 0)] = 260  # audit's committed 250 fell below it: LOST
    stable = dict(ends)
    stable[("orders", 1)] -= 25  # a transaction open on orders-1 holds its LSO back
    return Sample(t=T0 + STEP * i, took=0.01, layout=LAYOUT,
                  marks=Watermarks(low=lows, high=ends, stable=stable), groups=groups_at(i),
                  sizes={"orders": 3 * 1024 * 1024, "payments": 40_960,
                         "__consumer_offsets": 2048},
                  transactions=[Transaction("order-writer-1", 4001, "Ongoing", 1)])


def snapshots(polls: int, interval: float = STEP) -> list[ClusterSnapshot]:
    """The snapshots of polls 0..polls-1."""
    builder = SnapshotBuilder(bootstrap="kafka-1.local:9092", interval=interval)
    return [builder.add(sample(i)) for i in range(polls)]


class FakeTail:
    """Hands out a fixed list of records once."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = list(records)

    def read(self, timeout: float) -> list[Record]:
        out, self.records = self.records, []
        if not out:
            import time

            time.sleep(min(timeout, 0.05))
        return out

    def close(self) -> None:
        self.records = []


class FakeService:
    """A DataService over fixed snapshots: refresh hands out the next one, then the last
    one again."""

    def __init__(self, shots: Sequence[ClusterSnapshot],
                 records: Sequence[Record] = ()) -> None:
        self.bootstrap = "kafka-1.local:9092"
        self.shots = list(shots)
        self.records = list(records)
        self.calls: list[tuple[str, object]] = []

    def refresh(self) -> ClusterSnapshot:
        """The next snapshot."""
        return self.shots.pop(0) if len(self.shots) > 1 else self.shots[0]

    def create_topic(self, name: str, partitions: int | None, replication: int | None) -> None:
        """Remember the call."""
        self.calls.append(("create", (name, partitions, replication)))

    def delete_topic(self, name: str) -> None:
        """Remember the call."""
        self.calls.append(("delete", name))

    def plan_reset(self, group: str, to: str, topics: Sequence[str]) -> ResetPlan:
        """Everything to offset 0; partition 2's start is clamped to its low watermark."""
        changes = tuple(OffsetChange("orders", p, 900, 0, 0, 1000, clamped=p == 2)
                        for p in range(3))
        return ResetPlan(group, to, "Empty", 0, changes)

    def apply_reset(self, plan: ResetPlan) -> None:
        """Remember the call."""
        self.calls.append(("reset", plan))

    def open_tail(self, topic: str) -> FakeTail:
        """The fixed records."""
        return FakeTail(self.records)

    def close(self) -> None:
        """Nothing to stop."""
