"""Opening an archive: its manifest, cluster files and records; ``verify`` and ``ls``.

An archive is a directory::

    manifest.json                        written last: the commit marker
    cluster/topics.json                  partitions, replication, non-default configs
    cluster/groups.avro                  committed offsets of every group on those topics
    cluster/run-<N>/...                  the same two files as captured by incremental run N
    topics/<topic>/p=<N>/seg-<20 digits>.avro   the records, one container file per segment
    checkpoint.json                      only while a run is unfinished

Nothing here writes; everything that reads checks what it reads against the manifest
(sha256, sizes, offsets) and raises :class:`~kcli.backup.records.ArchiveCorrupt` with
the file named.

Where this departs from ``shared/reference/backup-and-migration.md``, and why:

- Incremental run N (N > 1) writes its cluster files to ``cluster/run-<N>/`` instead of
  replacing ``cluster/topics.json`` and ``cluster/groups.avro``: replacing them before
  the new manifest is committed would leave the old manifest naming changed files, and
  after it the new one naming files not yet written. Each run's files stay (the group
  offsets of every run are kept), the manifest names the latest ones, and each run
  entry names its own.
- Segments record a ``first_offset`` (the first record) besides ``start_offset`` (where
  the segment's range begins: the previous segment's ``next_offset``), ``raw_bytes``
  and the ``run`` that wrote them: with gaps the two offsets differ.
- Configs are kept in ``cluster/topics.json`` only (the manifest names that file with
  its sha256).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.backup.manifest import (
    CHECKPOINT,
    MANIFEST,
    FileEntry,
    Manifest,
    PartitionEntry,
    SegmentEntry,
    check_partition,
    load_json,
    record_runs,
)
from kcli.backup.reading import file_sha256, read_container, read_segment_ahead
from kcli.backup.records import GROUP_SCHEMA, ArchiveCorrupt
from kcli.backup.schemas import ArchivedSchema
from kcli.errors import NotFound, OperationFailed


@dataclass(frozen=True)
class TopicLayout:
    """A topic as captured: partitions, replication factor, non-default configs."""

    name: str
    partitions: int
    replication: int
    configs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (one entry of cluster/topics.json)."""
        return {"name": self.name, "partitions": self.partitions,
                "replication": self.replication, "configs": dict(sorted(self.configs.items()))}


@dataclass(frozen=True)
class GroupOffset:
    """One committed offset of a consumer group, as captured."""

    group: str
    topic: str
    partition: int
    offset: int
    metadata: str | None = None
    captured_at: int = 0

    def to_record(self) -> dict[str, Any]:
        """The Avro record (see GROUP_SCHEMA)."""
        return {"group": self.group, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "metadata": self.metadata,
                "captured_at": self.captured_at}


def parse_layouts(data: Any, path: str) -> dict[str, TopicLayout]:
    """cluster/topics.json -> {name: layout}."""
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        raise ArchiveCorrupt(path, "expected {\"topics\": [...]}")
    out = {}
    for item in data["topics"]:
        try:
            layout = TopicLayout(str(item["name"]), int(item["partitions"]),
                                 int(item["replication"]),
                                 {str(k): str(v) for k, v in (item.get("configs") or {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ArchiveCorrupt(path, f"bad topic entry {item!r}") from None
        out[layout.name] = layout
    return out


@dataclass
class VerifyReport:
    """What ``verify`` checked."""

    files: int = 0
    segments: int = 0
    records: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


class Archive:
    """A committed archive, opened read-only."""

    def __init__(self, root: Path, manifest: Manifest, manifest_sha256: str) -> None:
        self.root = root
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256

    @classmethod
    def open(cls, root: Path) -> Archive:
        """Open DIR: NotFound if there is no archive there; ArchiveCorrupt if the
        manifest is damaged; OperationFailed if only an unfinished run is there."""
        if not root.exists():
            raise NotFound(f"no archive at {root} (the directory does not exist)")
        if not root.is_dir():
            raise NotFound(f"no archive at {root} (not a directory)")
        path = root / MANIFEST
        try:
            data = load_json(path)
        except FileNotFoundError:
            if (root / CHECKPOINT).exists():
                raise OperationFailed(
                    f"{root} holds an unfinished backup and no manifest yet",
                    hint="rerun the same kcli backup command to finish it") from None
            raise NotFound(f"no archive at {root} (no {MANIFEST})") from None
        manifest = Manifest.parse(data, str(path))
        sha, _size = file_sha256(path)
        return cls(root, manifest, sha)

    # -- cluster files

    def _checked(self, entry: FileEntry) -> Path:
        path = self.root / entry.path
        sha, size = file_sha256(path)
        if size != entry.bytes or sha != entry.sha256:
            raise ArchiveCorrupt(path, "sha256 differs from the manifest (the file changed)")
        return path

    def layouts(self) -> dict[str, TopicLayout]:
        """Partitions, replication and configs of every archived topic."""
        path = self._checked(self.manifest.topics_file)
        layouts = parse_layouts(load_json(path), str(path))
        for topic in self.manifest.topics:
            if topic.name not in layouts:
                raise ArchiveCorrupt(path, f"topic {topic.name!r} of the manifest is missing")
        return layouts

    def group_offsets(self) -> list[GroupOffset]:
        """Committed offsets captured by the latest run."""
        path = self._checked(self.manifest.groups_file)
        out = []
        for record in read_container(path, expect={"kcli.content": "group-offsets"},
                                     schema=GROUP_SCHEMA):
            try:
                out.append(GroupOffset(**record))
            except TypeError:
                raise ArchiveCorrupt(path, "records do not match the group schema") from None
        return out

    def schemas(self) -> list[ArchivedSchema]:
        """The Schema Registry schemas the archive's records reference (none for an
        archive written without a registry, or by an older kcli)."""
        entry = self.manifest.schemas_file
        if entry is None:
            return []
        path = self._checked(entry)
        try:
            return [ArchivedSchema.from_dict(doc) for doc in load_json(path)["schemas"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ArchiveCorrupt(path, f"not a schemas file: {error}") from None

    # -- records

    def path_of(self, segment: SegmentEntry) -> Path:
        """Absolute path of a segment file."""
        return self.root / segment.path

    def check(self) -> dict[str, TopicLayout]:
        """Every check that decodes no record, so nothing has to be written before the
        archive is known to be whole: :meth:`check_manifest`, then the size and sha256 of
        every segment file (they are compressed, so this reads far less than the
        records). Returns the topics' layouts."""
        layouts = self.check_manifest()
        for topic in self.manifest.topics:
            for partition in topic.partitions:
                for segment in partition.segments:
                    path = self.path_of(segment)
                    if file_sha256(path) != (segment.sha256, segment.bytes):
                        raise ArchiveCorrupt(path, "sha256 differs from the manifest (the "
                                                   "file changed after it was written)")
        return layouts

    def check_manifest(self) -> dict[str, TopicLayout]:
        """The cluster files against their sha256, the manifest against topics.json
        (every archived partition exists there, once) and every partition's entry
        against itself (:func:`~kcli.backup.manifest.check_partition`). Returns the
        topics' layouts."""
        where = str(self.root / MANIFEST)
        layouts = self.layouts()
        self._checked(self.manifest.groups_file)
        for topic in self.manifest.topics:
            numbers = [p.partition for p in topic.partitions]
            count = layouts[topic.name].partitions
            if len(set(numbers)) != len(numbers) or not all(0 <= n < count for n in numbers):
                raise ArchiveCorrupt(where, f"{topic.name} has partitions {numbers}; "
                                            f"topics.json says it has {count}")
            for partition in topic.partitions:
                check_partition(where, topic.name, partition)
        return layouts

    def records(self, topic: str, partition: PartitionEntry,
                from_offset: int | None = None, pool: Any = None) -> Iterator[dict[str, Any]]:
        """Records of one partition in offset order, from ``from_offset`` on. Each
        segment file is checked (size, sha256) before any of its records is yielded,
        and its records as they are decoded: exactly the offsets the manifest's gaps
        leave in the segment's range, in order, then its timestamp range. With ``pool``
        (a ThreadPoolExecutor), blocks are decompressed ahead on it. The partition's
        entry is taken as checked (:meth:`check_manifest`)."""
        segments = partition.segments
        start = 0
        if from_offset is not None and segments:
            nexts = [s.next_offset for s in segments]
            start = bisect.bisect_right(nexts, from_offset)
        expect = {"kcli.topic": topic, "kcli.partition": str(partition.partition)}
        for segment in segments[start:]:
            path = self.path_of(segment)
            runs = record_runs(segment.start_offset, segment.next_offset, partition.gaps)
            runs.append((-1, -1))  # no offset after the last run is expected
            run = 0
            want, run_end = runs[0]
            lo = hi = None
            for record in read_segment_ahead(path, pool, expect,
                                             digest=(segment.bytes, segment.sha256)):
                offset = record["offset"]
                if offset != want:
                    raise ArchiveCorrupt(path, _unexpected(offset, want, segment))
                want += 1
                if want == run_end:
                    run += 1
                    want, run_end = runs[run]
                ts = record["timestamp"]
                if ts >= 0:
                    if lo is None or ts < lo:
                        lo = ts
                    if hi is None or ts > hi:
                        hi = ts
                if from_offset is None or offset >= from_offset:
                    yield record
            if want != -1:
                raise ArchiveCorrupt(path, f"records end before offset {want}; the "
                                           f"manifest says {segment.record_count} records "
                                           f"up to {segment.last_offset}")
            if (lo, hi) != (segment.min_ts, segment.max_ts):
                raise ArchiveCorrupt(path, f"timestamps from {lo} to {hi}, the manifest "
                                           f"says {segment.min_ts} to {segment.max_ts}")

    # -- verify

    def verify(self) -> VerifyReport:
        """Every check there is: :meth:`check_manifest`, then every segment read back
        through :meth:`records` (the reader a restore uses, with the same checks)."""
        from concurrent.futures import ThreadPoolExecutor

        report = VerifyReport()
        self.check_manifest()
        report.files += 2
        names = {g.group for g in self.group_offsets()}
        if len(names) != self.manifest.group_count:
            report.warnings.append(f"{len(names)} groups in {self.manifest.groups_file.path}, "
                                   f"the manifest says {self.manifest.group_count}")
        with ThreadPoolExecutor(2, "kcli-verify-read") as pool:
            for topic in self.manifest.topics:
                for partition in topic.partitions:
                    for _record in self.records(topic.name, partition, None, pool):
                        pass
                    report.segments += len(partition.segments)
                    report.files += len(partition.segments)
                    report.records += partition.record_count
                    report.bytes += sum(s.bytes for s in partition.segments)
        referenced = {Path(name) for name, _, _ in self.manifest.files()}
        referenced |= {Path(f) for run in self.manifest.runs for f in run.cluster_files.values()}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if (path.is_file() and rel.parts[0] in ("topics", "cluster")
                    and rel not in referenced):
                report.warnings.append(f"{rel} is not part of the archive (left by an "
                                       "unfinished run?)")
        return report

    # -- summary

    def summary(self) -> dict[str, Any]:
        """What ``backup ls`` shows."""
        m = self.manifest
        topics = []
        for topic in m.topics:
            parts = topic.partitions
            topics.append({
                "topic": topic.name,
                "partitions": len(parts),
                "records": topic.record_count,
                "bytes": sum(s.bytes for p in parts for s in p.segments),
                "segments": sum(len(p.segments) for p in parts),
                "gaps": sum(len(p.gaps) for p in parts),
                "log_append_time_records": sum(p.log_append_time_records for p in parts),
                "offsets": [{"partition": p.partition, "start": p.start_offset,
                             "next": p.next_offset, "records": p.record_count,
                             "first": p.first_offset, "last": p.last_offset,
                             "gaps": [list(g) for g in p.gaps]} for p in parts],
            })
        return {
            "archive": str(self.root), "archive_id": m.archive_id,
            "cluster_id": m.cluster_id, "bootstrap": m.bootstrap,
            "created_at": m.created_at, "updated_at": m.updated_at, "runs": len(m.runs),
            "codec": m.runs[-1].codec if m.runs else None,
            "records": sum(t.record_count for t in m.topics),
            "bytes": sum(size for _, size, _ in m.files()),
            "groups": m.group_count, "topics": topics,
            "unfinished_run": (self.root / CHECKPOINT).exists(),
        }


def _unexpected(offset: int, want: int, segment: SegmentEntry) -> str:
    """Why a record's offset is not the one the manifest has next."""
    if want == -1 or offset >= segment.next_offset:
        return (f"record offset {offset} past the segment's last, {segment.last_offset} "
                "(the manifest's record count or offsets differ from the file)")
    if offset < want:
        return f"record offset {offset} out of order or duplicated (expected {want})"
    return (f"record offset {offset} where the manifest has {want} next (its gaps differ "
            "from the records)")
