"""Partition reassignment and requested leader elections, as pure rules on the metadata.

Kafka's controller (KIP-455, ``PartitionReassignmentReplicas``) moves a partition in
three steps, and so does this one:

1. ``reassign``: the target replicas that are new are *adding*, the current ones not in
   the target are *removing*; the partition's replicas become target + removing, so the
   new ones start fetching from the leader while the old ones keep serving.
2. The leader adds a caught-up replica to the ISR as for any follower (``alter_isr``).
3. ``complete``: once the ISR holds every target replica, the removing ones leave the
   replicas and the ISR; if the leader was one of them, the first target replica in the
   ISR takes over. A broker no longer listed deletes its copy (``apply_metadata``).

``reassign`` with no target cancels: the adding replicas go, the original set stays.
Every function changes the metadata in place and returns Kafka error codes per
partition; the controller runs them inside its metadata transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kcli.broker.cluster.metadata import ClusterMetadata, PartitionState
from kcli.broker.errors import ErrorCode

PREFERRED, UNCLEAN = 0, 1
"""ElectLeaders election types."""

TP = tuple[str, int]


@dataclass(frozen=True)
class Outcome:
    """What happened to one partition: an error code (0: done) and why."""

    error_code: int = ErrorCode.none
    message: str | None = None


def _partition(metadata: ClusterMetadata, topic: str, index: int) -> PartitionState | None:
    state = metadata.topics.get(topic)
    if state is None or not 0 <= index < len(state.partitions):
        return None
    return state.partitions[index]


def _changed(p: PartitionState, *, leader: int | None = None) -> None:
    if leader is not None and leader != p.leader:
        p.leader = leader
        p.leader_epoch += 1
    p.partition_epoch += 1


def reassign(metadata: ClusterMetadata, topic: str, index: int,
             target: Sequence[int] | None) -> Outcome:
    """Start (or, with ``target`` None, cancel) moving a partition to ``target``."""
    p = _partition(metadata, topic, index)
    if p is None:
        return Outcome(ErrorCode.unknown_topic_or_partition, f"{topic}-{index} does not exist")
    original = [r for r in p.replicas if r not in p.adding]
    if target is None:
        if not p.adding and not p.removing:
            return Outcome(ErrorCode.no_reassignment_in_progress,
                           f"no reassignment of {topic}-{index} is in progress")
        p.replicas = original
        p.isr = [r for r in p.isr if r in original] or p.isr
        leader = p.leader if p.leader in original else next(
            (r for r in original if r in p.isr), -1)
        p.adding, p.removing = [], []
        _changed(p, leader=leader)
        return Outcome()
    wanted = list(target)
    if not wanted or len(set(wanted)) != len(wanted):
        return Outcome(ErrorCode.invalid_replica_assignment,
                       f"replicas {wanted} must be distinct and not empty")
    unknown = [r for r in wanted if r not in metadata.brokers]
    if unknown:
        return Outcome(ErrorCode.invalid_replica_assignment,
                       f"broker(s) {unknown} are not registered")
    p.adding = [r for r in wanted if r not in original]
    p.removing = [r for r in original if r not in wanted]
    p.replicas = wanted + p.removing
    _changed(p)
    complete(p)
    return Outcome()


def target_replicas(p: PartitionState) -> list[int]:
    """Where a partition is going (its replicas when no move is in progress)."""
    return [r for r in p.replicas if r not in p.removing]


def complete(p: PartitionState) -> bool:
    """Finish a reassignment whose target replicas are all in the ISR; returns whether
    it finished."""
    if not p.adding and not p.removing:
        return False
    target = target_replicas(p)
    isr = [r for r in p.isr if r not in p.removing]
    if not isr or any(r not in p.isr for r in target):
        return False
    leader = p.leader if p.leader in target else next(r for r in target if r in isr)
    p.replicas, p.isr = target, isr
    p.adding, p.removing = [], []
    _changed(p, leader=leader)
    return True


def in_progress(metadata: ClusterMetadata,
                wanted: Iterable[TP] | None = None) -> list[tuple[TP, PartitionState]]:
    """The partitions being moved, of ``wanted`` (None: all), in topic order."""
    keys = set(wanted) if wanted is not None else None
    return [((topic.name, index), p)
            for topic in sorted(metadata.topics.values(), key=lambda t: t.name)
            for index, p in enumerate(topic.partitions)
            if (p.adding or p.removing) and (keys is None or (topic.name, index) in keys)]


def elect(metadata: ClusterMetadata, topic: str, index: int, election: int,
          live: set[int]) -> Outcome:
    """ElectLeaders for one partition: the preferred replica (the first one) when it is
    live and in sync; or, unclean, any live replica of a partition with no live leader."""
    p = _partition(metadata, topic, index)
    if p is None:
        return Outcome(ErrorCode.unknown_topic_or_partition, f"{topic}-{index} does not exist")
    if election == PREFERRED:
        preferred = p.replicas[0]
        if p.leader == preferred:
            return Outcome(ErrorCode.election_not_needed, "the preferred replica leads")
        if preferred not in live or preferred not in p.isr:
            return Outcome(ErrorCode.preferred_leader_not_available,
                           f"preferred replica {preferred} is not live and in sync")
        _changed(p, leader=preferred)
        return Outcome()
    if p.leader >= 0 and p.leader in live:
        return Outcome(ErrorCode.election_not_needed, f"{p.leader} leads")
    candidates = [r for r in p.replicas if r in live and r in p.isr] or [
        r for r in p.replicas if r in live]
    if not candidates:
        return Outcome(ErrorCode.eligible_leaders_not_available, "no replica is live")
    leader = candidates[0]
    if leader not in p.isr:
        p.isr = [leader]
    _changed(p, leader=leader)
    return Outcome()


def imbalanced(metadata: ClusterMetadata, live: set[int]) -> list[TP]:
    """Partitions whose preferred replica could lead and does not: what the automatic
    leader rebalance (``auto.leader.rebalance.enable``) moves."""
    return [(topic.name, index)
            for topic in metadata.topics.values()
            for index, p in enumerate(topic.partitions)
            if p.replicas and p.leader != p.replicas[0] and p.replicas[0] in live
            and p.replicas[0] in p.isr and not p.adding and not p.removing]
