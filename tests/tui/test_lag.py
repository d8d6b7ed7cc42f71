"""The dashboard's lag math without a cluster: Burrow-like status by poll, time lag from
end-offset history (kafka-lag-exporter), rates, slopes, sparklines."""

from __future__ import annotations

import pytest

from kcli.tui.lag import (
    EndOffsetTable,
    Point,
    Status,
    TimeLag,
    format_seconds,
    partition_status,
    rate,
    slope,
    sparkline,
    worst,
)


def window(*polls: tuple[int, int], step: float = 2.0) -> list[Point]:
    """(committed, end) per poll, 2 s apart."""
    return [Point(100.0 + i * step, committed, end) for i, (committed, end) in enumerate(polls)]


def test_no_lag_is_ok_and_never_stopped() -> None:
    # a quiet topic whose consumer is caught up: Burrow's false STOP must not happen
    assert partition_status(window(*[(50, 50)] * 10), assigned=False) is Status.OK
    assert partition_status([], assigned=True) is Status.OK


def test_too_few_polls_is_ok() -> None:
    assert partition_status(window((1, 9), (1, 10)), assigned=False) is Status.OK


def test_stuck_offsets_with_lag_stalled_or_stopped() -> None:
    stuck = window((10, 20), (10, 25), (10, 30), (10, 31))
    assert partition_status(stuck, assigned=True) is Status.STALLED
    assert partition_status(stuck, assigned=False) is Status.STOPPED


def test_caught_up_once_in_the_window_is_not_stuck() -> None:
    polls = window((10, 10), (10, 12), (10, 15))
    assert partition_status(polls, assigned=False) is Status.OK


def test_falling_behind_is_warning() -> None:
    polls = window((10, 20), (12, 25), (14, 30), (16, 40))
    assert partition_status(polls, assigned=True) is Status.WARNING


def test_catching_up_is_ok() -> None:
    polls = window((10, 40), (20, 42), (30, 44), (40, 45))
    assert partition_status(polls, assigned=True) is Status.OK


def test_rewind_never_recovered() -> None:
    polls = window((50, 60), (52, 64), (20, 66), (22, 66))
    assert partition_status(polls, assigned=True) is Status.REWIND
    recovered = window((50, 60), (20, 64), (55, 66), (60, 70))
    assert partition_status(recovered, assigned=True) is not Status.REWIND


def test_group_status_is_the_worst_partition() -> None:
    assert worst([Status.OK, Status.WARNING, Status.OK]) is Status.WARNING
    assert worst([Status.WARNING, Status.STOPPED]) is Status.STOPPED
    assert worst([]) is Status.OK
    assert Status.STALLED.severity == 2
    assert Status.OK.severity == 0


def test_time_lag_interpolates_between_end_offsets() -> None:
    table = EndOffsetTable()
    for offset, t in ((0, 100.0), (100, 110.0), (200, 120.0)):
        assert table.add(offset, t)
    # the end was at 150 at t=115: at now=130 a consumer committed at 150 is 15 s behind
    assert table.time_lag(150, now=130.0) == TimeLag("interpolated", 15.0)
    assert table.time_lag(100, now=130.0) == TimeLag("interpolated", 20.0)
    assert table.time_lag(200, now=130.0) == TimeLag("exact", 0.0)
    assert table.time_lag(250, now=130.0) == TimeLag("exact", 0.0)


def test_time_lag_extrapolates_below_the_oldest_point_as_a_lower_bound() -> None:
    table = EndOffsetTable()
    table.add(100, 100.0)
    table.add(200, 110.0)
    lag = table.time_lag(50, now=120.0)
    assert lag.kind == "extrapolated"
    assert lag.at_least == 20.0
    assert lag.seconds == pytest.approx(25.0)
    assert str(lag) == "≥ 20 s"


def test_time_lag_unknown_without_two_points_or_a_committed_offset() -> None:
    table = EndOffsetTable()
    assert table.time_lag(5, now=1.0).kind == "unknown"
    table.add(10, 1.0)
    assert str(table.time_lag(5, now=2.0)) == "unknown"
    table.add(20, 2.0)
    assert table.time_lag(None, now=3.0).kind == "unknown"


def test_end_offset_table_rejects_going_back_and_squeezes_flat_stretches() -> None:
    table = EndOffsetTable(capacity=4)
    assert table.add(10, 1.0)
    assert not table.add(9, 2.0)  # offset went back
    assert not table.add(11, 1.0)  # time did not move
    for t in (2.0, 3.0, 4.0, 5.0):
        table.add(10, t)
    assert table.points == [(10, 1.0), (10, 5.0)]  # a flat stretch: first and last point
    for offset, t in ((20, 6.0), (30, 7.0), (40, 8.0)):
        table.add(offset, t)
    assert len(table) == 4
    assert table.points[0] == (10, 5.0)  # the oldest went first
    # a flat table cannot extrapolate: the certain part only
    flat = EndOffsetTable()
    flat.add(10, 1.0)
    flat.add(10, 3.0)
    assert flat.time_lag(5, now=4.0) == TimeLag("extrapolated", 3.0, 3.0)


def test_rate_from_offset_deltas() -> None:
    before = {"a": 100, "b": 50}
    assert rate(before, {"a": 120, "b": 60}, 2.0) == 15.0
    assert rate(before, {"a": 90, "b": 60}, 2.0) == 5.0  # a recreated partition counts 0
    assert rate(before, {"c": 10}, 2.0) is None  # nothing to compare
    assert rate(before, {"a": 120}, 0.0) is None


def test_slope_and_sparkline() -> None:
    assert slope([(0.0, 10.0), (2.0, 14.0), (4.0, 18.0)]) == pytest.approx(2.0)
    assert slope([(0.0, 1.0)]) is None
    assert slope([(1.0, 1.0), (1.0, 5.0)]) is None
    assert sparkline([0, 1, 2, 4, 8], 5) == "▁▂▃▅█"
    assert sparkline([0, 0], 5) == "▁▁"
    assert sparkline(list(range(100)), 3) == "███"  # the last values, scaled to their top
    assert sparkline([], 4) == ""


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "0 s"), (12.4, "12 s"), (245, "4m05s"), (3 * 3600 + 125, "3h02m"),
    (2 * 86400 + 4 * 3600, "2d04h"), (-3, "0 s"),
])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
