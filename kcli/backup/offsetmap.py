"""The exact source->target offset map of a partition, and translating committed offsets.

A restore or a migration writes each source record to the target and learns its target
offset from the delivery report. :class:`OffsetMap` keeps those pairs compressed as runs
``(src_start, tgt_start, length)``: records whose source and target offsets both advance
by one share a run, so a partition without gaps is one run however long it is.

A consumer group's committed offset C on the source means "the next record to read is
the first one at or after C". :meth:`OffsetMap.translate` applies the rules of
``shared/reference/backup-and-migration.md``:

1. no committed offset: nothing to translate (callers skip the partition);
2. the first copied record with source offset >= C gives the target offset (right across
   gaps: "nearest lower record + delta" overshoots, "exact match only" loses commits);
3. C at or past the source's next offset: the target end of the copied range;
4. C before the first copied offset: the first copied record, reporting the loss;
5. the commit's metadata string is kept (see :func:`plan_groups`);
6. a changed partition count has no exact map: offsets_for_times (in the restore);
7. only empty groups are written, never backwards unless forced (:func:`plan_groups`);
8. a dry run prints the plan (the commands).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Run = tuple[int, int, int]


def _start(run: Run) -> int:
    return run[0]


@dataclass(frozen=True)
class Translation:
    """Where a committed source offset lands on the target."""

    source: int
    target: int
    rule: int
    """Which rule of the module docstring decided (2, 3 or 4)."""
    note: str | None = None


@dataclass
class OffsetMap:
    """Exact map of one partition. ``src_start``/``src_next`` bound the source offsets
    that were copied (gaps included); ``tgt_start``/``tgt_next`` the target range."""

    src_start: int
    src_next: int
    tgt_start: int
    tgt_next: int
    runs: list[Run] = field(default_factory=list)

    # -- building

    def add(self, src: int, tgt: int) -> None:
        """One more copied record (source offsets must increase)."""
        runs = self.runs
        if runs:
            s, t, n = runs[-1]
            if src == s + n and tgt == t + n:
                runs[-1] = (s, t, n + 1)
                return
            if src < s + n:
                raise ValueError(f"source offset {src} is not after {s + n - 1}")
        runs.append((src, tgt, 1))

    def add_run(self, run: Run) -> None:
        """Append a run (from a stored chunk); a run repeating or extending the last one
        (the same start, persisted again after it grew) replaces it."""
        src, tgt, length = run
        runs = self.runs
        if runs:
            s, t, n = runs[-1]
            if (s, t) == (src, tgt):
                runs[-1] = (s, t, max(n, length))
                return
            if src == s + n and tgt == t + n:
                runs[-1] = (s, t, n + length)
                return
            if src < s + n:
                raise ValueError(f"run at {src} overlaps the run ending at {s + n - 1}")
        runs.append((src, tgt, length))

    @property
    def records(self) -> int:
        """Records mapped."""
        return sum(n for _, _, n in self.runs)

    # -- looking up

    def target_of(self, src: int) -> int | None:
        """The target offset of the record copied from ``src``, if one was."""
        i = bisect.bisect_right(self.runs, src, key=_start) - 1
        if i >= 0:
            s, t, n = self.runs[i]
            if src < s + n:
                return t + (src - s)
        return None

    def first_at_or_after(self, src: int) -> int | None:
        """Target offset of the first copied record whose source offset is >= ``src``."""
        runs = self.runs
        i = bisect.bisect_right(runs, src, key=_start) - 1
        if i >= 0:
            s, t, n = runs[i]
            if src < s + n:
                return t + (src - s)
        if i + 1 < len(runs):
            return runs[i + 1][1]
        return None

    def translate(self, committed: int) -> Translation:
        """Rules 2-4 for one committed source offset."""
        first_target = self.runs[0][1] if self.runs else self.tgt_next
        if committed < self.src_start:
            missing = self.src_start - committed
            return Translation(committed, first_target, 4,
                               f"committed offset is {missing} records before the first "
                               f"copied offset {self.src_start}: they were not copied")
        if committed >= self.src_next:
            note = None
            if committed > self.src_next:
                note = (f"committed offset is past the copied range (next offset "
                        f"{self.src_next})")
            return Translation(committed, self.tgt_next, 3, note)
        found = self.first_at_or_after(committed)
        if found is None:  # only gaps between C and the end of the copied range
            return Translation(committed, self.tgt_next, 3)
        return Translation(committed, found, 2)

    # -- storing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"src_start": self.src_start, "src_next": self.src_next,
                "tgt_start": self.tgt_start, "tgt_next": self.tgt_next,
                "runs": [list(r) for r in self.runs]}


def predicted_map(src_start: int, src_next: int, gaps: Sequence[tuple[int, int]],
                  tgt_start: int, base: OffsetMap | None = None) -> OffsetMap:
    """The map a copy of ``[src_start, src_next)`` with ``gaps`` would produce when
    written contiguously from ``tgt_start`` (what a restore into an otherwise untouched
    topic does), appended to ``base`` if given. Used for dry-run plans, and by tests as
    the expected outcome of a real copy."""
    runs: list[Run] = []
    target = tgt_start
    position = src_start
    for gap_start, gap_end in sorted(gaps):
        if gap_end <= position or gap_start >= src_next:
            continue
        if gap_start > position:
            runs.append((position, target, gap_start - position))
            target += gap_start - position
        position = max(position, gap_end)
    if src_next > position:
        runs.append((position, target, src_next - position))
        target += src_next - position
    if base is None:
        return OffsetMap(src_start, src_next, tgt_start, target, runs)
    out = OffsetMap(base.src_start, src_next, base.tgt_start, target, list(base.runs))
    for run in runs:
        out.add_run(run)
    return out


# ------------------------------------------------------------------------ group plans

@dataclass(frozen=True)
class SourceCommit:
    """A committed offset on the source (captured in an archive, or read live)."""

    group: str
    topic: str
    partition: int
    offset: int
    metadata: str | None = None


@dataclass(frozen=True)
class TargetGroup:
    """What the target cluster says about a group before we write to it."""

    state: str
    """Kafka's state name; Empty or Dead (or a group that does not exist) may be written."""
    members: int
    committed: Mapping[tuple[str, int], int]


@dataclass(frozen=True)
class GroupChange:
    """One line of a group plan."""

    group: str
    source_topic: str
    partition: int
    target_topic: str
    source_offset: int
    target_offset: int | None
    current: int | None
    rule: int
    action: str
    """commit, unchanged or skip."""
    reason: str | None = None
    metadata: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


WRITABLE_STATES = frozenset({"Empty", "Dead", "Unknown"})


def plan_groups(commits: Iterable[SourceCommit], maps: Mapping[tuple[str, int], OffsetMap],
                rename: Mapping[str, str], targets: Mapping[str, TargetGroup],
                force: bool = False) -> list[GroupChange]:
    """Translate each committed offset through its partition's map (rules 1-5, 7).
    ``maps`` is keyed by (source topic, partition); commits on partitions without a map
    (not copied) are skipped; ``targets`` holds the target side of each group (absent:
    the group does not exist there yet)."""
    out = []
    for commit in sorted(commits, key=lambda c: (c.group, c.topic, c.partition)):
        omap = maps.get((commit.topic, commit.partition))
        if omap is None:
            continue
        target_topic = rename.get(commit.topic, commit.topic)
        if commit.offset < 0:  # rule 1
            continue
        translation = omap.translate(commit.offset)
        group = targets.get(commit.group)
        current = group.committed.get((target_topic, commit.partition)) if group else None
        action, reason = "commit", translation.note
        if group is not None and (group.members or group.state not in WRITABLE_STATES):
            action = "skip"
            reason = (f"group is {group.state} with {group.members} member(s) on the "
                      "target; only empty groups are written")
        elif current is not None and current > translation.target and not force:
            action = "skip"
            reason = (f"would move the committed offset backwards from {current} "
                      "(force to allow)")
        elif current == translation.target:
            action = "unchanged"
        out.append(GroupChange(
            group=commit.group, source_topic=commit.topic, partition=commit.partition,
            target_topic=target_topic, source_offset=commit.offset,
            target_offset=translation.target, current=current, rule=translation.rule,
            action=action, reason=reason, metadata=commit.metadata))
    return out


def changes_to_apply(changes: Sequence[GroupChange]) -> dict[str, list[GroupChange]]:
    """The commits of a plan, by group."""
    out: dict[str, list[GroupChange]] = {}
    for change in changes:
        if change.action == "commit":
            out.setdefault(change.group, []).append(change)
    return out
