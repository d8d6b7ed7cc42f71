"""Restoring an archive into a cluster: topics, records, and translated group offsets.

Before anything is written, the archive gets every check that decodes no record
(:meth:`~kcli.backup.archive.Archive.check`: the manifest's consistency, the sha256 of
every file), and each segment is checked again as it is read, before any of its
records is sent (the checks ``verify`` runs, through the same reader); the
target topics are compared with the archive (a differing partition count stops the
restore unless ``--repartition``), and the checkpoints of earlier restores of the same
archive are read from the target. Topics that do not exist are created with the saved
partition count and configs, except configs that would change the records as they are
written back (``message.timestamp.type=LogAppendTime`` would restamp them; timestamp
bounds would refuse old ones): those are applied once the records are in.

Each topic is one :class:`~kcli.backup.copier.Job` (keyed by the archive id and the
source and target topic names), so restoring the same archive again continues where
the last restore stopped, and does nothing once it is complete; after an incremental
backup it restores only the new records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.backup.archive import Archive, GroupOffset, TopicLayout
from kcli.backup.capture import DEFERRED_CONFIGS
from kcli.backup.checkpoints import CheckpointStore
from kcli.backup.copier import (
    Copier,
    hold_timestamp_configs,
    relax_timestamp_configs,
    release_timestamp_configs,
)
from kcli.backup.events import Events
from kcli.backup.jobs import Job, SourceState, topic_renames
from kcli.backup.manifest import TopicEntry
from kcli.backup.offsetmap import (
    GroupChange,
    OffsetMap,
    SourceCommit,
    TargetGroup,
    changes_to_apply,
    plan_groups,
    predicted_map,
)
from kcli.backup.schemas import ArchiveSchemas, IdTranslator
from kcli.client.cluster import Cluster
from kcli.errors import NotFound, OperationFailed, Unreachable


@dataclass(frozen=True)
class RestoreRequest:
    """What ``kcli restore`` was asked to do."""

    root: Path
    topics: tuple[str, ...] = ()
    """``OLD`` (only this topic) or ``OLD=NEW`` (and rename it); empty: every topic."""
    groups: bool = False
    dry_run: bool = False
    repartition: bool = False
    force_groups: bool = False
    registry: dict[str, Any] | None = None
    """The target's Schema Registry client settings, when one is known."""


@dataclass
class TopicPlan:
    """What the restore does with one archived topic."""

    source: str
    target: str
    partitions: int
    target_partitions: int
    action: str
    """create, write (existing empty topic), resume, done, or nothing (empty archive)."""
    records: int
    """Records in the archive."""
    to_copy: int
    """Records not yet in the target."""
    configs: dict[str, str]
    deferred: dict[str, str]
    repartition: bool = False
    copied: int = 0
    matched: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"source": self.source, "target": self.target, "action": self.action,
                "partitions": self.partitions, "target_partitions": self.target_partitions,
                "repartition": self.repartition, "records": self.records,
                "to_copy": self.to_copy, "copied": self.copied,
                "already_there": self.matched, "configs": self.configs,
                "deferred_configs": self.deferred}


@dataclass
class RestoreResult:
    """What a restore did (or, with --dry-run, would do)."""

    archive: str
    dry_run: bool
    topics: list[TopicPlan]
    groups: list[GroupChange] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    schemas: str | None = None
    """What happened to the archive's schemas (kept, rewritten), if it has any."""


def wait_for_topic(cluster: Cluster, name: str, partitions: int) -> None:
    """Wait until a new topic has a leader for every partition."""
    deadline = time.monotonic() + cluster.timeout
    while time.monotonic() < deadline:
        topic = cluster.metadata(name).topics.get(name)
        if (topic is not None and (topic.error is None or topic.error.code() == 0)
                and len(topic.partitions) >= partitions
                and all(p.leader >= 0 for p in topic.partitions.values())):
            return
        time.sleep(0.05)
    raise Unreachable(f"topic {name} was created but has no leader after "
                      f"{cluster.timeout:g}s")


def split_configs(configs: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(configs to create a topic with, configs to apply after its records are in)."""
    now = {k: v for k, v in configs.items() if k not in DEFERRED_CONFIGS}
    later = {k: v for k, v in configs.items() if k in DEFERRED_CONFIGS}
    return now, later


class Restore:
    """One ``kcli restore``."""

    def __init__(self, cluster: Cluster, client_config: Mapping[str, Any],
                 request: RestoreRequest, events: Events) -> None:
        self.cluster = cluster
        self.client_config = dict(client_config)
        self.request = request
        self.events = events
        self.archive = Archive.open(request.root)
        self.store = CheckpointStore(cluster, self.client_config)

    def run(self) -> RestoreResult:
        """Plan, then (unless a dry run) create topics, copy, configure, translate."""
        started = time.monotonic()
        archive = self.archive
        layouts = archive.check()
        selected = self._selection()
        manifest = archive.manifest
        metadata = self.cluster.metadata()
        brokers = max(1, len(metadata.brokers))
        plans: list[TopicPlan] = []
        jobs: list[Job] = []
        for source, target in selected.items():
            entry = manifest.topic(source)
            assert entry is not None
            layout = layouts[source]
            existing = metadata.topics.get(target)
            exists = existing is not None and (existing.error is None
                                               or existing.error.code() == 0)
            target_partitions = len(existing.partitions) if exists else layout.partitions
            repartition = target_partitions != layout.partitions
            if repartition and not self.request.repartition:
                raise OperationFailed(
                    f"topic {target} exists with {target_partitions} partitions; the archive "
                    f"has {layout.partitions} for {source}",
                    hint="add --repartition to spread records by key hash (committed "
                         "offsets are then translated by time, at-least-once), or restore "
                         "under another name with --topic OLD=NEW")
            now, later = split_configs(layout.configs)
            job = Job("restore", {"archive": manifest.archive_id, "source_topic": source,
                                  "target_topic": target},
                      source, target, target_partitions,
                      {p.partition: SourceState(p.start_offset, p.start_offset, p.next_offset)
                       for p in entry.partitions}, repartition)
            jobs.append(job)
            plans.append(TopicPlan(
                source=source, target=target, partitions=layout.partitions,
                target_partitions=target_partitions,
                action="write" if exists else "create", records=entry.record_count,
                to_copy=entry.record_count, configs=now, deferred=later,
                repartition=repartition))
            self._warn_fidelity(entry, layout, target)
            if exists and any(p.max_record_bytes > 1_000_000 for p in entry.partitions):
                self.events.warn(f"{source} has records over 1 MB; {target} must accept "
                                 "them (max.message.bytes)")
        copier = Copier(self.cluster, self.client_config, self.store, self.events,
                        max_record_bytes=max((p.max_record_bytes for t in manifest.topics
                                              for p in t.partitions), default=0))
        copier.load(jobs)
        for plan, job in zip(plans, jobs, strict=True):
            if job.resumed and plan.action == "create":
                self.events.warn(f"{plan.target} no longer exists; an earlier restore's "
                                 "checkpoint of it is ignored")
                job.reset()
            if job.resumed:
                plan.action = "done" if job.done and all(
                    s.next >= (s.end or 0) for s in job.sources.values()) else "resume"
                entry = manifest.topic(plan.source)
                assert entry is not None
                plan.to_copy = _records_after(entry, {p: s.next for p, s in
                                                      job.sources.items()})
            elif plan.records == 0 and plan.action == "write":
                plan.action = "nothing"
        groups: list[GroupChange] = []
        if self.request.dry_run:
            copier.close()
            if self.request.groups:
                groups = self._group_plan(jobs, selected, predicted=True)
            return RestoreResult(str(self.request.root), True, plans, groups,
                                 time.monotonic() - started)
        translator = self._schema_translator(selected)
        copier.rewrite = translator.rewrite if translator is not None else None
        try:
            self._create_topics(plans, layouts, brokers)
            created = {p.target: p.deferred for p in plans if p.action == "create"}
            busy = [job for job in jobs if job.target_topic in created or _has_work(job)]
            hold_timestamp_configs(self.cluster, busy, created)
            copier.start(jobs)
            relax_timestamp_configs(self.cluster, busy, self.events)
            total = sum(p.to_copy for p in plans)
            self.events.start(f"restoring {self.request.root}", total)
            for plan, job in zip(plans, jobs, strict=True):
                entry = manifest.topic(plan.source)
                assert entry is not None
                self._copy(copier, job, entry)
                plan.copied, plan.matched = job.sent, job.matched
            copier.finish()
            release_timestamp_configs(self.cluster, busy, self.store)
        finally:
            copier.close()
        if self.request.groups:
            groups = self._group_plan(jobs, selected, predicted=False)
            self._apply_groups(groups)
        return RestoreResult(str(self.request.root), False, plans, groups,
                             time.monotonic() - started,
                             schemas=translator.summary() if translator else None)

    def _schema_translator(self, selected: Mapping[str, str]) -> IdTranslator | None:
        """Schema ids of framed records follow the archive's schemas into the target
        registry (see kcli.backup.schemas); without one they are left as they are."""
        schemas = self.archive.schemas()
        if not schemas:
            return None
        if self.request.registry is None:
            self.events.warn(f"the archive carries {len(schemas)} schema(s) but no schema "
                             "registry is known for the target (give --registry URL); "
                             "record schema ids are left as they are")
            return None
        from kcli.client.schemas import RegistryClient

        return IdTranslator(ArchiveSchemas(schemas), RegistryClient(self.request.registry),
                            rename={s: t for s, t in selected.items() if s != t},
                            say=self.events.info)

    # -- planning

    def _selection(self) -> dict[str, str]:
        manifest = self.archive.manifest
        names = [t.name for t in manifest.topics]
        if not self.request.topics:
            return {n: n for n in names}
        chosen = topic_renames(self.request.topics, "--topic", plain=True)
        for old in chosen:
            if old not in names:
                raise NotFound(f"the archive has no topic {old!r} (it has "
                               f"{', '.join(names) or 'none'})")
        return chosen

    def _warn_fidelity(self, entry: TopicEntry, layout: TopicLayout, target: str) -> None:
        log_append = sum(p.log_append_time_records for p in entry.partitions)
        if log_append:
            self.events.warn(
                f"{entry.name}: {log_append} records had LogAppendTime timestamps; Kafka "
                f"cannot restore that type, so {target} gets them as CreateTime with the "
                "same values")
        retention = layout.configs.get("retention.ms")
        oldest = min((s.min_ts for p in entry.partitions for s in p.segments
                      if s.min_ts is not None), default=None)
        if retention is not None and oldest is not None and int(retention) >= 0:
            age = int(time.time() * 1000) - oldest
            if age > int(retention):
                self.events.warn(f"{entry.name}: records are older than retention.ms="
                                 f"{retention}; the target will delete them soon after "
                                 "the restore")

    def _create_topics(self, plans: Sequence[TopicPlan], layouts: Mapping[str, TopicLayout],
                       brokers: int) -> None:
        from kcli.client.topics import create_topic

        for plan in plans:
            if plan.action != "create":
                continue
            layout = layouts[plan.source]
            replication = min(layout.replication, brokers)
            if replication < layout.replication:
                self.events.warn(f"{plan.target}: replication factor {replication} (the "
                                 f"source had {layout.replication}, the target has "
                                 f"{brokers} broker(s))")
            self.events.info(f"creating {plan.target} ({layout.partitions} "
                             f"partition{'' if layout.partitions == 1 else 's'})")
            create_topic(self.cluster, plan.target, layout.partitions, replication,
                         plan.configs)
            wait_for_topic(self.cluster, plan.target, layout.partitions)

    # -- copying

    def _copy(self, copier: Copier, job: Job, entry: TopicEntry) -> None:
        from concurrent.futures import ThreadPoolExecutor

        copier.activate(job)
        with ThreadPoolExecutor(2, "kcli-restore-read") as pool:
            for partition in entry.partitions:
                source = job.sources[partition.partition]
                if source.next >= partition.next_offset:
                    continue
                records = self.archive.records(entry.name, partition, source.next, pool)
                copier.send_records(job, partition.partition, records, self.events.advance)
                copier.source_done(job, partition.partition, partition.next_offset)

    # -- groups

    def _group_plan(self, jobs: Sequence[Job], selected: Mapping[str, str],
                    predicted: bool) -> list[GroupChange]:
        from kcli.client.groups import describe_group_or_empty

        captured = [g for g in self.archive.group_offsets() if g.topic in selected]
        if not captured:
            return []
        manifest = self.archive.manifest
        maps: dict[tuple[str, int], OffsetMap] = {}
        repartitioned: list[Job] = []
        for job in jobs:
            if job.repartition:
                repartitioned.append(job)
                continue
            entry = manifest.topic(job.source_topic)
            assert entry is not None
            actual = job.maps()
            for partition in entry.partitions:
                p = partition.partition
                if predicted:
                    source = job.sources[p]
                    state = job.targets.get(p)
                    base_map = actual.get(p)
                    gaps = [g for g in partition.gaps if g[1] > source.next]
                    tgt_from = state.next if state else 0
                    maps[(job.source_topic, p)] = predicted_map(
                        source.next, partition.next_offset, gaps, tgt_from,
                        base_map if base_map is not None and base_map.runs else None)
                    if base_map is None or not base_map.runs:
                        maps[(job.source_topic, p)].src_start = partition.start_offset
                elif p in actual:
                    maps[(job.source_topic, p)] = actual[p]
        targets: dict[str, TargetGroup] = {}
        for group in sorted({g.group for g in captured}):
            detail = describe_group_or_empty(self.cluster, group)
            if detail.state == "Dead" and not detail.partitions:
                continue
            targets[group] = TargetGroup(
                detail.state, len(detail.members),
                {(p.topic, p.partition): p.committed for p in detail.partitions
                 if p.committed is not None})
        commits = [SourceCommit(g.group, g.topic, g.partition, g.offset, g.metadata)
                   for g in captured]
        changes = plan_groups(commits, maps, selected, targets, self.request.force_groups)
        for job in repartitioned:
            changes.extend(self._by_time(job, captured, targets, predicted))
        return changes

    def _by_time(self, job: Job, captured: Sequence[GroupOffset],
                 targets: Mapping[str, TargetGroup], predicted: bool) -> list[GroupChange]:
        """Rule 6: the partition count changed, so a group's position is carried over
        by time: on every target partition, the first record at or after the earliest
        timestamp the group had not read on any source partition (at-least-once)."""
        from kcli.client.offsets import offsets_for_time

        entry = self.archive.manifest.topic(job.source_topic)
        assert entry is not None
        by_partition = {p.partition: p for p in entry.partitions}
        out = []
        for group in sorted({g.group for g in captured if g.topic == job.source_topic}):
            commits = [g for g in captured if g.group == group and g.topic == job.source_topic]
            times = []
            for commit in commits:
                partition = by_partition.get(commit.partition)
                if partition is None:
                    continue
                for record in self.archive.records(entry.name, partition, commit.offset):
                    times.append(record["timestamp"])
                    break
            self.events.warn(f"group {group}: {job.target_topic} has a different partition "
                             "count, so its offsets are translated by time (at-least-once: "
                             "some records may be read again)")
            tps = [(job.target_topic, p) for p in range(job.target_partitions)]
            if predicted:
                found: dict[tuple[str, int], int | None] = dict.fromkeys(tps)
            elif times:
                found = offsets_for_time(self.cluster, tps, min(times))
            else:
                found = dict.fromkeys(tps)
            target_group = targets.get(group)
            for _topic, p in tps:
                state = job.targets.get(p)
                end = state.next if state else 0
                offset = found.get((job.target_topic, p))
                target = end if offset is None else offset
                current = target_group.committed.get((job.target_topic, p)) if (
                    target_group) else None
                action, reason = "commit", "translated by time (rule 6)"
                if target_group is not None and (
                        target_group.members or target_group.state not in
                        ("Empty", "Dead", "Unknown")):
                    action, reason = "skip", "group has active members on the target"
                elif current is not None and current > target and not self.request.force_groups:
                    action, reason = "skip", f"would move backwards from {current}"
                out.append(GroupChange(
                    group=group, source_topic=job.source_topic, partition=p,
                    target_topic=job.target_topic, source_offset=-1, target_offset=target,
                    current=current, rule=6, action=action, reason=reason,
                    metadata=commits[0].metadata if commits else None))
        return out

    def _apply_groups(self, changes: Sequence[GroupChange]) -> None:
        from kcli.client.groups import commit_offsets

        for group, items in changes_to_apply(changes).items():
            commit_offsets(self.cluster, group, [
                (c.target_topic, c.partition, c.target_offset, c.metadata) for c in items
                if c.target_offset is not None])


def _has_work(job: Job) -> bool:
    return any(s.end is None or s.next < s.end for s in job.sources.values())


def _records_after(entry: TopicEntry, positions: Mapping[int, int]) -> int:
    """Archived records at or after each partition's position (from segment counts;
    exact for whole segments, an upper bound inside one)."""
    total = 0
    for partition in entry.partitions:
        position = positions.get(partition.partition, partition.start_offset)
        for segment in partition.segments:
            if segment.next_offset <= position:
                continue
            if segment.start_offset >= position:
                total += segment.record_count
            else:
                total += min(segment.record_count, segment.last_offset - position + 1)
    return total


def run_restore(cluster: Cluster, client_config: Mapping[str, Any], request: RestoreRequest,
                events: Events) -> RestoreResult:
    """Restore as ``request`` says."""
    return Restore(cluster, client_config, request, events).run()
