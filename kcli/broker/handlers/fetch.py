"""Fetch: hand back stored batches, long-polling until min_bytes or max_wait.

Sessions (KIP-227) are refused by answering session id 0, so every fetch is a full
fetch; clients fall back to that by design.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.log import FileRecords
from kcli.broker.log.batch import iter_batches
from kcli.broker.log.records import COMPRESSION_ZSTD
from kcli.broker.partition import READ_UNCOMMITTED, Partition, PartitionRead
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.replicas import wait_for_data
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType

if TYPE_CHECKING:
    from kcli.broker.broker import Broker


MAX_FILE_RECORDS = 64
"""Partitions of one answer sent from their files; the rest are read into memory, so an
answer over many partitions does not hold a descriptor per partition."""


@dataclass(slots=True)
class _TopicRead:
    name: str | None
    topic_id: uuid.UUID | None
    partitions: list[tuple[int, PartitionRead]]


class _FetchPlan:
    """One Fetch request resolved against the broker, re-readable after a wait.

    The plan only resolves names and shares out the response's byte budget; each
    partition's read is ``Partition.read``.
    """

    def __init__(self, ctx: RequestContext, request: Any) -> None:
        self.ctx = ctx
        self.version = ctx.version
        replica_id = (
            request.replica_state.replica_id if self.version >= 15 else request.replica_id
        )
        self.replica_id = int(replica_id)
        self.isolation_level = int(getattr(request, "isolation_level", READ_UNCOMMITTED))
        self.max_bytes = int(getattr(request, "max_bytes", 0x7FFFFFFF))
        self.request = request
        # a Fetch below v4 was translated: its records go out down-converted (legacy.py)
        self.old_format = ctx.header.wire_version is not None
        # records sent from the segment files (sendfile) unless they must be looked at:
        # down-converted for an old Fetch, or checked for zstd below v10
        self._zero_copy = not self.old_format and (self.version >= 10 or self.replica_id >= 0)
        self.partitions: list[Partition] = []
        self._first_pass = True  # metadata rereads and follower progress: once per request
        self._readable: dict[str, bool] = {}  # authorization, once per topic per request
        self._follower_allowed = self.replica_id < 0 or ctx.allowed(
            Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)

    def _may_read(self, topic: str) -> bool:
        if self.replica_id >= 0:
            return self._follower_allowed
        if topic not in self._readable:
            self._readable[topic] = self.ctx.allowed(Operation.READ, ResourceType.TOPIC, topic)
        return self._readable[topic]

    def read(self) -> tuple[list[_TopicRead], int, bool]:
        """Read every requested partition; returns (topics, bytes, any error)."""
        broker = self.ctx.broker
        replicas = broker.replicas
        first_pass = self._first_pass
        budget = self.max_bytes
        first = True
        total = 0
        failed = False
        files = 0  # FileRecords in this answer, each holding duplicated descriptors
        topics: list[_TopicRead] = []
        self.partitions = []
        for fetch_topic in self.request.topics:
            if self.version >= 13:
                topic_id = fetch_topic.topic_id
                state = broker.metadata.topic_by_id(topic_id)
                name = state.name if state else None
            else:
                topic_id = None
                name = fetch_topic.topic
                state = broker.topic(name)
            reads: list[tuple[int, PartitionRead]] = []
            topics.append(_TopicRead(name, topic_id, reads))
            for fp in fetch_topic.partitions:
                index = int(fp.partition)
                if state is None:
                    reads.append((index, PartitionRead(
                        ErrorCode.unknown_topic_id if self.version >= 13
                        else ErrorCode.unknown_topic_or_partition
                    )))
                    failed = True
                    continue
                if not self._may_read(state.name):
                    reads.append((index, PartitionRead(ErrorCode.topic_authorization_failed)))
                    failed = True
                    continue
                if self.old_format and not down_conversion(broker, state.configs):
                    reads.append((index, PartitionRead(ErrorCode.unsupported_version)))
                    failed = True
                    continue
                limit = int(fp.partition_max_bytes)
                if not first:
                    limit = min(limit, budget)
                partition, result = replicas.read(
                    state.name, index, int(fp.fetch_offset), limit,
                    current_leader_epoch=int(getattr(fp, "current_leader_epoch", -1)),
                    last_fetched_epoch=int(getattr(fp, "last_fetched_epoch", -1)),
                    replica_id=self.replica_id,
                    isolation_level=self.isolation_level,
                    min_one_message=first,
                    refresh=first_pass,
                    zero_copy=self._zero_copy and files < MAX_FILE_RECORDS,
                )
                if partition is not None:
                    self.partitions.append(partition)
                if self.version < 10 and self.replica_id < 0 and has_zstd(result.records):
                    # consumers older than Fetch v10 cannot know zstd: Kafka refuses
                    result = replace(result, error_code=ErrorCode.unsupported_compression_type,
                                     records=b"")
                reads.append((index, result))
                if result.error_code != ErrorCode.none or result.diverging is not None:
                    failed = True
                if isinstance(result.records, FileRecords):
                    files += 1
                if result.records:
                    first = False
                    budget -= len(result.records)
                    total += len(result.records)
        self._first_pass = False
        return topics, total, failed


def has_zstd(records: bytes | FileRecords) -> bool:
    """Whether any whole batch in a read is zstd-compressed (reads below Fetch v10, which
    are never FileRecords: those are only made for v10 and up)."""
    assert not isinstance(records, FileRecords)
    return any(header.compression == COMPRESSION_ZSTD for header in iter_batches(records))


def down_conversion(broker: Broker, configs: dict[str, str]) -> bool:
    """Whether a topic's records may be down-converted for an old Fetch."""
    value = broker.settings.topic_value(configs, "message.downconversion.enable")
    return value.strip().lower() == "true"


@handles(ApiKey.FETCH)
async def fetch(ctx: RequestContext, request: Any) -> Any:
    """Serve a fetch, waiting up to max_wait for min_bytes of data."""
    version = ctx.version
    if version >= 7 and request.session_id != 0:
        return _top_level_error(ctx, ErrorCode.fetch_session_id_not_found)
    if version >= 7 and request.session_epoch > 0:
        return _top_level_error(ctx, ErrorCode.invalid_fetch_session_epoch)
    plan = _FetchPlan(ctx, request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + millis(request.max_wait) / 1000
    min_bytes = int(request.min_bytes)
    while True:
        topics, total, failed = plan.read()
        remaining = deadline - loop.time()
        if total >= min_bytes or failed or remaining <= 0:
            break
        await wait_for_data(plan.partitions, remaining, follower=plan.replica_id >= 0)
    return _response(ctx, request, topics)


def _top_level_error(ctx: RequestContext, code: int) -> Any:
    return make(ctx.response_class(), throttle_time=0, error_code=code, session_id=0,
                responses=())


def _response(ctx: RequestContext, request: Any, topics: list[_TopicRead]) -> Any:
    version = ctx.version
    partition_cls = ctx.response_class("PartitionData")
    topic_cls = ctx.response_class("FetchableTopicResponse")
    epoch_cls = ctx.response_class("EpochEndOffset") if version >= 12 else None
    leader_cls = ctx.response_class("LeaderIdAndEpoch") if version >= 12 else None
    aborted_cls = ctx.response_class("AbortedTransaction")
    out = []
    for topic in topics:
        entries = []
        for index, p in topic.partitions:
            extra: dict[str, Any] = {}
            if epoch_cls is not None and p.diverging is not None:
                extra["diverging_epoch"] = make(
                    epoch_cls, epoch=p.diverging[0], end_offset=p.diverging[1]
                )
            if (
                leader_cls is not None
                and p.leader is not None
                and p.error_code in (ErrorCode.not_leader_or_follower,
                                     ErrorCode.fenced_leader_epoch)
            ):
                extra["current_leader"] = make(
                    leader_cls, leader_id=p.leader[0], leader_epoch=p.leader[1]
                )
            entries.append(
                make(
                    partition_cls,
                    partition_index=index,
                    error_code=p.error_code,
                    high_watermark=p.high_watermark,
                    last_stable_offset=p.last_stable_offset,
                    log_start_offset=p.log_start_offset,
                    aborted_transactions=None if p.aborted_transactions is None else tuple(
                        make(aborted_cls, producer_id=producer_id, first_offset=first)
                        for producer_id, first in p.aborted_transactions),
                    preferred_read_replica=-1,
                    records=p.records,
                    **extra,
                )
            )
        if version >= 13:
            out.append(make(topic_cls, topic_id=topic.topic_id, partitions=tuple(entries)))
        else:
            out.append(make(topic_cls, topic=topic.name, partitions=tuple(entries)))
    return make(
        ctx.response_class(), throttle_time=0, error_code=ErrorCode.none, session_id=0,
        responses=tuple(out),
    )
