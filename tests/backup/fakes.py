"""Stand-ins for confluent-kafka Messages, and a way to write archives by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.backup.archive import GroupOffset, TopicLayout
from kcli.backup.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    PartitionEntry,
    RunEntry,
    SegmentEntry,
    TopicEntry,
    merge_gaps,
    segment_path,
    write_json_atomic,
)
from kcli.backup.records import GROUP_SCHEMA, BlockBuilder, SegmentFile, write_container

Headers = list[tuple[str, bytes | None]]


@dataclass
class FakeMessage:
    """The parts of confluent_kafka.Message the backup encoder reads."""

    offset_: int
    key_: bytes | None = None
    value_: bytes | None = None
    headers_: Headers = field(default_factory=list)
    ts_type: int = 1
    ts: int = 1_700_000_000_000
    partition_: int = 0
    topic_: str = "t"

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        return (self.ts_type, self.ts)

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Headers | None:
        return list(self.headers_) or None


def write_archive(root: Path, topic: str, partitions: dict[int, list[FakeMessage]],
                  next_offsets: dict[int, int], start_offsets: dict[int, int] | None = None,
                  groups: list[GroupOffset] | None = None, configs: dict[str, str] | None = None,
                  codec: str = "zstandard") -> Manifest:
    """A one-topic, one-run archive from messages (gaps are wherever offsets skip)."""
    starts = start_offsets or {}
    entries = []
    for p, messages in sorted(partitions.items()):
        start = starts.get(p, messages[0].offset_ if messages else 0)
        end = next_offsets[p]
        for message in messages:
            message.topic_, message.partition_ = topic, p
        builder = BlockBuilder(topic, p, start, end)
        assert builder.add(messages, 0, 1 << 30) == len(messages)
        if end > builder.expected:
            builder.gaps.append((builder.expected, end))
        segments = []
        if messages:
            rel = segment_path(topic, p, start)
            segment = SegmentFile(root / rel, codec, metadata={
                "kcli.topic": topic, "kcli.partition": str(p), "kcli.start_offset": str(start)})
            parts, count, _size = builder.take()
            segment.write_block(parts, count)
            segment.commit()
            segments.append(SegmentEntry(
                rel, 1, start, end, builder.first_offset, builder.last_offset, builder.records,
                builder.min_ts, builder.max_ts, segment.bytes, segment.raw_bytes, codec,
                segment.sha256))
        entries.append(PartitionEntry(
            partition=p, start_offset=start, next_offset=end, record_count=builder.records,
            first_offset=builder.first_offset if messages else None,
            last_offset=builder.last_offset if messages else None, log_start_offset=start,
            high_watermark=end, last_stable_offset=end, snapshot_target=end,
            log_append_time_records=builder.log_append, max_record_bytes=builder.max_record,
            gaps=merge_gaps(builder.gaps), segments=segments))
    layout = TopicLayout(topic, len(partitions), 1, configs or {})
    text = write_json_atomic(root / "cluster/topics.json", {"topics": [layout.to_dict()]})
    import hashlib

    rows = [g.to_record() for g in groups or []]
    written = write_container(root / "cluster/groups.avro", rows, schema=GROUP_SCHEMA,
                              metadata={"kcli.content": "group-offsets"})
    manifest = Manifest(
        archive_id=f"synthetic-{topic}", cluster_id="synthetic", bootstrap="nowhere:9092",
        created_at=1, updated_at=2,
        topics_file=FileEntry("cluster/topics.json", len(text), hashlib.sha256(text).hexdigest()),
        groups_file=FileEntry("cluster/groups.avro", written.bytes, written.sha256),
        group_count=len({g.group for g in groups or []}),
        topics=[TopicEntry(topic, entries)],
        runs=[RunEntry(1, "r1", 1, 2, codec, [topic])])
    write_json_atomic(root / MANIFEST, manifest.to_dict())
    return manifest


def records_of(messages: list[FakeMessage]) -> list[dict[str, Any]]:
    """The Avro records the messages should become."""
    names = ("NOT_AVAILABLE", "CREATE_TIME", "LOG_APPEND_TIME")
    return [{"offset": m.offset_, "timestamp": m.ts, "timestamp_type": names[m.ts_type],
             "key": m.key_, "value": m.value_,
             "headers": [{"key": k, "value": v} for k, v in m.headers_]} for m in messages]
