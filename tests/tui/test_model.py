"""SnapshotBuilder: what one refresh shows, from fixed samples of a made-up cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kcli.client.models import (
    BrokerInfo,
    ClusterLayout,
    GroupDetail,
    GroupMember,
    PartitionLag,
    PartitionLayout,
    Watermarks,
)
from kcli.tui.lag import Status
from kcli.tui.model import Sample, SnapshotBuilder
from tests.tui.fake import STEP, T0, sample, snapshots


def sample_with_commit(t: float, committed: int) -> Sample:
    """One partition written at 20 rec/s and a group 'follow' that committed `committed`."""
    end = int((t - T0) * 20)
    layout = ClusterLayout(cluster_id="c", controller=1, brokers=(BrokerInfo(1, "k", 9092),),
                           topics={"events": (PartitionLayout(0, 1, (1,), (1,)),)})
    member = GroupMember("m-1", "follower", "/127.0.0.1", (("events", 0),))
    group = GroupDetail(group="follow", state="Stable", protocol_type="consumer",
                        protocol="range", coordinator=1, members=(member,),
                        partitions=(PartitionLag("follow", "events", 0, committed, end,
                                                 end - committed, "follower/127.0.0.1"),))
    return Sample(t=t, took=0.01, layout=layout,
                  marks=Watermarks(low={("events", 0): 0}, high={("events", 0): end}),
                  groups=[group])


def test_cluster_overview() -> None:
    snap = snapshots(1)[0]
    assert [(b.id, b.controller, b.leaders, b.replicas) for b in snap.brokers] == [
        (1, True, 3, 5), (2, False, 2, 4)]
    assert snap.partition_count == 5
    assert snap.under_replicated == 1
    assert snap.offline == 0
    assert dict(snap.groups_by_state) == {"Empty": 1, "Stable": 2}
    # the first poll has nothing to compare with: rates are unknown, not zero
    assert snap.produce_rate is None
    assert snap.consume_rate is None


def test_rates_come_from_offset_deltas() -> None:
    snap = snapshots(2)[1]
    # orders: 3 partitions x 40 records, payments 10, per 2 s poll; internal topics left out
    assert snap.produce_rate == pytest.approx((3 * 40 + 10) / STEP)
    orders = snap.topic("orders")
    assert orders is not None
    assert orders.rate == pytest.approx(60.0)
    assert (orders.records, orders.size, orders.under_replicated) == (3620, 3 << 20, 1)
    assert [p.rate for p in snap.partitions["payments"]] == [5.0]
    # consume rates need one auto-commit interval of history (5 s: three 2 s polls)
    assert {g.consume_rate for g in snap.groups} == {None}
    later = snapshots(4)[3]
    billing = next(g for g in later.groups if g.group == "billing")
    assert billing.consume_rate == pytest.approx(45.0)  # 3 x 30 committed per poll
    assert later.consume_rate == pytest.approx(45.0 + 5.0)  # and reports, 10 per poll


def test_consume_rate_is_what_the_offsets_moved_between_commits() -> None:
    """A group following a producer at 20 rec/s commits every 5 s; polls every 2 s used
    to show 0 and 50 rec/s in turn. Measured over several commit intervals, the rate
    stays near 20, never drops to 0 while the group consumes, and is never more than
    the committed offsets moved over the window it names."""
    commit_every, poll_every, per_second = 5.0, 2.0, 20.0
    builder = SnapshotBuilder(interval=poll_every)
    shown = []
    for i in range(60):
        t = T0 + i * poll_every
        committed = int((t - T0) // commit_every * commit_every * per_second)
        shown.append((t, committed, builder.add(sample_with_commit(t, committed))))
    rates = [snap.consume_rate for _t, _c, snap in shown]
    assert rates[:3] == [None] * 3
    settled = [r for r in rates[15:] if r is not None]
    assert len(settled) == len(rates) - 15
    assert min(settled) >= 18.0
    assert max(settled) <= 22.0
    for (_t, _c, snap), group_view in zip(shown, (s.group_views["follow"] for _, _, s in shown),
                                          strict=True):
        assert group_view.row.consume_rate == snap.consume_rate  # both screens agree


def test_statuses_after_a_few_polls() -> None:
    first, *_, last = snapshots(5)
    assert {g.group: g.status for g in first.groups} == {
        "audit": Status.OK, "billing": Status.OK, "reports": Status.OK}  # window too short
    assert {g.group: g.status for g in last.groups} == {
        "audit": Status.STOPPED, "billing": Status.WARNING, "reports": Status.OK}
    billing = last.group_views["billing"]
    assert billing.row.trend == (210, 240, 270, 300, 330)
    assert billing.row.slope == pytest.approx(15.0)  # 30 records more every 2 s
    assert billing.row.window == 5
    assert billing.row.lag == 330
    assert billing.row.max_lag == 140


def test_time_lag_and_lost_partitions() -> None:
    last = snapshots(5)[-1]
    rows = {(p.topic, p.partition): p for p in last.group_views["billing"].partitions}
    # orders[0] ends grew 40 per 2 s; committed 1020 was the end 2 s before the end
    # passed 1040, i.e. 3 s after it was 1000: interpolated between polls
    row = rows[("orders", 0)]
    assert (row.committed, row.end, row.lag) == (1020, 1160, 140)
    assert row.time_lag.kind == "interpolated"
    assert row.time_lag.seconds == pytest.approx(7.0)
    # a committed offset older than the oldest point: at least as old as that point
    early = snapshots(2)[-1].group_views["billing"].partitions[2]
    assert (early.committed, early.time_lag.kind) == (430, "extrapolated")
    assert early.time_lag.seconds == pytest.approx(5.5)
    assert str(early.time_lag) == "≥ 2 s"
    audit = last.group_views["audit"].partitions[0]
    assert audit.lost
    assert audit.low == 260
    assert not rows[("orders", 1)].lost


def test_history_of_a_vanished_group_is_forgotten() -> None:
    builder = SnapshotBuilder(interval=STEP)
    for i in range(4):
        snap = builder.add(sample(i))
    assert {g.group: g.status for g in snap.groups}["audit"] is Status.STOPPED
    gone = sample(4)
    builder.add(replace(gone, groups=[g for g in gone.groups if g.group != "audit"]))
    back = builder.add(sample(5))
    audit = next(g for g in back.groups if g.group == "audit")
    assert audit.status is Status.OK
    assert audit.window == 1
    assert audit.trend == (100,)


def test_sizes_are_kept_between_measurements() -> None:
    builder = SnapshotBuilder(interval=STEP)
    first = builder.add(sample(0))
    second = builder.add(replace(sample(1), sizes=None))
    assert first.sizes_known
    assert second.sizes_known
    assert second.topic("payments") is not None
    assert second.topic("payments").size == 40_960  # type: ignore[union-attr]


def test_a_broker_that_vanishes_is_shown_down_not_dropped() -> None:
    builder = SnapshotBuilder()
    first = builder.add(sample(0))
    assert [(b.id, b.up) for b in first.brokers] == [(1, True), (2, True)]
    layout = sample(1).layout
    gone = replace(sample(1), layout=replace(layout, brokers=layout.brokers[:1]))
    rows = builder.add(gone).brokers
    assert [(b.id, b.host, b.up) for b in rows] == [(1, "kafka-1.local", True),
                                                    (2, "kafka-2.local", False)]
    # a fresh dashboard knows it from the replica assignments, or from the registry
    fresh = SnapshotBuilder().add(gone).brokers
    assert [(b.id, b.up) for b in fresh] == [(1, True), (2, False)]
    expected = replace(gone, expected_brokers={3: ("127.0.0.1", 9094)})
    assert [(b.id, b.port, b.up) for b in SnapshotBuilder().add(expected).brokers] == [
        (1, 9092, True), (2, 0, False), (3, 9094, False)]
