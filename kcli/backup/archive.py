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
    load_json,
    merge_gaps,
)
from kcli.backup.reading import (
    FileCheck,
    file_sha256,
    read_container,
    read_segment,
    read_segment_ahead,
)
from kcli.backup.records import GROUP_SCHEMA, ArchiveCorrupt
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

    # -- records

    def path_of(self, segment: SegmentEntry) -> Path:
        """Absolute path of a segment file."""
        return self.root / segment.path

    def check_files(self) -> None:
        """sha256 and size of every file the manifest names (a fast pre-flight: the
        files are compressed, so this reads far less than the records)."""
        for name, size, sha in self.manifest.files():
            path = self.root / name
            actual_sha, actual_size = file_sha256(path)
            if actual_size != size or actual_sha != sha:
                raise ArchiveCorrupt(path, "sha256 differs from the manifest")

    def records(self, topic: str, partition: PartitionEntry,
                from_offset: int | None = None, pool: Any = None) -> Iterator[dict[str, Any]]:
        """Records of one partition in offset order, from ``from_offset`` on. With
        ``pool`` (a ThreadPoolExecutor), blocks are decompressed ahead on it."""
        segments = partition.segments
        start = 0
        if from_offset is not None and segments:
            nexts = [s.next_offset for s in segments]
            start = bisect.bisect_right(nexts, from_offset)
        for segment in segments[start:]:
            expect = {"kcli.topic": topic, "kcli.partition": str(partition.partition)}
            path = self.path_of(segment)
            records = (read_segment_ahead(path, pool, expect) if pool is not None
                       else read_segment(path, expect=expect))
            count = 0
            previous = segment.start_offset - 1
            for record in records:
                count += 1
                offset = record["offset"]
                if not previous < offset < segment.next_offset:
                    raise ArchiveCorrupt(path, f"record offset {offset} out of order or "
                                               "outside the segment's range")
                previous = offset
                if from_offset is None or offset >= from_offset:
                    yield record
            if count != segment.record_count:  # a reader may stop early on a damaged count
                raise ArchiveCorrupt(path, f"{count} records, the manifest says "
                                           f"{segment.record_count}")

    # -- verify

    def verify(self) -> VerifyReport:
        """Re-read every file against the manifest: sha256 and size, Avro framing,
        file metadata, every record's offset (ordered, inside its segment's range),
        counts, first/last offsets, timestamps and the partition's gaps."""
        report = VerifyReport()
        layouts = self.layouts()
        report.files += 1
        groups = self.group_offsets()
        report.files += 1
        names = {g.group for g in groups}
        if len(names) != self.manifest.group_count:
            report.warnings.append(f"{len(names)} groups in {self.manifest.groups_file.path}, "
                                   f"the manifest says {self.manifest.group_count}")
        for topic in self.manifest.topics:
            layout = layouts[topic.name]
            if len(topic.partitions) > layout.partitions:
                raise ArchiveCorrupt(self.root / MANIFEST,
                                     f"{topic.name} has more partitions than topics.json says")
            for partition in topic.partitions:
                self._verify_partition(topic.name, partition, report)
        referenced = {Path(name) for name, _, _ in self.manifest.files()}
        referenced |= {Path(f) for run in self.manifest.runs for f in run.cluster_files.values()}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if (path.is_file() and rel.parts[0] in ("topics", "cluster")
                    and rel not in referenced):
                report.warnings.append(f"{rel} is not part of the archive (left by an "
                                       "unfinished run?)")
        return report

    def _verify_partition(self, topic: str, partition: PartitionEntry,
                          report: VerifyReport) -> None:
        where = self.root / MANIFEST
        label = f"{topic}[{partition.partition}]"
        position = partition.start_offset
        expected_next = position
        gaps: list[tuple[int, int]] = []
        count = 0
        first = last = None
        for segment in partition.segments:
            if segment.start_offset != position:
                raise ArchiveCorrupt(where, f"{label}: segment {segment.path} starts at "
                                            f"{segment.start_offset}, expected {position}")
            path = self.path_of(segment)
            check = FileCheck()
            seg_count = 0
            seg_first = seg_last = None
            lo = hi = None
            expect = {"kcli.topic": topic, "kcli.partition": str(partition.partition)}
            for record in read_segment(path, check, expect):
                offset = record["offset"]
                if not segment.start_offset <= offset < segment.next_offset:
                    raise ArchiveCorrupt(path, f"record offset {offset} outside the "
                                               f"segment's range")
                if offset < expected_next:
                    raise ArchiveCorrupt(path, f"record offset {offset} out of order or "
                                               "duplicated")
                if offset > expected_next:
                    gaps.append((expected_next, offset))
                expected_next = offset + 1
                seg_first = offset if seg_first is None else seg_first
                seg_last = offset
                ts = record["timestamp"]
                if ts >= 0:
                    lo = ts if lo is None or ts < lo else lo
                    hi = ts if hi is None or ts > hi else hi
                seg_count += 1
            if check.sha256 != segment.sha256 or check.bytes != segment.bytes:
                raise ArchiveCorrupt(path, "sha256 differs from the manifest (the file "
                                           "changed after it was written)")
            facts = ((seg_count, segment.record_count, "record count"),
                     (seg_first, segment.first_offset, "first offset"),
                     (seg_last, segment.last_offset, "last offset"),
                     (lo, segment.min_ts, "smallest timestamp"),
                     (hi, segment.max_ts, "largest timestamp"))
            for actual, recorded, what in facts:
                if actual != recorded:
                    raise ArchiveCorrupt(path, f"{what} {actual} differs from the "
                                               f"manifest's {recorded}")
            if segment.next_offset > expected_next:
                gaps.append((expected_next, segment.next_offset))
            expected_next = position = segment.next_offset
            count += seg_count
            first = seg_first if first is None else first
            last = seg_last
            report.segments += 1
            report.files += 1
            report.records += seg_count
            report.bytes += segment.bytes
        if partition.next_offset > position:
            gaps.append((position, partition.next_offset))
        elif partition.next_offset < position:
            raise ArchiveCorrupt(where, f"{label}: segments end at {position}, after the "
                                        f"partition's next offset {partition.next_offset}")
        if merge_gaps(gaps) != merge_gaps(partition.gaps):
            raise ArchiveCorrupt(where, f"{label}: the gaps in the records differ from the "
                                        "manifest's")
        if (count, first, last) != (partition.record_count, partition.first_offset,
                                    partition.last_offset):
            raise ArchiveCorrupt(where, f"{label}: {count} records from {first} to {last}, "
                                        f"the manifest says {partition.record_count} from "
                                        f"{partition.first_offset} to {partition.last_offset}")

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
