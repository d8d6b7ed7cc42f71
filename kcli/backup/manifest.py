"""The manifest (an archive's table of contents and commit marker) and the backup
checkpoint, as dataclasses with strict JSON loading and atomic writes.

``manifest.json`` is written last, by temp file + fsync + rename: an archive is whatever
its manifest says, and a manifest only ever names files that were complete and durable
before it was written. ``checkpoint.json`` exists only while a run is in progress (or
was interrupted): it records the run's plan (the snapshot cut, the captured cluster
state) and the segments already durable, so a rerun resumes without duplicates.

Per partition the manifest keeps the offsets it covers, ``[start_offset, next_offset)``,
the gaps in that range (offsets without records: compaction, transaction markers,
retention), and its segments in order; each segment covers
``[start_offset, next_offset)`` of its own and names its first and last record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from kcli.backup.records import FORMAT_VERSION, ArchiveCorrupt
from kcli.durable import write_atomically

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.json"
FORMAT = "kcli-backup"
CHECKPOINT_FORMAT = "kcli-backup-checkpoint"

T = TypeVar("T")


# ------------------------------------------------------------------------ atomic files

def write_json_atomic(path: Path, data: Any) -> bytes:
    """Write ``data`` as indented JSON durably: temp file, fsync, rename, fsync the
    directory. Returns the bytes written."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, mode=0o666)  # archives are plain files: the umask decides
    return text


# ------------------------------------------------------------------------ strict loading

class _Fields:
    """Typed access to a JSON object; problems raise ArchiveCorrupt naming the file."""

    def __init__(self, data: Any, where: str, path: str) -> None:
        if not isinstance(data, dict):
            raise ArchiveCorrupt(path, f"{where or 'top level'} is not a JSON object")
        self.data = data
        self.where = where
        self.path = path

    def _fail(self, name: str, what: str) -> ArchiveCorrupt:
        place = f"{self.where}.{name}" if self.where else name
        return ArchiveCorrupt(self.path, f"field {place} {what}")

    def get(self, name: str, kind: type | tuple[type, ...], *, optional: bool = False,
            default: Any = None) -> Any:
        if name not in self.data or self.data[name] is None:
            if optional:
                return default
            raise self._fail(name, "is missing")
        value = self.data[name]
        if isinstance(value, bool) and kind is not bool and bool not in (
                kind if isinstance(kind, tuple) else (kind,)):
            raise self._fail(name, "has the wrong type")
        if not isinstance(value, kind):
            raise self._fail(name, "has the wrong type")
        return value

    def num(self, name: str, *, optional: bool = False) -> Any:
        return self.get(name, int, optional=optional)

    def text(self, name: str, *, optional: bool = False) -> Any:
        return self.get(name, str, optional=optional)

    def obj(self, name: str, *, optional: bool = False) -> _Fields | None:
        value = self.get(name, dict, optional=optional)
        if value is None:
            return None
        return _Fields(value, f"{self.where}.{name}" if self.where else name, self.path)

    def objects(self, name: str, parse: Callable[[_Fields], T]) -> list[T]:
        items = self.get(name, list, optional=True, default=[])
        where = f"{self.where}.{name}" if self.where else name
        return [parse(_Fields(item, f"{where}[{i}]", self.path)) for i, item in enumerate(items)]

    def pairs(self, name: str) -> list[tuple[int, int]]:
        items = self.get(name, list, optional=True, default=[])
        out = []
        for item in items:
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
                raise self._fail(name, "must be a list of [from, to] offset pairs")
            out.append((item[0], item[1]))
        return out


def _required(value: _Fields | None) -> _Fields:
    assert value is not None  # obj() without optional=True raises instead of returning None
    return value


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(map(list, v)) if k == "gaps" else v) for k, v in data.items()}


# ------------------------------------------------------------------------ entries

@dataclass
class FileEntry:
    """A file of the archive other than a segment: path (relative), size, sha256."""

    path: str
    bytes: int
    sha256: str

    @classmethod
    def parse(cls, f: _Fields) -> FileEntry:
        """From JSON."""
        return cls(f.text("path"), f.num("bytes"), f.text("sha256"))


@dataclass
class SegmentEntry:
    """One Avro container file of a partition."""

    path: str
    """Relative to the archive: topics/<topic>/p=<N>/seg-<start offset, 20 digits>.avro"""
    run: int
    start_offset: int
    """First offset this segment covers (the previous segment's next_offset)."""
    next_offset: int
    """Offset after the range it covers: the next segment starts here."""
    first_offset: int
    last_offset: int
    record_count: int
    min_ts: int | None
    max_ts: int | None
    bytes: int
    raw_bytes: int
    codec: str
    sha256: str

    @classmethod
    def parse(cls, f: _Fields) -> SegmentEntry:
        """From JSON."""
        return cls(
            path=f.text("path"), run=f.num("run"), start_offset=f.num("start_offset"),
            next_offset=f.num("next_offset"), first_offset=f.num("first_offset"),
            last_offset=f.num("last_offset"), record_count=f.num("record_count"),
            min_ts=f.num("min_ts", optional=True), max_ts=f.num("max_ts", optional=True),
            bytes=f.num("bytes"), raw_bytes=f.num("raw_bytes"), codec=f.text("codec"),
            sha256=f.text("sha256"))


@dataclass
class PartitionEntry:
    """What the archive holds of one partition."""

    partition: int
    start_offset: int
    """First offset covered (the log start offset when it was first backed up)."""
    next_offset: int
    """Offset after the covered range: where an incremental run continues, and where a
    committed offset "at the end" points."""
    record_count: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    log_start_offset: int = 0
    """At the latest capture."""
    high_watermark: int = 0
    last_stable_offset: int = 0
    snapshot_target: int = 0
    """Where the latest run stopped: min(last stable offset, --until) at its start."""
    log_append_time_records: int = 0
    max_record_bytes: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """[from, to) ranges inside [start_offset, next_offset) without records."""
    segments: list[SegmentEntry] = field(default_factory=list)

    @classmethod
    def parse(cls, f: _Fields) -> PartitionEntry:
        """From JSON."""
        return cls(
            partition=f.num("partition"), start_offset=f.num("start_offset"),
            next_offset=f.num("next_offset"), record_count=f.num("record_count"),
            first_offset=f.num("first_offset", optional=True),
            last_offset=f.num("last_offset", optional=True),
            log_start_offset=f.num("log_start_offset"), high_watermark=f.num("high_watermark"),
            last_stable_offset=f.num("last_stable_offset"),
            snapshot_target=f.num("snapshot_target"),
            log_append_time_records=f.num("log_append_time_records"),
            max_record_bytes=f.num("max_record_bytes"),
            gaps=f.pairs("gaps"), segments=f.objects("segments", SegmentEntry.parse))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return _clean(asdict(self))

    def extended(self, run: PartitionEntry) -> PartitionEntry:
        """This entry followed by a later run's entry of the same partition."""
        first = self.first_offset if self.record_count else run.first_offset
        last = run.last_offset if run.record_count else self.last_offset
        return PartitionEntry(
            partition=self.partition, start_offset=self.start_offset,
            next_offset=run.next_offset, record_count=self.record_count + run.record_count,
            first_offset=first, last_offset=last,
            log_start_offset=run.log_start_offset, high_watermark=run.high_watermark,
            last_stable_offset=run.last_stable_offset, snapshot_target=run.snapshot_target,
            log_append_time_records=self.log_append_time_records
            + run.log_append_time_records,
            max_record_bytes=max(self.max_record_bytes, run.max_record_bytes),
            gaps=merge_gaps(self.gaps, run.gaps), segments=self.segments + run.segments)


def merge_gaps(*lists: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Concatenate ordered gap lists, joining ranges that touch."""
    out: list[tuple[int, int]] = []
    for gaps in lists:
        for start, end in gaps:
            if start >= end:
                continue
            if out and out[-1][1] >= start:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
    return out


def record_runs(start: int, end: int, gaps: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The [from, to) runs of ``[start, end)`` that ``gaps`` (ordered) leave: where the
    records are, since every covered offset is a record's or a gap's."""
    out = []
    position = start
    for gap_start, gap_end in gaps:
        if gap_end <= position:
            continue
        if gap_start >= end:
            break
        if gap_start > position:
            out.append((position, gap_start))
        position = max(position, gap_end)
    if position < end:
        out.append((position, end))
    return out


def check_partition(where: str, topic: str, partition: PartitionEntry) -> None:
    """The manifest's entry of one partition against itself, reading no file: the
    gaps lie in order inside the covered range; the segments form one chain from the
    partition's start offset (each starts where the previous one ends) that ends at or
    before its next offset, with only gaps after it; each segment's record count and
    first and last offsets, and the partition's, are what the ranges less the gaps
    give. ArchiveCorrupt naming ``where`` (the manifest) otherwise."""
    label = f"{topic}[{partition.partition}]"

    def fail(reason: str) -> ArchiveCorrupt:
        return ArchiveCorrupt(where, f"{label}: {reason}")

    if partition.next_offset < partition.start_offset:
        raise fail(f"next offset {partition.next_offset} is before its start offset "
                   f"{partition.start_offset}")
    position = partition.start_offset
    for gap_start, gap_end in partition.gaps:
        if not position <= gap_start < gap_end <= partition.next_offset:
            raise fail(f"gap [{gap_start}, {gap_end}) is out of order or outside "
                       f"[{partition.start_offset}, {partition.next_offset})")
        position = gap_end
    position = partition.start_offset
    count = 0
    first = last = None
    for segment in partition.segments:
        if segment.start_offset != position:
            raise fail(f"segment {segment.path} starts at {segment.start_offset}, expected "
                       f"{position} (where the one before it ends; a segment entry missing "
                       "or changed?)")
        if segment.next_offset <= segment.start_offset:
            raise fail(f"segment {segment.path} has next offset {segment.next_offset}, "
                       f"not after its start offset {segment.start_offset}")
        runs = record_runs(segment.start_offset, segment.next_offset, partition.gaps)
        facts = ((segment.record_count, sum(b - a for a, b in runs), "record count"),
                 (segment.first_offset, runs[0][0] if runs else None, "first offset"),
                 (segment.last_offset, runs[-1][1] - 1 if runs else None, "last offset"))
        for recorded, derived, what in facts:
            if recorded != derived:
                raise fail(f"segment {segment.path} has {what} {recorded}, its range "
                           f"[{segment.start_offset}, {segment.next_offset}) less the gaps "
                           f"gives {derived}")
        count += segment.record_count
        first = segment.first_offset if first is None else first
        last = segment.last_offset
        position = segment.next_offset
    if position > partition.next_offset:
        raise fail(f"segments end at {position}, after the partition's next offset "
                   f"{partition.next_offset}")
    missing = record_runs(position, partition.next_offset, partition.gaps)
    if missing:
        raise fail(f"offsets {missing[0][0]} to {partition.next_offset - 1} are in no "
                   "segment and no gap (a segment entry missing, or the next offset "
                   "changed?)")
    if (partition.record_count, partition.first_offset, partition.last_offset) != (
            count, first, last):
        raise fail(f"the manifest says {partition.record_count} records from "
                   f"{partition.first_offset} to {partition.last_offset}, its segments "
                   f"hold {count} from {first} to {last}")


@dataclass
class TopicEntry:
    """One topic of the archive (configs are in cluster/topics.json)."""

    name: str
    partitions: list[PartitionEntry]

    @classmethod
    def parse(cls, f: _Fields) -> TopicEntry:
        """From JSON."""
        return cls(f.text("name"), f.objects("partitions", PartitionEntry.parse))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "partitions": [p.to_dict() for p in self.partitions]}

    @property
    def record_count(self) -> int:
        """Records over all partitions."""
        return sum(p.record_count for p in self.partitions)


@dataclass
class RunEntry:
    """One backup run of the archive (incremental runs add more)."""

    run: int
    id: str
    started_at: int
    finished_at: int
    codec: str
    topics: list[str]
    until: int | None = None
    records: int = 0
    bytes: int = 0
    parent_sha256: str | None = None
    """sha256 of the manifest this run extended (None for the first run)."""
    cluster_files: dict[str, str] = field(default_factory=dict)
    """The topics.json and groups.avro this run captured (relative paths)."""

    @classmethod
    def parse(cls, f: _Fields) -> RunEntry:
        """From JSON."""
        topics = f.get("topics", list)
        files = f.get("cluster_files", dict, optional=True, default={})
        return cls(run=f.num("run"), id=f.text("id"), started_at=f.num("started_at"),
                   finished_at=f.num("finished_at"), codec=f.text("codec"),
                   topics=[str(t) for t in topics], until=f.num("until", optional=True),
                   records=f.num("records"), bytes=f.num("bytes"),
                   parent_sha256=f.text("parent_sha256", optional=True),
                   cluster_files={str(k): str(v) for k, v in files.items()})


@dataclass
class Manifest:
    """The whole manifest.json."""

    archive_id: str
    cluster_id: str | None
    bootstrap: str
    created_at: int
    updated_at: int
    topics_file: FileEntry
    groups_file: FileEntry
    group_count: int
    topics: list[TopicEntry]
    runs: list[RunEntry]
    format: str = FORMAT
    version: int = FORMAT_VERSION
    schemas_file: FileEntry | None = None
    """``cluster/schemas.json``: the Schema Registry schemas the records reference."""

    @property
    def run(self) -> int:
        """Number of the latest run."""
        return self.runs[-1].run if self.runs else 0

    def topic(self, name: str) -> TopicEntry | None:
        """The named topic, if archived."""
        return next((t for t in self.topics if t.name == name), None)

    def files(self) -> list[tuple[str, int, str]]:
        """(path, bytes, sha256) of every file the manifest names."""
        out = [(self.topics_file.path, self.topics_file.bytes, self.topics_file.sha256),
               (self.groups_file.path, self.groups_file.bytes, self.groups_file.sha256)]
        if self.schemas_file is not None:
            out.append((self.schemas_file.path, self.schemas_file.bytes,
                        self.schemas_file.sha256))
        for topic in self.topics:
            for partition in topic.partitions:
                out.extend((s.path, s.bytes, s.sha256) for s in partition.segments)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, fields in a readable order."""
        return {
            "format": self.format,
            "version": self.version,
            "archive_id": self.archive_id,
            "source": {"cluster_id": self.cluster_id, "bootstrap": self.bootstrap},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "run": self.run,
            "parent_sha256": self.runs[-1].parent_sha256 if self.runs else None,
            "cluster": {"topics": asdict(self.topics_file),
                        "groups": {**asdict(self.groups_file), "groups": self.group_count},
                        **({"schemas": asdict(self.schemas_file)} if self.schemas_file
                           else {})},
            "topics": [t.to_dict() for t in self.topics],
            "runs": [asdict(r) for r in self.runs],
        }

    @classmethod
    def parse(cls, data: Any, path: str) -> Manifest:
        """From the JSON document; ArchiveCorrupt on anything unexpected."""
        f = _Fields(data, "", path)
        if f.text("format") != FORMAT:
            raise ArchiveCorrupt(path, f"not a kcli archive manifest (format {f.data['format']!r})")
        version = f.num("version")
        if version > FORMAT_VERSION:
            raise ArchiveCorrupt(path, f"format version {version} is newer than this kcli "
                                       f"reads ({FORMAT_VERSION}); upgrade kcli")
        source = _required(f.obj("source"))
        cluster = _required(f.obj("cluster"))
        topics_file = _required(cluster.obj("topics"))
        groups_file = _required(cluster.obj("groups"))
        schemas_file = cluster.obj("schemas", optional=True)
        manifest = cls(
            archive_id=f.text("archive_id"), cluster_id=source.text("cluster_id", optional=True),
            bootstrap=source.text("bootstrap"), created_at=f.num("created_at"),
            updated_at=f.num("updated_at"), topics_file=FileEntry.parse(topics_file),
            groups_file=FileEntry.parse(groups_file), group_count=groups_file.num("groups"),
            topics=f.objects("topics", TopicEntry.parse), runs=f.objects("runs", RunEntry.parse),
            version=version,
            schemas_file=FileEntry.parse(schemas_file) if schemas_file is not None else None)
        _check_paths(manifest, path)
        return manifest


def _check_paths(manifest: Manifest, where: str) -> None:
    """Every path must stay inside the archive (a manifest is input, not trusted)."""
    for name, _size, _sha in manifest.files():
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ArchiveCorrupt(where, f"file path {name!r} points outside the archive")


def segment_path(topic: str, partition: int, start_offset: int) -> str:
    """Relative path of a segment: topics/<topic>/p=<N>/seg-<20 digits>.avro"""
    return f"topics/{topic}/p={partition}/seg-{start_offset:020d}.avro"


# ------------------------------------------------------------------------ checkpoint

@dataclass
class TopicPlan:
    """One topic of a run: captured layout plus this run's partition entries."""

    name: str
    partitions: list[PartitionEntry]
    """This run's progress per partition: [run start, durable next) with its segments."""
    targets: dict[int, int] = field(default_factory=dict)
    """Snapshot target per partition."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "partitions": [p.to_dict() for p in self.partitions],
                "targets": {str(k): v for k, v in self.targets.items()}}

    @classmethod
    def parse(cls, f: _Fields) -> TopicPlan:
        """From JSON."""
        targets = f.get("targets", dict)
        try:
            parsed = {int(k): int(v) for k, v in targets.items()}
        except (TypeError, ValueError):
            raise ArchiveCorrupt(f.path, "checkpoint targets are not offsets") from None
        return cls(f.text("name"), f.objects("partitions", PartitionEntry.parse), parsed)


@dataclass
class Checkpoint:
    """checkpoint.json: an unfinished run."""

    run: int
    run_id: str
    archive_id: str
    started_at: int
    request: dict[str, Any]
    """What was asked (patterns, codec, level, until, segment size): a rerun must match."""
    cluster_id: str | None
    bootstrap: str
    parent_sha256: str | None
    topics_file: FileEntry
    groups_file: FileEntry
    group_count: int
    topics: list[TopicPlan]
    schema_ids: list[int] = field(default_factory=list)
    """Schema Registry ids seen in the records written so far (the run's schemas)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_ids": self.schema_ids,
            "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "run": self.run,
            "run_id": self.run_id, "archive_id": self.archive_id,
            "started_at": self.started_at, "request": self.request,
            "source": {"cluster_id": self.cluster_id, "bootstrap": self.bootstrap},
            "parent_sha256": self.parent_sha256,
            "cluster": {"topics": asdict(self.topics_file),
                        "groups": {**asdict(self.groups_file), "groups": self.group_count}},
            "topics": [t.to_dict() for t in self.topics],
        }

    @classmethod
    def parse(cls, data: Any, path: str) -> Checkpoint:
        """From JSON; ArchiveCorrupt on anything unexpected."""
        f = _Fields(data, "", path)
        if f.text("format") != CHECKPOINT_FORMAT:
            raise ArchiveCorrupt(path, "not a kcli backup checkpoint")
        source = _required(f.obj("source"))
        cluster = _required(f.obj("cluster"))
        topics_file = _required(cluster.obj("topics"))
        groups_file = _required(cluster.obj("groups"))
        return cls(
            run=f.num("run"), run_id=f.text("run_id"), archive_id=f.text("archive_id"),
            started_at=f.num("started_at"), request=f.get("request", dict),
            cluster_id=source.text("cluster_id", optional=True), bootstrap=source.text("bootstrap"),
            parent_sha256=f.text("parent_sha256", optional=True),
            topics_file=FileEntry.parse(topics_file), groups_file=FileEntry.parse(groups_file),
            group_count=groups_file.num("groups"), topics=f.objects("topics", TopicPlan.parse),
            schema_ids=[int(i) for i in f.get("schema_ids", list, optional=True, default=[])
                        if isinstance(i, int)])


def load_json(path: Path) -> Any:
    """Parse a JSON file of the archive; ArchiveCorrupt if it is not JSON."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ArchiveCorrupt(path, f"cannot read: {error.strerror or error}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ArchiveCorrupt(path, f"not valid JSON ({error.msg})") from None
