"""A backup run: a consistent cut of some topics into an archive, resumable, incremental.

A run is planned once: the topics, their layouts and configs, every group's committed
offsets on them, and per partition where the run starts (the log start, or where the
previous run stopped) and where it stops (the last stable offset seen at the start, or
the first offset at ``--until``). The plan and the cluster files are written before any
record, then ``checkpoint.json`` records each segment once it is durable. The records
themselves are copied by :class:`~kcli.backup.segments.SegmentPipeline`. A segment is
written to a ``.tmp`` file and renamed once complete, so an interrupted run leaves at
most a temp file, which the resumed run deletes; it restarts each partition at its last
durable segment's next offset. ``manifest.json`` is written last and then the checkpoint is
removed: the archive is only ever what a committed manifest names.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.backup import capture
from kcli.backup.archive import Archive, GroupOffset, TopicLayout
from kcli.backup.events import Events
from kcli.backup.manifest import (
    CHECKPOINT,
    MANIFEST,
    Checkpoint,
    FileEntry,
    Manifest,
    PartitionEntry,
    RunEntry,
    TopicEntry,
    TopicPlan,
    load_json,
    write_json_atomic,
)
from kcli.backup.records import GROUP_SCHEMA, write_container
from kcli.backup.schemas import fetch_schemas
from kcli.backup.segments import SEGMENT_BYTES, SegmentPipeline
from kcli.client.cluster import Cluster
from kcli.durable import fsync_dir
from kcli.errors import BadInput, KcliError, NotFound, OperationFailed


@dataclass(frozen=True)
class BackupRequest:
    """What ``kcli backup`` was asked to do."""

    root: Path
    patterns: tuple[str, ...] = ()
    all_topics: bool = False
    codec: str = "zstandard"
    level: int | None = None
    until_ms: int | None = None
    incremental: bool = False
    segment_bytes: int = SEGMENT_BYTES
    registry: dict[str, Any] | None = None
    """The source's Schema Registry client settings: the archive then carries the
    schemas its records reference."""

    def fingerprint(self) -> dict[str, Any]:
        """The parts a resumed run must agree with."""
        return {"patterns": list(self.patterns), "all": self.all_topics,
                "until": self.until_ms, "incremental": self.incremental}


@dataclass
class BackupResult:
    """What a run did."""

    manifest: Manifest
    run: int
    resumed: bool
    records: int
    bytes: int
    """Bytes written to the archive by this run (compressed)."""
    raw_bytes: int
    """Uncompressed Avro size of the records written by this run."""
    seconds: float
    topics: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------ the run

class BackupRun:
    """One ``kcli backup``: plan (or resume), copy, commit."""

    def __init__(self, cluster: Cluster, request: BackupRequest, events: Events,
                 consumer_config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.request = request
        self.events = events
        self.consumer_config = consumer_config
        self.root = request.root
        self.previous: Archive | None = None
        self.checkpoint: Checkpoint | None = None
        self.schema_ids: set[int] = set()

    # -- entry point

    def run(self) -> BackupResult:
        """Do the whole run; returns what was written."""
        started = time.monotonic()
        resumed = self._load_state()
        if self.checkpoint is None:
            self.checkpoint = self._plan()
        checkpoint = self.checkpoint
        if resumed:
            done = sum(p.record_count for t in checkpoint.topics for p in t.partitions)
            self.events.info(f"resuming run {checkpoint.run} of {self.root} "
                             f"({done} records already written)")
        self.schema_ids.update(checkpoint.schema_ids)
        self._clean_leftovers()
        self._copy()
        manifest = self._commit(self._write_schemas(checkpoint))
        run_records = sum(p.record_count for t in checkpoint.topics for p in t.partitions)
        run_bytes = manifest.runs[-1].bytes
        raw = sum(s.raw_bytes for t in checkpoint.topics for p in t.partitions
                  for s in p.segments)
        return BackupResult(manifest, checkpoint.run, resumed, run_records, run_bytes, raw,
                            time.monotonic() - started, [t.name for t in checkpoint.topics])

    # -- state on disk

    def _load_state(self) -> bool:
        """Open what DIR holds; returns True when resuming an unfinished run."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise BadInput(f"{root} is not a directory")
        manifest_path = root / MANIFEST
        checkpoint_path = root / CHECKPOINT
        if manifest_path.exists():
            self.previous = Archive.open(root)
        if checkpoint_path.exists():
            checkpoint = Checkpoint.parse(load_json(checkpoint_path), str(checkpoint_path))
            if self.previous is not None and any(
                    r.id == checkpoint.run_id for r in self.previous.manifest.runs):
                checkpoint_path.unlink()  # that run was committed; the checkpoint is stale
                fsync_dir(root)
            else:
                if checkpoint.request != self.request.fingerprint():
                    raise BadInput(
                        f"{root} holds an unfinished backup run started with other "
                        f"arguments ({_describe_request(checkpoint.request)})",
                        hint="rerun it with the same arguments to finish it, or delete "
                             f"{checkpoint_path} to abandon it")
                if self.previous is not None and (
                        checkpoint.parent_sha256 != self.previous.manifest_sha256):
                    raise OperationFailed(f"{checkpoint_path} does not continue the "
                                          f"archive's manifest", hint="delete it to abandon "
                                          "the unfinished run")
                self.checkpoint = checkpoint
                return True
        if self.previous is not None and not self.request.incremental:
            raise BadInput(f"{root} already holds a backup",
                           hint="add --incremental to continue it, or choose an empty "
                                "directory")
        if self.previous is None and root.exists() and any(root.iterdir()):
            raise BadInput(f"{root} is not empty and holds no kcli archive",
                           hint="choose an empty or new directory")
        return False

    def _plan(self) -> Checkpoint:
        """Capture the cluster and write the run's plan (cluster files, checkpoint)."""
        request = self.request
        cluster = self.cluster
        previous = self.previous.manifest if self.previous else None
        names = self._topics(previous)
        run = (previous.run if previous else 0) + 1
        started = capture.now_ms()
        layouts = capture.layouts(cluster, names)
        tps = [(name, p) for name in names for p in range(layouts[name].partitions)]
        with ThreadPoolExecutor(2) as pool:  # two independent sets of round trips
            groups_future = pool.submit(capture.group_commits, cluster, names)
            cuts = capture.cuts(cluster, tps, request.until_ms)
            commits = groups_future.result()
        source_id = capture.cluster_id(cluster)
        if previous is not None and previous.cluster_id and source_id and (
                previous.cluster_id != source_id):
            raise BadInput(f"{self.root} is a backup of cluster {previous.cluster_id}, "
                           f"not of {source_id}", hint="use another directory")

        # the cluster files: layouts and groups of every archived topic, updated
        all_layouts: dict[str, TopicLayout] = {}
        old_commits: list[GroupOffset] = []
        if self.previous is not None:
            all_layouts.update(self.previous.layouts())
            old_commits = [g for g in self.previous.group_offsets() if g.topic not in layouts]
        all_layouts.update(layouts)
        group_rows = sorted(old_commits + commits, key=lambda g: (g.group, g.topic, g.partition))
        folder = "cluster" if run == 1 else f"cluster/run-{run}"
        self.root.mkdir(parents=True, exist_ok=True)
        topics_path = self.root / folder / "topics.json"
        text = write_json_atomic(topics_path, {
            "topics": [all_layouts[n].to_dict() for n in sorted(all_layouts)]})
        topics_file = FileEntry(f"{folder}/topics.json", len(text),
                                hashlib.sha256(text).hexdigest())
        groups_path = self.root / folder / "groups.avro"
        written = write_container(groups_path, [g.to_record() for g in group_rows],
                                  codec="null", schema=GROUP_SCHEMA,
                                  metadata={"kcli.content": "group-offsets"})
        groups_file = FileEntry(f"{folder}/groups.avro", written.bytes, written.sha256)

        plans = []
        for name in names:
            old = previous.topic(name) if previous else None
            old_parts = {p.partition: p for p in old.partitions} if old else {}
            entries = []
            targets = {}
            for p in range(layouts[name].partitions):
                cut = cuts[(name, p)]
                start = old_parts[p].next_offset if p in old_parts else cut.low
                target = max(cut.target, start)
                entries.append(PartitionEntry(
                    partition=p, start_offset=start, next_offset=start,
                    log_start_offset=cut.low, high_watermark=cut.high,
                    last_stable_offset=cut.stable, snapshot_target=target))
                targets[p] = target
                if p in old_parts and cut.low > start:
                    self.events.warn(f"{name}[{p}]: offsets {start}..{cut.low - 1} were "
                                     "deleted by retention since the last run; recorded "
                                     "as a gap")
            plans.append(TopicPlan(name, entries, targets))
        checkpoint = Checkpoint(
            run=run, run_id=uuid.uuid4().hex,
            archive_id=previous.archive_id if previous else uuid.uuid4().hex,
            started_at=started, request=request.fingerprint(), cluster_id=source_id,
            bootstrap=cluster.bootstrap,
            parent_sha256=self.previous.manifest_sha256 if self.previous else None,
            topics_file=topics_file, groups_file=groups_file,
            group_count=len({g.group for g in group_rows}), topics=plans)
        self._save_checkpoint(checkpoint)
        return checkpoint

    def _topics(self, previous: Manifest | None) -> list[str]:
        from kcli.client.topics import list_topics, resolve_patterns

        request = self.request
        if request.all_topics:
            names = [t.name for t in list_topics(self.cluster, with_size=False)]
            if not names:
                raise NotFound("the cluster has no topics to back up")
            return names
        if request.patterns:
            return resolve_patterns(self.cluster, list(request.patterns))
        if previous is not None:
            existing = set(self.cluster.metadata().topics)
            names = []
            for topic in previous.topics:
                if topic.name in existing:
                    names.append(topic.name)
                else:
                    self.events.warn(f"topic {topic.name} no longer exists; the archive "
                                     "keeps what it has of it")
            if names:
                return names
        raise BadInput("name the topics to back up (names or globs), or give --all")

    def _save_checkpoint(self, checkpoint: Checkpoint) -> None:
        checkpoint.schema_ids = sorted(self.schema_ids)
        write_json_atomic(self.root / CHECKPOINT, checkpoint.to_dict())

    def _write_schemas(self, checkpoint: Checkpoint) -> FileEntry | None:
        """The schemas file: the previous run's schemas and those of this run's ids,
        fetched from the source registry."""
        known = {s.schema_id: s for s in (self.previous.schemas() if self.previous else [])}
        wanted = self.schema_ids - set(known)
        if wanted and self.request.registry is None:
            self.events.warn(f"records are framed with {len(wanted)} schema id(s) but no "
                             "schema registry is known (give --registry URL); the archive "
                             "does not carry their schemas")
        elif wanted:
            from kcli.client.schemas import RegistryClient

            registry = RegistryClient(self.request.registry or {})
            for schema in fetch_schemas(registry, wanted, missing=self.events.warn):
                known[schema.schema_id] = schema
        if not known:
            return None
        folder = "cluster" if checkpoint.run == 1 else f"cluster/run-{checkpoint.run}"
        text = write_json_atomic(self.root / folder / "schemas.json",
                                 {"schemas": [known[i].to_dict() for i in sorted(known)]})
        return FileEntry(f"{folder}/schemas.json", len(text), hashlib.sha256(text).hexdigest())

    def _clean_leftovers(self) -> None:
        """Delete temp files of an interrupted run, and segments it renamed but never
        recorded (they are written again)."""
        assert self.checkpoint is not None
        keep = set()
        if self.previous is not None:
            keep = {name for name, _, _ in self.previous.manifest.files()}
        for topic in self.checkpoint.topics:
            for part in topic.partitions:
                keep.update(s.path for s in part.segments)
        for path in self.root.rglob("*.tmp"):
            path.unlink()
        base = self.root / "topics"
        for plan in self.checkpoint.topics:
            folder = base / plan.name
            if not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                if path.is_file() and str(path.relative_to(self.root)) not in keep:
                    path.unlink()

    # -- copying

    def _copy(self) -> None:
        assert self.checkpoint is not None
        checkpoint = self.checkpoint
        request = self.request
        partitions = [(plan.name, entry, plan.targets[entry.partition])
                      for plan in checkpoint.topics for entry in plan.partitions]
        total = sum(max(0, target - entry.next_offset) for _, entry, target in partitions)
        self.events.start(f"backing up to {self.root}", total)
        SegmentPipeline(
            self.cluster, self.root, partitions, codec=request.codec, level=request.level,
            segment_bytes=request.segment_bytes, run_number=checkpoint.run,
            archive_id=checkpoint.archive_id, consumer_config=self.consumer_config,
            on_durable=lambda: self._save_checkpoint(checkpoint), events=self.events,
            schema_ids=self.schema_ids if self.request.registry is not None else None,
        ).run()

    # -- commit

    def _commit(self, schemas_file: FileEntry | None) -> Manifest:
        assert self.checkpoint is not None
        checkpoint = self.checkpoint
        previous = self.previous.manifest if self.previous else None
        topics: dict[str, TopicEntry] = {}
        order: list[str] = []
        if previous is not None:
            for topic in previous.topics:
                topics[topic.name] = topic
                order.append(topic.name)
        for plan in checkpoint.topics:
            old = topics.get(plan.name)
            old_parts = {p.partition: p for p in old.partitions} if old else {}
            merged = []
            for entry in plan.partitions:
                prior = old_parts.get(entry.partition)
                merged.append(prior.extended(entry) if prior else entry)
            if old is None:
                order.append(plan.name)
            topics[plan.name] = TopicEntry(plan.name, merged)
        run_bytes = sum(s.bytes for t in checkpoint.topics for p in t.partitions
                        for s in p.segments)
        run_bytes += checkpoint.topics_file.bytes + checkpoint.groups_file.bytes
        finished = capture.now_ms()
        run = RunEntry(
            run=checkpoint.run, id=checkpoint.run_id, started_at=checkpoint.started_at,
            finished_at=finished, codec=self.request.codec,
            topics=[t.name for t in checkpoint.topics], until=self.request.until_ms,
            records=sum(p.record_count for t in checkpoint.topics for p in t.partitions),
            bytes=run_bytes, parent_sha256=checkpoint.parent_sha256,
            cluster_files={"topics": checkpoint.topics_file.path,
                           "groups": checkpoint.groups_file.path})
        manifest = Manifest(
            archive_id=checkpoint.archive_id,
            cluster_id=checkpoint.cluster_id or (previous.cluster_id if previous else None),
            bootstrap=checkpoint.bootstrap,
            created_at=previous.created_at if previous else checkpoint.started_at,
            updated_at=finished, topics_file=checkpoint.topics_file,
            groups_file=checkpoint.groups_file, group_count=checkpoint.group_count,
            topics=[topics[name] for name in order],
            runs=(previous.runs if previous else []) + [run], schemas_file=schemas_file)
        for name, size, _sha in manifest.files():  # never name a missing or short file
            try:
                actual = (self.root / name).stat().st_size
            except FileNotFoundError:
                actual = -1
            if actual != size:
                raise OperationFailed(f"{self.root / name} changed while the backup ran")
        write_json_atomic(self.root / MANIFEST, manifest.to_dict())
        (self.root / CHECKPOINT).unlink()
        fsync_dir(self.root)
        return manifest


def _describe_request(fingerprint: dict[str, Any]) -> str:
    what = "--all" if fingerprint.get("all") else " ".join(fingerprint.get("patterns") or [])
    extra = []
    if fingerprint.get("incremental"):
        extra.append("--incremental")
    if fingerprint.get("until") is not None:
        extra.append(f"--until {fingerprint['until']}")
    return " ".join([what or "(the archive's topics)", *extra])


def run_backup(cluster: Cluster, request: BackupRequest, events: Events,
               consumer_config: dict[str, Any]) -> BackupResult:
    """Back up (or resume, or continue incrementally) as ``request`` says."""
    try:
        return BackupRun(cluster, request, events, consumer_config).run()
    except KcliError:
        raise
    except OSError as error:
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        raise OperationFailed(f"cannot write the archive{where}: "
                              f"{error.strerror or error}") from None
