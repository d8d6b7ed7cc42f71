"""The offset map and the translation rules (1-8 of the reference), as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kcli.backup.jobs import Job, SourceState
from kcli.backup.offsetmap import (
    OffsetMap,
    SourceCommit,
    TargetGroup,
    changes_to_apply,
    plan_groups,
    predicted_map,
)


@st.composite
def copies(draw: st.DrawFn, foreign: bool = True) -> tuple[int, int, list[int], list[int], int]:
    """(src_start, src_next, source offsets of the records, their target offsets, tgt_start).
    Source offsets skip (compaction, markers); target offsets skip only where someone
    else wrote (``foreign``)."""
    start = draw(st.integers(0, 10**12))
    offset = start + draw(st.integers(0, 3))
    sources = []
    for _ in range(draw(st.integers(0, 60))):
        sources.append(offset)
        offset += draw(st.sampled_from([1, 1, 1, 1, 2, 5, 100]))
    end = (sources[-1] + 1 if sources else start) + draw(st.integers(0, 4))
    tgt_start = draw(st.integers(0, 10**12))
    targets = []
    t = tgt_start
    for _ in sources:
        targets.append(t)
        t += draw(st.sampled_from([1, 1, 1, 1, 3])) if foreign else 1
    return start, end, sources, targets, tgt_start


def build(start: int, end: int, sources: list[int], targets: list[int],
          tgt_start: int) -> OffsetMap:
    omap = OffsetMap(start, end, tgt_start, targets[-1] + 1 if targets else tgt_start)
    for s, t in zip(sources, targets, strict=True):
        omap.add(s, t)
    return omap


@given(copies())
def test_map_is_exact_and_minimal(case: tuple[int, int, list[int], list[int], int]) -> None:
    start, end, sources, targets, _tgt_start = case
    omap = build(*case)
    assert omap.records == len(sources)
    pairs = dict(zip(sources, targets, strict=True))
    for offset in range(start, end):
        assert omap.target_of(offset) == pairs.get(offset)
    for (s1, t1, n1), (s2, t2, _n2) in zip(omap.runs, omap.runs[1:], strict=False):
        assert n1 > 0
        assert s2 >= s1 + n1
        assert not (s2 == s1 + n1 and t2 == t1 + n1), "adjacent runs must have been merged"


@given(copies(), st.data())
def test_translation_rules(case: tuple[int, int, list[int], list[int], int],
                           data: st.DataObject) -> None:
    start, end, sources, targets, _tgt_start = case
    omap = build(*case)
    committed = data.draw(st.integers(max(0, start - 20), end + 20))
    result = omap.translate(committed)
    assert result.source == committed
    if committed < start:  # rule 4: the first copied record, and say what was lost
        assert result.rule == 4
        assert result.target == (targets[0] if targets else omap.tgt_next)
        assert result.note is not None
        assert str(start - committed) in result.note
    elif committed >= end:  # rule 3: the end of the copied range
        assert result.rule == 3
        assert result.target == omap.tgt_next
    else:  # rule 2: the first copied record at or after C, right across gaps
        later = [t for s, t in zip(sources, targets, strict=True) if s >= committed]
        assert result.target == (later[0] if later else omap.tgt_next)
        assert result.rule == (2 if later else 3)
    # never "nearest lower record + delta": a consumer resumes exactly where it would have
    if committed in sources:
        assert result.target == targets[sources.index(committed)]


@given(copies(foreign=False))
def test_predicted_map_equals_a_contiguous_copy(
        case: tuple[int, int, list[int], list[int], int]) -> None:
    start, end, sources, _targets, tgt_start = case
    gaps = []
    position = start
    for s in sources:
        if s > position:
            gaps.append((position, s))
        position = s + 1
    if end > position:
        gaps.append((position, end))
    predicted = predicted_map(start, end, gaps, tgt_start)
    actual = build(*case)
    assert predicted.runs == actual.runs
    assert predicted.tgt_next == actual.tgt_next
    # split anywhere: the prediction continues a partial copy
    for cut in range(len(sources) + 1):
        head = build(start, sources[cut] if cut < len(sources) else end, sources[:cut],
                     _targets[:cut], tgt_start)
        resume_at = sources[cut] if cut < len(sources) else end
        rest = predicted_map(resume_at, end, [g for g in gaps if g[1] > resume_at],
                             head.tgt_next, head if head.runs else None)
        assert rest.runs == actual.runs


@given(copies(), st.lists(st.integers(1, 40), max_size=6))
def test_stored_chunks_rebuild_the_map(case: tuple[int, int, list[int], list[int], int],
                                       checkpoints: list[int]) -> None:
    """A job stores its map in pieces at each checkpoint (the last run again when it
    grew); loading the pieces gives the same map."""
    start, end, sources, targets, tgt_start = case
    job = Job("restore", {"archive": "a", "source_topic": "s", "target_topic": "t"}, "s", "t",
              1, {0: SourceState(start, start, end)})
    from kcli.backup.jobs import TargetState

    state = TargetState(0, tgt_start, tgt_start, omap=OffsetMap(start, start, tgt_start,
                                                                 tgt_start))
    job.targets[0] = state
    assert state.omap is not None
    stored: dict[tuple[int, int], list[list[int]]] = {}
    i = 0
    bounds = [*sorted(min(c, len(sources)) for c in checkpoints), len(sources)]
    for bound in bounds:
        while i < bound:
            state.omap.add(sources[i], targets[i])
            state.records += 1
            state.next = targets[i] + 1
            i += 1
        for key, value in job.new_chunks():
            stored[(key["partition"], key["chunk"])] = value["runs"]
    value = job.state()
    loaded = Job("restore", job.identity, "s", "t", 1, {0: SourceState(start, start, end)})
    loaded.restore_state(value, stored)
    assert loaded.targets[0].omap is not None
    assert loaded.targets[0].omap.runs == state.omap.runs
    assert loaded.targets[0].records == len(sources)


def test_group_rules_5_and_7() -> None:
    omap = OffsetMap(100, 110, 0, 10, [(100, 0, 10)])
    maps = {("src", 0): omap, ("src", 1): OffsetMap(0, 0, 0, 0)}
    commits = [
        SourceCommit("fresh", "src", 0, 105, "meta"),          # new group: commit, keep metadata
        SourceCommit("busy", "src", 0, 105),                   # active members: skip
        SourceCommit("ahead", "src", 0, 103),                  # target is further: no going back
        SourceCommit("same", "src", 0, 104),                   # already there
        SourceCommit("fresh", "src", 1, 7),                    # empty partition: its end
        SourceCommit("fresh", "other", 0, 1),                  # not copied: rule 1, skipped
        SourceCommit("fresh", "src", 0, -1),                   # no committed offset: skipped
    ]
    targets = {
        "busy": TargetGroup("Stable", 2, {}),
        "ahead": TargetGroup("Empty", 0, {("dst", 0): 8}),
        "same": TargetGroup("Empty", 0, {("dst", 0): 4}),
    }
    changes = plan_groups(commits, maps, {"src": "dst"}, targets)
    by_group = {(c.group, c.partition): c for c in changes}
    assert len(changes) == 5
    fresh = by_group[("fresh", 0)]
    assert (fresh.target_topic, fresh.target_offset, fresh.action, fresh.metadata) == (
        "dst", 5, "commit", "meta")
    assert by_group[("busy", 0)].action == "skip"
    assert "member" in (by_group[("busy", 0)].reason or "")
    assert by_group[("ahead", 0)].action == "skip"
    assert "backwards" in (by_group[("ahead", 0)].reason or "")
    assert by_group[("same", 0)].action == "unchanged"
    assert by_group[("fresh", 1)].target_offset == 0
    forced = plan_groups(commits, maps, {"src": "dst"}, targets, force=True)
    assert {c.group: c.action for c in forced if c.partition == 0}["ahead"] == "commit"
    assert set(changes_to_apply(changes)) == {"fresh"}
