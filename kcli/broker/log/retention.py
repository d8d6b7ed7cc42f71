"""Which segments time and size retention delete: a pure function over segment facts.

Kafka's rules (UnifiedLog.deleteOldSegments), applied to a prefix of the log:

- segments wholly below the log start offset (raised by DeleteRecords) go;
- with cleanup.policy=delete: a segment whose largest timestamp (its file's modification
  time when no batch carries a timestamp) is more than retention.ms old goes, and so do
  the oldest segments while the log stays at least retention.bytes without them;
- deletion stops at the first segment that is kept; the active (last) segment and any
  segment holding an offset at or past the high watermark are never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from kcli.broker.log.segment import SegmentInfo

__all__ = ["deletable_segments", "largest_timestamp"]


def largest_timestamp(segment: SegmentInfo) -> int:
    """What retention.ms is measured against: the largest batch timestamp, else mtime."""
    return segment.max_timestamp if segment.max_timestamp >= 0 else segment.last_modified


def deletable_segments(
    segments: Sequence[SegmentInfo],
    *,
    now_ms: int,
    retention_ms: int,
    retention_bytes: int,
    log_start_offset: int,
    high_watermark: int,
) -> int:
    """How many of the oldest `segments` (oldest first, the active one last) retention
    deletes; -1 for `retention_ms` / `retention_bytes` means no such limit."""
    limit = 0  # closed segments wholly below the high watermark
    while limit < len(segments) - 1 and segments[limit + 1].base_offset <= high_watermark:
        limit += 1
    count = 0
    while count < limit and segments[count + 1].base_offset <= log_start_offset:
        count += 1
    if retention_ms >= 0:
        while count < limit and now_ms - largest_timestamp(segments[count]) > retention_ms:
            count += 1
    if retention_bytes >= 0:
        excess = sum(segment.size for segment in segments[count:]) - retention_bytes
        while count < limit and excess >= segments[count].size:
            excess -= segments[count].size
            count += 1
    return count
