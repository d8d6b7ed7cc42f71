"""Server-side partition assignors of the consumer group protocol (KIP-848): ``uniform``
(the default) and ``range``, named as Kafka's ``group.consumer.assignors`` names them.

An assignor sees the members' subscriptions, the subscribed topics' partition counts and
the current target assignment, and answers a new target. Both are deterministic: the same
input always gives the same answer, on every broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Assignment = dict[str, frozenset[int]]
"""Partitions by topic name."""

Assignor = Callable[[Mapping[str, frozenset[str]], Mapping[str, int],
                     Mapping[str, Assignment]], dict[str, Assignment]]


def uniform(subscriptions: Mapping[str, frozenset[str]], partition_counts: Mapping[str, int],
            current: Mapping[str, Assignment]) -> dict[str, Assignment]:
    """Spread every subscribed partition so that members' counts differ by at most one
    where their subscriptions allow, moving as few partitions as possible: members keep
    what they own, what nobody owns goes to the least loaded eligible member, and then
    partitions move from the most to the least loaded until no move narrows the gap."""
    owner: dict[tuple[str, int], str] = {}
    held: dict[str, set[tuple[str, int]]] = {m: set() for m in subscriptions}
    for member in sorted(current):
        if member not in subscriptions:
            continue
        for topic, partitions in current[member].items():
            if topic not in subscriptions[member]:
                continue
            for p in partitions:
                if p < partition_counts.get(topic, 0) and (topic, p) not in owner:
                    owner[(topic, p)] = member
                    held[member].add((topic, p))
    eligible: dict[str, list[str]] = {}
    for topic in sorted(partition_counts):
        eligible[topic] = sorted(m for m, topics in subscriptions.items() if topic in topics)
    for topic, members in eligible.items():
        if not members:
            continue
        for p in range(partition_counts[topic]):
            if (topic, p) not in owner:
                taker = min(members, key=lambda m: (len(held[m]), m))
                owner[(topic, p)] = taker
                held[taker].add((topic, p))
    _balance(held, eligible)
    return {m: _by_topic(tps) for m, tps in held.items()}


def _balance(held: dict[str, set[tuple[str, int]]], eligible: Mapping[str, list[str]]) -> None:
    """Move partitions from fuller to emptier eligible members while that narrows a gap
    of two or more. Each move lowers the sum of squared counts, so this ends."""
    moved = True
    while moved:
        moved = False
        for giver in sorted(held, key=lambda m: (-len(held[m]), m)):
            for tp in sorted(held[giver], reverse=True):
                candidates = [m for m in eligible[tp[0]] if len(held[m]) + 1 < len(held[giver])]
                if candidates:
                    taker = min(candidates, key=lambda m: (len(held[m]), m))
                    held[giver].discard(tp)
                    held[taker].add(tp)
                    moved = True
                    break
            if moved:
                break


def range_(subscriptions: Mapping[str, frozenset[str]], partition_counts: Mapping[str, int],
           current: Mapping[str, Assignment]) -> dict[str, Assignment]:
    """For each topic, split its partitions into contiguous ranges over the members that
    subscribe to it, in member id order; the first ``count % members`` get one more. Topics
    with the same partition count are co-partitioned: partition N of each goes to the same
    member."""
    del current  # a range is fixed by the members, not by who owned what
    result: dict[str, dict[str, set[int]]] = {m: {} for m in subscriptions}
    for topic in sorted(partition_counts):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        share, extra = divmod(partition_counts[topic], len(members))
        start = 0
        for i, member in enumerate(members):
            size = share + (1 if i < extra else 0)
            if size:
                result[member][topic] = set(range(start, start + size))
            start += size
    return {m: {t: frozenset(ps) for t, ps in a.items()} for m, a in result.items()}


def _by_topic(partitions: set[tuple[str, int]]) -> Assignment:
    grouped: dict[str, set[int]] = {}
    for topic, p in partitions:
        grouped.setdefault(topic, set()).add(p)
    return {t: frozenset(ps) for t, ps in grouped.items()}


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform, "range": range_}
"""By the names clients give in ``group.remote.assignor``; the first is the default."""
