"""A topic's effective configs, resolved once per change for the partition's hot path."""

from __future__ import annotations

from dataclasses import dataclass

from kcli.broker.configs import Settings
from kcli.broker.log import LogConfig

LONG_MAX = 9223372036854775807
"""Kafka's "never" for the flush settings."""


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """A topic's effective configs, parsed once per change, for the hot path."""

    max_message_bytes: int
    log_append_time: bool
    timestamp_before_max_ms: int
    timestamp_after_max_ms: int
    min_insync_replicas: int
    compression: str
    log_config: LogConfig

    @classmethod
    def resolve(cls, settings: Settings, configs: dict[str, str]) -> TopicSettings:
        """Effective settings of a topic with ``configs`` overrides."""

        def value(name: str) -> str:
            return settings.topic_value(configs, name)

        flush_messages = int(value("flush.messages"))
        flush_ms = int(value("flush.ms"))
        policy = {part.strip() for part in value("cleanup.policy").split(",")}
        return cls(
            max_message_bytes=int(value("max.message.bytes")),
            log_append_time=value("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms=int(value("message.timestamp.before.max.ms")),
            timestamp_after_max_ms=int(value("message.timestamp.after.max.ms")),
            min_insync_replicas=int(value("min.insync.replicas")),
            compression=value("compression.type"),
            log_config=LogConfig(
                segment_bytes=int(value("segment.bytes")),
                segment_ms=int(value("segment.ms")),
                index_interval_bytes=int(value("index.interval.bytes")),
                flush_messages=None if flush_messages >= LONG_MAX else flush_messages,
                flush_ms=None if flush_ms >= LONG_MAX else flush_ms,
                delete="delete" in policy,
                compact="compact" in policy,
                retention_ms=int(value("retention.ms")),
                retention_bytes=int(value("retention.bytes")),
                file_delete_delay_ms=int(value("file.delete.delay.ms")),
                delete_retention_ms=int(value("delete.retention.ms")),
                min_cleanable_dirty_ratio=float(value("min.cleanable.dirty.ratio")),
                min_compaction_lag_ms=int(value("min.compaction.lag.ms")),
                max_compaction_lag_ms=int(value("max.compaction.lag.ms")),
            ),
        )
