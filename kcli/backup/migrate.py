"""Migrating topics from one cluster to another, live, exactly once, with group offsets.

Each topic is a :class:`~kcli.backup.copier.Job` keyed by the source cluster id and the
source and target topic names, with its checkpoint (progress and the exact offset map)
in the target cluster, so a stopped migration resumes where it stopped without
duplicating or skipping a record, from any machine.

Without ``--follow`` a run copies every partition up to the end seen when it started
(the last stable offset) and stops. With ``--follow`` it keeps copying new records,
checkpoints every few seconds, reports lag, and with ``--groups`` keeps translating the
source groups' committed offsets into the target (only into groups with no active
members, never backwards). A stop request (SIGINT) is honoured between batches: the
run flushes, writes a checkpoint, syncs groups and returns normally.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kcli.backup import capture
from kcli.backup.checkpoints import CheckpointStore
from kcli.backup.copier import (
    Copier,
    hold_timestamp_configs,
    relax_timestamp_configs,
    release_timestamp_configs,
)
from kcli.backup.events import Events
from kcli.backup.jobs import Job, SourceState
from kcli.backup.offsetmap import (
    GroupChange,
    OffsetMap,
    SourceCommit,
    TargetGroup,
    changes_to_apply,
    plan_groups,
    predicted_map,
)
from kcli.backup.restore import split_configs, wait_for_topic
from kcli.backup.schemas import IdTranslator
from kcli.client.cluster import TRANSIENT_ERRORS, Cluster, ErrorWatch
from kcli.errors import BadInput, OperationFailed, from_kafka_error


@dataclass(frozen=True)
class MigrateRequest:
    """What ``kcli migrate`` was asked to do."""

    patterns: tuple[str, ...] = ()
    all_topics: bool = False
    renames: Mapping[str, str] = field(default_factory=dict)
    groups: bool = False
    follow: bool = False
    force_groups: bool = False
    dry_run: bool = False
    replication: int | None = None
    """Replication factor of the topics created on the target (None: the source's,
    capped at the target's broker count with a warning)."""
    checkpoint_seconds: float = 5.0
    report_seconds: float = 5.0
    groups_seconds: float = 30.0
    registry_from: dict[str, Any] | None = None
    registry_to: dict[str, Any] | None = None
    """The two clusters' Schema Registries: framed records get the target's ids."""
    exactly_once: bool = False
    """Copy in transactions: records and checkpoint committed together (see copier)."""


@dataclass
class TopicStatus:
    """One migrated topic."""

    source: str
    target: str
    partitions: int
    created: bool
    resumed: bool
    copied: int = 0
    """Records written by this run."""
    matched: int = 0
    """Records this run found already written (after the last checkpoint)."""
    total: int = 0
    """Records the migration has copied over all its runs."""
    to_copy: int = 0
    """Offsets between where this run starts and where it stops (the records to copy,
    gaps included)."""
    lag: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"source": self.source, "target": self.target, "partitions": self.partitions,
                "created": self.created, "resumed": self.resumed, "copied": self.copied,
                "already_there": self.matched, "total": self.total, "to_copy": self.to_copy,
                "lag": self.lag}


@dataclass
class MigrateResult:
    """What a migration run did."""

    topics: list[TopicStatus]
    groups: list[GroupChange]
    seconds: float
    interrupted: bool = False
    dry_run: bool = False
    schemas: str | None = None


EXACTLY_ONCE_COMMIT_SECONDS = 1.0
EXACTLY_ONCE_COMMIT_RECORDS = 50_000
"""How often --exactly-once commits: what a crash makes the next run copy again, and
how long read_committed consumers of the target wait behind the open transaction."""


def transactional_id(jobs: Sequence[Job]) -> str:
    """The transactional id of a migration: the same for every run of the same topics
    from the same source, so a new run fences an old one still running and aborts
    what a crashed one left open."""
    keys = sorted(json.dumps(job.key, sort_keys=True) for job in jobs)
    return "kcli-migrate-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]


class StopFlag:
    """SIGINT sets it; the copy loop checks it between batches. A second SIGINT
    interrupts at once."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


class Migration:
    """One ``kcli migrate`` run."""

    def __init__(self, source: Cluster, source_config: Mapping[str, Any], target: Cluster,
                 target_config: Mapping[str, Any], request: MigrateRequest,
                 events: Events, stop: Callable[[], bool] = lambda: False) -> None:
        self.source = source
        self.source_config = dict(source_config)
        self.source_config.pop("allow.auto.create.topics", None)
        self.target = target
        self.target_config = dict(target_config)
        self.request = request
        self.events = events
        self.stop = stop
        self.store = CheckpointStore(target, self.target_config)
        self.translator: IdTranslator | None = None

    def run(self) -> MigrateResult:
        """Plan, create topics, copy (once or following), translate groups."""
        started = time.monotonic()
        request = self.request
        names = self._topics()
        for old in request.renames:
            if old not in names:
                raise BadInput(f"--rename {old}=...: {old} is not one of the topics migrated")
        layouts = capture.layouts(self.source, names)
        source_id = capture.cluster_id(self.source) or self.source.bootstrap
        target_id = capture.cluster_id(self.target)
        if target_id is not None and target_id == capture.cluster_id(self.source) and any(
                request.renames.get(n, n) == n for n in names):
            raise BadInput("source and target are the same cluster: give --rename for "
                           "every topic")
        tps = [(n, p) for n in names for p in range(layouts[n].partitions)]
        cuts = capture.cuts(self.source, tps)
        metadata = self.target.metadata()
        brokers = max(1, len(metadata.brokers))
        jobs: list[Job] = []
        statuses: list[TopicStatus] = []
        to_create: list[tuple[str, str]] = []
        deferred: dict[str, dict[str, str]] = {}
        for name in names:
            layout = layouts[name]
            target = request.renames.get(name, name)
            existing = metadata.topics.get(target)
            exists = existing is not None and (existing.error is None
                                               or existing.error.code() == 0)
            if exists and len(existing.partitions) != layout.partitions:
                raise OperationFailed(
                    f"{target} exists on the target with {len(existing.partitions)} "
                    f"partitions; {name} has {layout.partitions}",
                    hint="add partitions to make them equal, or migrate into a new topic "
                         "with --rename")
            later = split_configs(layout.configs)[1]
            if later:
                deferred[target] = later
            if not exists:
                to_create.append((name, target))
            sources = {p: SourceState(cuts[(name, p)].low, cuts[(name, p)].low,
                                      None if request.follow else cuts[(name, p)].target)
                       for p in range(layout.partitions)}
            jobs.append(Job("migrate", {"source": source_id, "source_topic": name,
                                        "target_topic": target},
                            name, target, layout.partitions, sources))
            statuses.append(TopicStatus(name, target, layout.partitions, not exists, False))
        transactional = request.exactly_once and not request.dry_run
        copier = Copier(self.target, self.target_config, self.store, self.events,
                        checkpoint_seconds=min(request.checkpoint_seconds,
                                               EXACTLY_ONCE_COMMIT_SECONDS)
                        if transactional else request.checkpoint_seconds,
                        checkpoint_records=EXACTLY_ONCE_COMMIT_RECORDS if transactional
                        else 200_000,
                        transactional_id=transactional_id(jobs) if transactional else None)
        translator = None
        if request.registry_from is not None and request.registry_to is not None \
                and not request.dry_run:
            from kcli.backup.schemas import LiveSchemas
            from kcli.client.schemas import RegistryClient

            translator = IdTranslator(LiveSchemas(RegistryClient(request.registry_from)),
                                      RegistryClient(request.registry_to),
                                      rename=request.renames, say=self.events.info)
            copier.rewrite = translator.rewrite
        self.translator = translator
        copier.load(jobs)
        for job, status in zip(jobs, statuses, strict=True):
            if job.resumed and status.created:
                self.events.warn(f"{job.target_topic} no longer exists on the target; the "
                                 "checkpoint of an earlier migration into it is ignored")
                job.reset()
            status.resumed = job.resumed
            for p, state in job.sources.items():
                state.end = job.initial[p].end if p in job.initial else state.end
            for p, initial in job.initial.items():
                job.sources.setdefault(p, initial)
            status.to_copy = sum(max(0, cuts[(job.source_topic, p)].high - s.next)
                                 for p, s in job.sources.items())
        if request.dry_run:
            copier.close()
            would_create = {target for _name, target in to_create}
            plan = self.sync_groups(jobs, created=would_create) if request.groups else []
            return MigrateResult(statuses, plan, time.monotonic() - started, dry_run=True)
        for name, target in to_create:
            from kcli.client.topics import create_topic

            layout = layouts[name]
            replication = request.replication or min(layout.replication, brokers)
            if replication < layout.replication and request.replication is None:
                self.events.warn(f"{target}: replication factor {replication} (the source "
                                 f"has {layout.replication}, the target {brokers} "
                                 "broker(s)); choose it with --replication-factor")
            self.events.info(f"creating {target} on the target ({layout.partitions} "
                             f"partition{'' if layout.partitions == 1 else 's'})")
            create_topic(self.target, target, layout.partitions, replication,
                         split_configs(layout.configs)[0])
            wait_for_topic(self.target, target, layout.partitions)
        groups: list[GroupChange] = []
        interrupted = False
        created = {target: deferred.get(target, {}) for _name, target in to_create}
        try:
            hold_timestamp_configs(self.target, jobs, created)
            copier.start(jobs)
            relax_timestamp_configs(self.target, jobs, self.events)
            interrupted = self._copy(copier, jobs, statuses)
            if request.follow or interrupted:
                copier.checkpoint(final=not request.follow)
            else:
                copier.finish()
            release_timestamp_configs(self.target, jobs, self.store)
        finally:
            copier.close()
        if request.groups:
            groups = self.sync_groups(jobs)
        for job, status in zip(jobs, statuses, strict=True):
            status.copied, status.matched, status.total = job.sent, job.matched, job.copied
            status.lag = self._lag(job)
        return MigrateResult(statuses, groups, time.monotonic() - started, interrupted,
                             schemas=translator.summary() if translator else None)

    def _topics(self) -> list[str]:
        from kcli.client.topics import list_topics, resolve_patterns

        if self.request.all_topics:
            names = [t.name for t in list_topics(self.source, with_size=False)]
            if not names:
                raise BadInput("the source cluster has no topics")
            return names
        if not self.request.patterns:
            raise BadInput("name the topics to migrate (names or globs), or give --all")
        return resolve_patterns(self.source, list(self.request.patterns))

    # -- copying

    def _consumer(self, jobs: Sequence[Job]) -> Any:
        from confluent_kafka import Consumer, TopicPartition

        from kcli.client.consumer import CONSUMER_DEFAULTS
        from kcli.client.offsets import watermarks

        config: dict[str, Any] = dict(CONSUMER_DEFAULTS)
        config.update(self.source_config)
        self.watch = ErrorWatch(self.source.bootstrap)
        config.update({"group.id": "kcli-migrate", "enable.auto.commit": False,
                       "enable.auto.offset.store": False, "enable.partition.eof": True,
                       "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                       "error_cb": self.watch})
        tps = [(j.source_topic, p) for j in jobs for p in j.sources]
        lows = watermarks(self.source, tps).low
        assignment = []
        for job in jobs:
            for p, state in sorted(job.sources.items()):
                if state.end is not None and state.next >= state.end:
                    continue
                low = lows.get((job.source_topic, p), 0)
                if low > state.next:
                    self.events.warn(f"{job.source_topic}[{p}]: offsets {state.next}.."
                                     f"{low - 1} were deleted on the source before they "
                                     "were copied")
                assignment.append(TopicPartition(job.source_topic, p, max(low, state.next)))
        consumer = Consumer(config)
        consumer.assign(assignment)
        return consumer, len(assignment)

    def _copy(self, copier: Copier, jobs: Sequence[Job], statuses: Sequence[TopicStatus],
              ) -> bool:
        """Copy until every partition reached its end (or forever when following).
        Returns True if stopped by a stop request."""
        from confluent_kafka import TopicPartition

        by_topic = {job.source_topic: job for job in jobs}
        consumer, active = self._consumer(jobs)
        follow = self.request.follow
        total = None if follow else sum(max(0, (s.end or 0) - s.next) for j in jobs
                                        for s in j.sources.values())
        self.events.start("migrating", total)
        send = copier.send
        advance = self.events.advance
        finished: set[tuple[str, int]] = set()
        last_report = last_groups = time.monotonic()

        def reached_end(job: Job, p: int) -> None:
            nonlocal active
            source = job.sources[p]
            assert source.end is not None
            copier.source_done(job, p, source.end)
            if (job.source_topic, p) not in finished:
                finished.add((job.source_topic, p))
                consumer.pause([TopicPartition(job.source_topic, p)])
                active -= 1

        try:
            while follow or active:
                if self.stop():
                    return True
                messages = consumer.consume(10_000, 0.1)
                if not messages:
                    self.watch.check()
                    copier.idle()
                taken = 0
                for m in messages:
                    job = by_topic.get(m.topic())
                    if job is None:
                        continue
                    p = m.partition()
                    source = job.sources[p]
                    error = m.error()
                    if error is not None:
                        if error.name() == "_PARTITION_EOF":
                            if source.end is not None and m.offset() >= source.end:
                                reached_end(job, p)
                            continue
                        if error.name() in TRANSIENT_ERRORS:
                            self.watch.check()
                            continue
                        raise from_kafka_error(error, f"read {m.topic()}[{p}]")
                    offset = m.offset()
                    if source.end is not None and offset >= source.end:
                        reached_end(job, p)
                        continue
                    ts_type, ts = m.timestamp()
                    send(job, p, offset, m.key(), m.value(), m.headers(), ts_type, ts)
                    taken += 1
                if taken:
                    advance(taken)
                if follow:
                    now = time.monotonic()
                    if now - last_report >= self.request.report_seconds:
                        last_report = now
                        lag = sum(self._lag_from(consumer, job) for job in jobs)
                        self.events.info(f"copied {copier.sent + copier.matched} records, "
                                         f"lag {lag}")
                    if self.request.groups and now - last_groups >= self.request.groups_seconds:
                        last_groups = now
                        copier.checkpoint()
                        self.sync_groups(jobs)
            return False
        finally:
            consumer.close()

    def _lag_from(self, consumer: Any, job: Job) -> int:
        from confluent_kafka import KafkaException, TopicPartition

        lag = 0
        for p, state in job.sources.items():
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(job.source_topic, p), cached=True)
            except KafkaException:  # lag is informative only
                continue
            if high is not None and high >= 0:
                lag += max(0, high - state.next)
        return lag

    def _lag(self, job: Job) -> int | None:
        from kcli.client.offsets import watermarks

        marks = watermarks(self.source, [(job.source_topic, p) for p in job.sources])
        return sum(max(0, marks.high.get((job.source_topic, p), s.next) - s.next)
                   for p, s in job.sources.items())

    # -- groups

    def sync_groups(self, jobs: Sequence[Job], created: set[str] | None = None,
                    ) -> list[GroupChange]:
        """Translate the source groups' committed offsets through the maps and commit
        them on the target (empty groups only, never backwards unless forced). With
        ``created`` (a dry run: the target topics that would be created), nothing is
        written and the part not copied yet is predicted as a copy without gaps."""
        from kcli.client.groups import commit_offsets, describe_group_or_empty
        from kcli.client.offsets import watermarks

        names = [job.source_topic for job in jobs]
        commits = capture.group_commits(self.source, names)
        if not commits:
            return []
        maps: dict[tuple[str, int], OffsetMap] = {}
        renames: dict[str, str] = {}
        ends = {}
        if created is not None:
            existing = [(j.target_topic, p) for j in jobs if j.target_topic not in created
                        for p in j.sources]
            ends = watermarks(self.target, existing).high
            stops = watermarks(self.source, [(j.source_topic, p) for j in jobs
                                             for p in j.sources]).high
        for job in jobs:
            renames[job.source_topic] = job.target_topic
            actual = job.maps()
            if created is None:
                for p, omap in actual.items():
                    maps[(job.source_topic, p)] = omap
                continue
            for p, source in job.sources.items():
                base = actual.get(p)
                state = job.targets.get(p)
                tgt_from = state.next if state else ends.get((job.target_topic, p), 0)
                stop = max(source.next, stops.get((job.source_topic, p), source.next))
                predicted = predicted_map(source.next, stop, [], tgt_from,
                                          base if base is not None and base.runs else None)
                if base is None or not base.runs:
                    predicted.src_start = source.start
                maps[(job.source_topic, p)] = predicted
        targets: dict[str, TargetGroup] = {}
        for group in sorted({c.group for c in commits}):
            detail = describe_group_or_empty(self.target, group)
            if detail.state == "Dead" and not detail.partitions:
                continue
            targets[group] = TargetGroup(
                detail.state, len(detail.members),
                {(p.topic, p.partition): p.committed for p in detail.partitions
                 if p.committed is not None})
        changes = plan_groups([SourceCommit(c.group, c.topic, c.partition, c.offset,
                                            c.metadata) for c in commits],
                              maps, renames, targets, self.request.force_groups)
        if created is not None:
            return changes
        for group, items in changes_to_apply(changes).items():
            commit_offsets(self.target, group, [
                (c.target_topic, c.partition, c.target_offset, c.metadata) for c in items
                if c.target_offset is not None])
        return changes


def run_migrate(source: Cluster, source_config: Mapping[str, Any], target: Cluster,
                target_config: Mapping[str, Any], request: MigrateRequest,
                events: Events) -> MigrateResult:
    """Migrate as ``request`` says; SIGINT stops it cleanly (see :class:`StopFlag`)."""
    with StopFlag() as flag:
        return Migration(source, source_config, target, target_config, request, events,
                         stop=lambda: flag.stopped).run()
