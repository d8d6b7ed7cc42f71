"""LogConfig: one partition's log settings, Kafka's topic configs that the log obeys."""

from __future__ import annotations

from dataclasses import dataclass

from kcli.broker.log.segment import LONG_MAX

__all__ = ["LogConfig"]


@dataclass(frozen=True)
class LogConfig:
    """Per-partition log settings (Kafka's topic config names in snake case)."""

    segment_bytes: int = 1073741824
    """Roll to a new segment before one would grow past this (segment.bytes)."""
    segment_ms: int = 604800000
    """Roll when a segment spans more than this (segment.ms), by its first batch's
    timestamp, or by its age when batches carry no timestamp."""
    index_interval_bytes: int = 4096
    """Bytes of log between two offset index entries (index.interval.bytes)."""
    flush_messages: int | None = None
    """fsync after this many appended records (1 = every append); None = never per append."""
    flush_ms: int | None = None
    """fsync on append if this long has passed since the last fsync; None = never."""
    delete: bool = True
    """cleanup.policy holds delete: retention.ms and retention.bytes apply."""
    compact: bool = False
    """cleanup.policy holds compact: the cleaner keeps the latest record of each key."""
    retention_ms: int = 604800000
    """Delete a closed segment once its largest timestamp is this old (-1: never)."""
    retention_bytes: int = -1
    """Delete the oldest closed segments while the log is larger than this (-1: no limit)."""
    file_delete_delay_ms: int = 60000
    """A deleted segment's files are renamed `*.deleted` and removed this much later."""
    delete_retention_ms: int = 86400000
    """A tombstone survives this long after the cleaner first kept it (delete.retention.ms)."""
    min_cleanable_dirty_ratio: float = 0.5
    """Clean when dirty bytes / cleanable bytes reach this (min.cleanable.dirty.ratio)."""
    min_compaction_lag_ms: int = 0
    """Segments holding a record younger than this are not cleaned (min.compaction.lag.ms)."""
    max_compaction_lag_ms: int = LONG_MAX
    """Clean whatever the dirty ratio once a dirty record is this old (max.compaction.lag.ms);
    on a compacted log the active segment also rolls by then."""

    @property
    def roll_ms(self) -> int:
        """Segment age that triggers a roll: segment.ms, capped by max.compaction.lag.ms on
        compacted logs (as Kafka's LogConfig.maxSegmentMs)."""
        if self.compact and self.max_compaction_lag_ms > 0:
            return min(self.segment_ms, self.max_compaction_lag_ms)
        return self.segment_ms
