"""Lag math for the dashboard: pure functions and small containers, no I/O, no clock.

Everything here takes poll times as arguments, so it is tested without a cluster.

Lag in records
    ``lag = max(0, end - committed)`` per partition (:func:`kcli.client.models.lag_of`:
    a committed offset past the end, as after a truncation, is not negative lag).
    A group's lag is the sum over its partitions; the largest partition lag is kept too.

Status, like Burrow, by poll time
    Burrow evaluates a window of the last N *commits*, with their commit timestamps.
    A dashboard polling through the admin API sees committed offsets, not commits: the
    window here holds the last N *polls* (poll time, committed offset, end offset), and
    the screens say "by poll time". Per partition (:func:`partition_status`):

    1. current lag <= allowed lag (0): OK. A partition with no lag is never STOPPED
       (Burrow's users complain about false STOP on quiet topics).
    2. fewer than ``MIN_POINTS`` polls in the window: OK (the screens show how full
       the window is).
    3. the committed offset did not move over the whole window and every lag in it is
       above the allowed lag: the consumer is stuck. Burrow tells a consumer that still
       commits the same offset (STALL) from one that stopped committing (STOP) by commit
       timestamps, which polling cannot see; here the group's membership tells them
       apart: a partition still assigned to a live member is STALLED, one that nobody
       consumes is STOPPED.
    4. a committed offset lower than the one before it, never recovered: REWIND.
    5. every lag in the window above the allowed lag, the offset moving, and the lag
       never decreasing from one poll to the next: WARNING (falling behind).
    6. otherwise OK.

    A group's status is its worst partition's (:func:`worst`).

Time lag (kafka-lag-exporter)
    :class:`EndOffsetTable` keeps, per partition, up to 60 (end offset, poll time)
    points. The time lag of a committed offset ``c`` is how long ago the log end was at
    ``c``: interpolated between the neighbouring points, extrapolated from the oldest
    and newest points when ``c`` is older than the table (then only a lower bound is
    certain, and it is shown as "≥ X s"), "unknown" with fewer than two points.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from typing import Literal, TypeVar

from kcli.client.models import lag_of

K = TypeVar("K")

WINDOW = 15
"""Polls in a status window (Burrow keeps the last 10 to 15 commits)."""
MIN_POINTS = 3
"""Polls needed before a partition can be anything but OK."""
TIME_LAG_POINTS = 60
"""End-offset points kept per partition for time lag."""

clamp_lag = lag_of
"""``max(0, end - committed)``; None when either is unknown."""


class Status(Enum):
    """A partition's or a group's health, most severe last."""

    OK = "OK"
    WARNING = "WARNING"
    REWIND = "REWIND"
    STALLED = "STALLED"
    STOPPED = "STOPPED"

    @property
    def severity(self) -> int:
        """0 for OK, 1 for WARNING, 2 for the errors (REWIND, STALLED, STOPPED)."""
        return _SEVERITY[self]

    def __str__(self) -> str:
        return self.value


_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.REWIND: 2, Status.STALLED: 2,
             Status.STOPPED: 2}
_ORDER = {status: index for index, status in enumerate(Status)}


@dataclass(frozen=True, slots=True)
class Point:
    """One poll of one partition of one group."""

    t: float
    """Poll time (seconds since the epoch)."""
    committed: int
    end: int

    @property
    def lag(self) -> int:
        """max(0, end - committed)."""
        return max(0, self.end - self.committed)


def partition_status(window: Sequence[Point], *, assigned: bool, allowed_lag: int = 0,
                     min_points: int = MIN_POINTS) -> Status:
    """The status of one partition from its window of polls (oldest first).
    ``assigned``: a live member of the group holds the partition."""
    if not window or window[-1].lag <= allowed_lag:
        return Status.OK
    if len(window) < min_points:
        return Status.OK
    offsets = [p.committed for p in window]
    always_behind = all(p.lag > allowed_lag for p in window)
    if always_behind and all(o == offsets[0] for o in offsets):
        return Status.STALLED if assigned else Status.STOPPED
    if any(b < a for a, b in pairwise(offsets)) \
            and offsets[-1] < max(offsets[:-1]):
        return Status.REWIND
    lags = [p.lag for p in window]
    if always_behind and all(b >= a for a, b in pairwise(lags)):
        return Status.WARNING
    return Status.OK


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (OK for none)."""
    return max(statuses, key=_ORDER.__getitem__, default=Status.OK)


# ------------------------------------------------------------------------------ time lag


@dataclass(frozen=True, slots=True)
class TimeLag:
    """How far behind, in seconds, a committed offset is."""

    kind: Literal["exact", "interpolated", "extrapolated", "unknown"]
    seconds: float | None = None
    """The estimate (None when unknown)."""
    at_least: float | None = None
    """For an extrapolated estimate, the lag that is certain: the offset is older than
    the oldest point of the table."""

    def __str__(self) -> str:
        if self.kind == "unknown" or self.seconds is None:
            return "unknown"
        if self.kind == "extrapolated":
            return f"≥ {format_seconds(self.at_least or 0.0)}"
        return format_seconds(self.seconds)


UNKNOWN = TimeLag("unknown")


def format_seconds(seconds: float) -> str:
    """12 s, 4m05s, 3h02m, 2d04h."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class EndOffsetTable:
    """(end offset, poll time) points of one partition, oldest first, at most
    ``capacity``: points going back in time or in offset are rejected, and a flat
    stretch (the offset unchanged) keeps only its first and last point."""

    __slots__ = ("_offsets", "_times", "capacity")

    def __init__(self, capacity: int = TIME_LAG_POINTS) -> None:
        if capacity < 2:
            raise ValueError("an end-offset table needs room for two points")
        self.capacity = capacity
        self._offsets: list[int] = []
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def points(self) -> list[tuple[int, float]]:
        """(offset, time) pairs, oldest first."""
        return list(zip(self._offsets, self._times, strict=True))

    def add(self, offset: int, t: float) -> bool:
        """Record the end offset seen at poll time ``t``; False if rejected."""
        offsets, times = self._offsets, self._times
        if offsets and (t <= times[-1] or offset < offsets[-1]):
            return False
        if len(offsets) >= 2 and offsets[-1] == offset and offsets[-2] == offset:
            times[-1] = t
            return True
        offsets.append(offset)
        times.append(t)
        if len(offsets) > self.capacity:
            del offsets[0]
            del times[0]
        return True

    def time_lag(self, committed: int | None, now: float) -> TimeLag:
        """How long ago the log end was at ``committed``."""
        offsets, times = self._offsets, self._times
        if committed is None or not offsets:
            return UNKNOWN
        newest_o, newest_t = offsets[-1], times[-1]
        if committed >= newest_o:
            return TimeLag("exact", 0.0)
        if len(offsets) < 2:
            return UNKNOWN
        j = bisect_right(offsets, committed)  # first point with an offset > committed
        if j == 0:
            oldest_o, oldest_t = offsets[0], times[0]
            at_least = max(0.0, now - oldest_t)
            if newest_o == oldest_o:  # a flat table: no rate to extrapolate with
                return TimeLag("extrapolated", at_least, at_least)
            t = oldest_t - (oldest_o - committed) * (newest_t - oldest_t) / (newest_o - oldest_o)
            return TimeLag("extrapolated", max(at_least, now - t), at_least)
        # left <= committed < right, so right_o > left_o: no division by zero
        left_o, left_t = offsets[j - 1], times[j - 1]
        right_o, right_t = offsets[j], times[j]
        t = right_t - (right_o - committed) * (right_t - left_t) / (right_o - left_o)
        return TimeLag("interpolated", max(0.0, now - t))


# --------------------------------------------------------------------- rates and trends


def rate(before: Mapping[K, int], after: Mapping[K, int], seconds: float) -> float | None:
    """Records per second from offset deltas over the keys present in both; a key whose
    offset went back (a recreated topic, a reset group) counts as zero. None when the
    interval is not positive or nothing can be compared."""
    if seconds <= 0:
        return None
    total = 0
    seen = False
    for key, offset in after.items():
        previous = before.get(key)
        if previous is not None:
            seen = True
            total += max(0, offset - previous)
    return total / seconds if seen else None


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares change per second of (time, value) points; None with fewer than two
    distinct times."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled from 0 to the largest."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return _BARS[0] * len(tail)
    steps = len(_BARS) - 1
    return "".join(_BARS[min(steps, math.ceil(v / top * steps))] if v > 0 else _BARS[0]
                   for v in tail)
