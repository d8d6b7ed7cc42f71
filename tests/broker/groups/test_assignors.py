"""Properties of the server-side assignors and of reconciliation (KIP-848): every
partition is owned once, by a subscriber, balanced, sticky; no partition is ever held by
two members while a group moves between assignments."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kcli.broker.errors import ErrorCode
from kcli.broker.group.assignors import ASSIGNORS, Assignment, range_, uniform
from tests.broker.groups.harness import OffsetsHost, run_host
from tests.broker.groups.test_consumer_protocol import Member

TOPICS = ("a", "b", "c", "d")

counts = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 12), min_size=1)


@st.composite
def groups(draw: st.DrawFn) -> tuple[dict[str, frozenset[str]], dict[str, int]]:
    partition_counts = draw(counts)
    names = sorted(partition_counts)
    members = draw(st.lists(st.text("xyz", min_size=1, max_size=4), min_size=1, max_size=6,
                            unique=True))
    subscriptions = {m: frozenset(draw(st.lists(st.sampled_from(names), min_size=1,
                                                unique=True))) for m in members}
    return subscriptions, partition_counts


def owners(result: dict[str, Assignment]) -> dict[tuple[str, int], list[str]]:
    seen: dict[tuple[str, int], list[str]] = {}
    for member, assignment in result.items():
        for topic, partitions in assignment.items():
            for p in partitions:
                seen.setdefault((topic, p), []).append(member)
    return seen


def count(assignment: Assignment) -> int:
    return sum(len(p) for p in assignment.values())


@given(groups(), st.sampled_from(sorted(ASSIGNORS)))
def test_each_partition_goes_once_to_a_subscriber(group: tuple[dict[str, frozenset[str]],
                                                               dict[str, int]],
                                                  name: str) -> None:
    subscriptions, partition_counts = group
    result = ASSIGNORS[name](subscriptions, partition_counts, {})
    seen = owners(result)
    expected = {(t, p) for t, n in partition_counts.items() for p in range(n)
                if any(t in s for s in subscriptions.values())}
    assert set(seen) == expected
    for (topic, _p), holders in seen.items():
        assert len(holders) == 1
        assert topic in subscriptions[holders[0]]
    assert ASSIGNORS[name](subscriptions, partition_counts, {}) == result  # deterministic


@given(counts, st.integers(1, 6))
def test_uniform_balances_and_sticks(partition_counts: dict[str, int], size: int) -> None:
    members = [f"m{i}" for i in range(size)]
    everything = frozenset(partition_counts)
    subscriptions = dict.fromkeys(members, everything)
    result = uniform(subscriptions, partition_counts, {})
    sizes = [count(result[m]) for m in members]
    assert max(sizes) - min(sizes) <= 1
    assert uniform(subscriptions, partition_counts, result) == result  # nothing moves
    # a newcomer takes only from the others; nobody swaps partitions
    grown = uniform({**subscriptions, "new": everything}, partition_counts, result)
    for (topic, p), (holder,) in owners(grown).items():
        assert holder == "new" or p in result[holder].get(topic, frozenset())
    sizes = [count(a) for a in grown.values()]
    assert max(sizes) - min(sizes) <= 1


@given(counts, st.integers(1, 6))
def test_range_gives_contiguous_co_partitioned_ranges(partition_counts: dict[str, int],
                                                      size: int) -> None:
    members = [f"m{i}" for i in range(size)]
    everything = frozenset(partition_counts)
    result = range_(dict.fromkeys(members, everything), partition_counts, {})
    for topic, n in partition_counts.items():
        start = 0
        share, extra = divmod(n, size)
        for i, m in enumerate(sorted(members)):
            got = sorted(result[m].get(topic, frozenset()))
            assert got == list(range(start, start + share + (i < extra)))
            start += len(got)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["join", "leave", "beat", "grow"]), min_size=1, max_size=25),
       st.randoms(use_true_random=False), st.sampled_from(sorted(ASSIGNORS)))
def test_no_partition_is_ever_held_twice(steps: list[str], rng: random.Random,
                                         assignor: str) -> None:
    """Members join, leave and heartbeat in any order, and the topic grows; whatever
    the order, no two members ever hold a partition at once, and once everyone has
    heartbeated enough the group is stable with every partition held."""

    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 4)
        members: list[Member] = []

        def check() -> None:
            held: dict[int, Member] = {}
            for m in members:
                for p in m.partitions("t"):
                    assert p not in held, f"partition {p} held by two members"
                    held[p] = m

        for step in steps:
            if step == "join" or not members:
                members.append(Member(host, "g", "t", assignor=assignor))
                assert (await members[-1].beat()).error == ErrorCode.none
            elif step == "leave":
                gone = members.pop(rng.randrange(len(members)))
                await gone.beat(member_epoch=-1)
            elif step == "grow":
                topic = host.topics["t"]
                topic.partitions.append(topic.partitions[0])
            else:
                assert (await rng.choice(members).beat()).error == ErrorCode.none
            check()
        for _ in range(4):
            for m in members:
                assert (await m.beat()).error == ErrorCode.none
                check()
        described = host.groups.describe_consumer_groups(["g"])[0]
        assert described.state == ("Stable" if members else "Empty")
        if not members:
            return
        assert set().union(*(m.partitions("t") for m in members)) == set(
            range(len(host.topics["t"].partitions)))

    with tempfile.TemporaryDirectory() as directory:
        run_host(Path(directory), test)
