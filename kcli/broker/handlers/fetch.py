"""Fetch: hand back stored batches, long-polling until min_bytes or max_wait.

Sessions (KIP-227) are refused by answering session id 0, so every fetch is a full
fetch; clients fall back to that by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from kcli.broker.handlers import errors
from kcli.broker.handlers.base import RequestContext, handles, make, millis
from kcli.broker.log import OffsetOutOfRange
from kcli.broker.partition import Partition
from kcli.broker.protocol.versions import ApiKey

READ_UNCOMMITTED = 0


@dataclass(slots=True)
class _PartitionRead:
    index: int
    error_code: int = errors.NONE
    high_watermark: int = -1
    log_start_offset: int = -1
    records: bytes = b""
    diverging: tuple[int, int] | None = None
    leader: tuple[int, int] | None = None


@dataclass(slots=True)
class _TopicRead:
    name: str | None
    topic_id: uuid.UUID | None
    partitions: list[_PartitionRead]


def _check_epoch(partition: Partition, current_leader_epoch: int) -> int:
    if current_leader_epoch < 0:
        return errors.NONE
    if current_leader_epoch < partition.leader_epoch:
        return errors.FENCED_LEADER_EPOCH
    if current_leader_epoch > partition.leader_epoch:
        return errors.UNKNOWN_LEADER_EPOCH
    return errors.NONE


class _FetchPlan:
    """One Fetch request resolved against the broker, re-readable after a wait."""

    def __init__(self, ctx: RequestContext, request: Any) -> None:
        self.ctx = ctx
        self.version = ctx.version
        replica_id = (
            request.replica_state.replica_id if self.version >= 15 else request.replica_id
        )
        self.replica_id = int(replica_id)
        self.max_bytes = int(getattr(request, "max_bytes", 0x7FFFFFFF))
        self.request = request
        self.partitions: list[Partition] = []
        self._recorded = False  # a follower's fetch offsets are recorded once per request

    def read(self) -> tuple[list[_TopicRead], int, bool]:
        """Read every requested partition; returns (topics, bytes, any error)."""
        broker = self.ctx.broker
        budget = self.max_bytes
        first = True
        total = 0
        failed = False
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
            reads: list[_PartitionRead] = []
            topics.append(_TopicRead(name, topic_id, reads))
            for fp in fetch_topic.partitions:
                result = _PartitionRead(fp.partition)
                reads.append(result)
                if state is None:
                    result.error_code = (
                        errors.UNKNOWN_TOPIC_ID if self.version >= 13
                        else errors.UNKNOWN_TOPIC_OR_PARTITION
                    )
                    failed = True
                    continue
                partition = broker.partition(state.name, fp.partition)
                if (partition is None or not partition.is_leader) and not self._recorded:
                    broker.refresh_metadata()  # maybe we lead it since the last poll
                    partition = broker.partition(state.name, fp.partition)
                if partition is None or not 0 <= fp.partition < len(state.partitions):
                    result.error_code = (
                        errors.NOT_LEADER_OR_FOLLOWER if 0 <= fp.partition < len(state.partitions)
                        else errors.UNKNOWN_TOPIC_OR_PARTITION
                    )
                    failed = True
                    continue
                self.partitions.append(partition)
                data = self._read_partition(partition, fp, result, budget, first)
                if result.error_code != errors.NONE or result.diverging is not None:
                    failed = True
                if data:
                    first = False
                    budget -= len(data)
                    total += len(data)
        self._recorded = True
        return topics, total, failed

    def _read_partition(
        self, partition: Partition, fp: Any, result: _PartitionRead, budget: int, first: bool
    ) -> bytes:
        leader_state = partition.state
        result.leader = (leader_state.leader, leader_state.leader_epoch)
        if not partition.is_leader:
            result.error_code = errors.NOT_LEADER_OR_FOLLOWER
            return b""
        known_epoch = int(getattr(fp, "current_leader_epoch", -1))
        error = _check_epoch(partition, known_epoch)
        if error == errors.UNKNOWN_LEADER_EPOCH and not self._recorded:
            broker = self.ctx.broker
            broker.refresh_metadata()  # the asker may have seen a newer epoch first
            if broker.partition(partition.topic, partition.index) is not partition or (
                not partition.is_leader
            ):
                result.error_code = errors.NOT_LEADER_OR_FOLLOWER
                return b""
            error = _check_epoch(partition, known_epoch)
        if error:
            result.error_code = error
            return b""
        log = partition.log
        follower = self.replica_id >= 0
        result.high_watermark = partition.high_watermark
        result.log_start_offset = log.log_start_offset
        offset = int(fp.fetch_offset)
        last_fetched_epoch = int(getattr(fp, "last_fetched_epoch", -1))
        if last_fetched_epoch >= 0:
            epoch, end_offset = log.end_offset_for_epoch(last_fetched_epoch)
            if epoch < last_fetched_epoch or end_offset < offset:
                result.diverging = (epoch, end_offset)
                return b""
        if follower and not self._recorded and log.log_start_offset <= offset <= log.log_end_offset:
            # the follower has everything below its fetch offset: this may move the high
            # watermark, and the answer carries the moved one
            broker = self.ctx.broker
            broker.record_follower_fetch(partition, self.replica_id, offset)
            if broker.partition(partition.topic, partition.index) is not partition:
                result.error_code = errors.NOT_LEADER_OR_FOLLOWER  # gone meanwhile
                return b""
            result.high_watermark = partition.high_watermark
        upper = log.log_end_offset if follower else partition.high_watermark
        if budget <= 0 and not first:
            return b""
        limit = min(int(fp.partition_max_bytes), budget) if not first else int(
            fp.partition_max_bytes
        )
        try:
            data = log.read(offset, max(limit, 0), upper_bound=upper)
        except OffsetOutOfRange:
            result.error_code = errors.OFFSET_OUT_OF_RANGE
            return b""
        if len(data) > limit and not first:
            return b""
        result.records = data
        return data


async def _wait_for_data(partitions: list[Partition], seconds: float, *, follower: bool
                         ) -> None:
    """Sleep until one of ``partitions`` gets data, or ``seconds`` pass: for a consumer
    when the high watermark moves, for a follower on any append."""
    if not partitions:
        await asyncio.sleep(seconds)
        return
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for partition in partitions:
        partition.add_waiter(waiter, on_append=follower)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter, seconds)


@handles(ApiKey.FETCH)
async def fetch(ctx: RequestContext, request: Any) -> Any:
    """Serve a fetch, waiting up to max_wait for min_bytes of data."""
    version = ctx.version
    if version >= 7 and request.session_id != 0:
        return _top_level_error(ctx, errors.FETCH_SESSION_ID_NOT_FOUND)
    if version >= 7 and request.session_epoch > 0:
        return _top_level_error(ctx, errors.INVALID_FETCH_SESSION_EPOCH)
    plan = _FetchPlan(ctx, request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + millis(request.max_wait) / 1000
    min_bytes = int(request.min_bytes)
    while True:
        topics, total, failed = plan.read()
        remaining = deadline - loop.time()
        if total >= min_bytes or failed or remaining <= 0:
            break
        await _wait_for_data(plan.partitions, remaining, follower=plan.replica_id >= 0)
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
    aborted = None if int(getattr(request, "isolation_level", 0)) == READ_UNCOMMITTED else ()
    out = []
    for topic in topics:
        entries = []
        for p in topic.partitions:
            extra: dict[str, Any] = {}
            if epoch_cls is not None and p.diverging is not None:
                extra["diverging_epoch"] = make(
                    epoch_cls, epoch=p.diverging[0], end_offset=p.diverging[1]
                )
            if (
                leader_cls is not None
                and p.leader is not None
                and p.error_code in (errors.NOT_LEADER_OR_FOLLOWER, errors.FENCED_LEADER_EPOCH)
            ):
                extra["current_leader"] = make(
                    leader_cls, leader_id=p.leader[0], leader_epoch=p.leader[1]
                )
            entries.append(
                make(
                    partition_cls,
                    partition_index=p.index,
                    error_code=p.error_code,
                    high_watermark=p.high_watermark,
                    last_stable_offset=p.high_watermark,
                    log_start_offset=p.log_start_offset,
                    aborted_transactions=aborted,
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
        ctx.response_class(), throttle_time=0, error_code=errors.NONE, session_id=0,
        responses=tuple(out),
    )
