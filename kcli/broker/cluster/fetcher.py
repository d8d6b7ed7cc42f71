"""The replica fetcher: how a follower copies its leader's log, as Kafka's followers do.

A broker runs one fetcher task per leader broker it follows, each with one connection
(``client.BrokerClient``) and one Fetch request in flight (v12: ``replica_id`` = our node
id, ``current_leader_epoch``, ``last_fetched_epoch`` = the epoch of our last batch, fetch
offset = our log end, long-polling up to ``replica.fetch.wait.max.ms``). For every
partition in the answer, provided nothing moved meanwhile (same partition object, same
leader and leader epoch, same log end):

- records: appended as they are (``Partition.append_replicated``, which also keeps the
  producer-state table), then the leader's high watermark (capped at our log end) and
  log start offset are copied;
- ``diverging_epoch`` (KIP-320: our last epoch ends earlier in the leader's log, or is
  unknown there): truncate to min(the leader's end offset of that epoch, ours) and fetch
  again; that removes records a dead leader wrote that never reached the new one;
- OFFSET_OUT_OF_RANGE below the leader's log start: restart our log at the leader's log
  start; above its end (only after an unclean election): truncate to its high watermark;
- NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION: the
  metadata moved; reread it, back off ``replica.fetch.backoff.ms``.

A connection failure (the leader died) backs off and retries until the controller's new
metadata moves the partitions to another fetcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

from kcli.broker.cluster.client import BrokerClient, BrokerConnectionError
from kcli.broker.cluster.metadata import BrokerInfo
from kcli.broker.configs import Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.log import LogError
from kcli.broker.security.inter_broker import Login

if TYPE_CHECKING:
    from kcli.broker.partition import Partition

log = logging.getLogger("kcli.broker.replication")

REQUEST_SLACK = 10.0  # seconds a fetch may take beyond its max wait before we give up on it

PartitionKey = tuple[str, int]


class FollowerHost(Protocol):
    """The broker, as its replica fetchers use it."""

    @property
    def node_id(self) -> int:
        """This broker's id: the replica id of its fetches."""

    @property
    def settings(self) -> Settings:
        """Broker settings (replica.fetch.* are read from here)."""

    def broker_endpoint(self, node_id: int) -> BrokerInfo | None:
        """Where a registered broker listens."""

    @property
    def inter_broker_login(self) -> Login | None:
        """How to log in to another broker's inter-broker listener (None: plaintext)."""

    def partition(self, topic: str, index: int) -> Partition | None:
        """The local replica of a partition, if this broker hosts it."""

    def refresh_metadata(self) -> None:
        """Apply the shared metadata if it changed (after an error answer)."""


@dataclass(slots=True)
class _Fetching:
    """One partition of a fetch in flight, as it was when the request was built."""

    partition: Partition
    leader_epoch: int
    fetch_offset: int


class ReplicaFetcher:
    """Fetches every partition this broker follows from one leader broker."""

    def __init__(self, broker: FollowerHost, leader_id: int) -> None:
        self.broker = broker
        self.leader_id = leader_id
        self.partitions: set[PartitionKey] = set()
        self._added = asyncio.Event()
        self._client: BrokerClient | None = None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{leader_id}"
        )

    def set_partitions(self, keys: set[PartitionKey]) -> None:
        """Fetch exactly ``keys`` from now on; a new partition interrupts a long poll."""
        added = bool(keys - self.partitions)
        self.partitions = set(keys)
        if added:
            self._added.set()

    def cancel(self) -> None:
        """Stop at once (the broker is closing)."""
        self._task.cancel()
        if self._client is not None:
            self._client.close()

    async def close(self) -> None:
        """Stop fetching and close the connection."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._client is not None:
            self._client.close()

    # ================================================================== the loop

    def _setting(self, name: str) -> int:
        return self.broker.settings.get_int(name)

    def _connection(self) -> BrokerClient | None:
        info = self.broker.broker_endpoint(self.leader_id)
        if info is None:
            return None
        client = self._client
        if client is None or (client.host, client.port) != (info.host, info.port):
            if client is not None:
                client.close()
            client = self._client = BrokerClient(
                info.host, info.port, f"kcli-replica-fetcher-{self.broker.node_id}",
                login=self.broker.inter_broker_login,
            )
        return client

    async def _run(self) -> None:
        backoff = self._setting("replica.fetch.backoff.ms") / 1000
        while True:
            try:
                failed = await self._fetch_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop replication for good
                log.exception("replica fetcher for broker %d failed", self.leader_id)
                failed = True
            if failed:
                self.broker.refresh_metadata()
                await asyncio.sleep(backoff)

    async def _fetch_once(self) -> bool:
        """One fetch round; returns True when it failed and the loop should back off."""
        self._added.clear()
        plan = self._plan()
        if not plan:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._added.wait(), 1.0)
            return False
        client = self._connection()
        if client is None:
            return True
        max_wait = self._setting("replica.fetch.wait.max.ms")
        request = self._request(plan, max_wait)
        fetch = asyncio.ensure_future(client.request(request, max_wait / 1000 + REQUEST_SLACK))
        fetch.add_done_callback(_retrieve)
        added = asyncio.ensure_future(self._added.wait())
        try:
            await asyncio.wait({fetch, added}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            fetch.cancel()  # closing
            raise
        finally:
            added.cancel()
        if not fetch.done():  # a partition joined: ask again, with it, at once
            fetch.cancel()
            await asyncio.wait({fetch})
            return False
        try:
            response = fetch.result()
        except BrokerConnectionError as error:
            log.debug("fetch from broker %d failed: %s", self.leader_id, error)
            return True
        if int(response.error_code) != ErrorCode.none:
            log.warning("fetch from broker %d: error %d", self.leader_id,
                        int(response.error_code))
            return True
        return self._handle(plan, response)

    def _plan(self) -> dict[PartitionKey, _Fetching]:
        plan = {}
        for key in sorted(self.partitions):
            partition = self.broker.partition(*key)
            if partition is None or partition.state.leader != self.leader_id:
                continue
            plan[key] = _Fetching(partition, partition.state.leader_epoch,
                                  partition.log.log_end_offset)
        return plan

    def _request(self, plan: dict[PartitionKey, _Fetching], max_wait: int) -> FetchRequest:
        per_partition = self._setting("replica.fetch.max.bytes")
        by_topic: dict[str, list[FetchPartition]] = {}
        for (topic, index), f in plan.items():
            by_topic.setdefault(topic, []).append(
                FetchPartition(
                    partition=index,  # type: ignore[arg-type]
                    current_leader_epoch=f.leader_epoch,  # type: ignore[arg-type]
                    fetch_offset=f.fetch_offset,  # type: ignore[arg-type]
                    last_fetched_epoch=f.partition.last_fetched_epoch,  # type: ignore[arg-type]
                    log_start_offset=f.partition.log.log_start_offset,  # type: ignore[arg-type]
                    partition_max_bytes=per_partition,  # type: ignore[arg-type]
                )
            )
        return FetchRequest(
            replica_id=self.broker.node_id,  # type: ignore[arg-type]
            max_wait=datetime.timedelta(milliseconds=max_wait),  # type: ignore[arg-type]
            min_bytes=1,  # type: ignore[arg-type]
            max_bytes=self._setting("replica.fetch.response.max.bytes"),  # type: ignore[arg-type]
            isolation_level=0,  # type: ignore[arg-type]
            session_id=0,  # type: ignore[arg-type]
            session_epoch=-1,  # type: ignore[arg-type]
            topics=tuple(
                FetchTopic(topic=topic, partitions=tuple(parts))  # type: ignore[arg-type]
                for topic, parts in by_topic.items()
            ),
            forgotten_topics_data=(),
            rack_id="",
        )

    # ================================================================== answers

    def _handle(self, plan: dict[PartitionKey, _Fetching], response: Any) -> bool:
        failed = False
        for topic_response in response.responses:
            for data in topic_response.partitions:
                key = (str(topic_response.topic), int(data.partition_index))
                fetching = plan.get(key)
                if fetching is None or not self._unchanged(key, fetching):
                    continue
                try:
                    failed |= not self._apply(fetching, data)
                except (LogError, OSError, ValueError) as error:
                    log.error("%s-%d: cannot apply the fetch from broker %d: %s",
                              key[0], key[1], self.leader_id, error)
                    failed = True
        return failed

    def _unchanged(self, key: PartitionKey, fetching: _Fetching) -> bool:
        partition = fetching.partition
        return (
            self.broker.partition(*key) is partition
            and partition.state.leader == self.leader_id
            and partition.state.leader_epoch == fetching.leader_epoch
            and partition.log.log_end_offset == fetching.fetch_offset
        )

    def _apply(self, fetching: _Fetching, data: Any) -> bool:
        """Apply one partition's answer; False when it was an error to back off from."""
        partition = fetching.partition
        where = f"{partition.topic}-{partition.index}"
        code = int(data.error_code)
        if code == ErrorCode.none:
            diverging = data.diverging_epoch
            if int(diverging.epoch) >= 0 or int(diverging.end_offset) >= 0:
                self._truncate_diverged(partition, int(diverging.epoch),
                                        int(diverging.end_offset))
                return True
            records = data.records
            if records:
                partition.append_replicated(records)
            partition.follow_leader(int(data.high_watermark), int(data.log_start_offset))
            return True
        if code == ErrorCode.offset_out_of_range:
            leader_start = int(data.log_start_offset)
            if fetching.fetch_offset < leader_start:
                log.info("%s: our log end %d is below the leader's log start %d: restarting "
                         "the log there", where, fetching.fetch_offset, leader_start)
                partition.truncate_fully_and_start_at(leader_start)
            else:
                target = max(int(data.high_watermark), partition.log.log_start_offset)
                log.warning("%s: our log end %d is past the leader's log: truncating to its "
                            "high watermark %d", where, fetching.fetch_offset, target)
                partition.truncate_to(target)
            return True
        log.debug("%s: fetch from broker %d answered error %d", where, self.leader_id, code)
        return False

    def _truncate_diverged(self, partition: Partition, epoch: int, end_offset: int) -> None:
        """KIP-320: the leader says our log diverges after ``epoch`` ending at
        ``end_offset``; keep the part both logs share."""
        _ours, our_end = partition.log.end_offset_for_epoch(epoch)
        target = end_offset if our_end < 0 else min(end_offset, our_end)
        before = partition.log.log_end_offset
        log.info("%s-%d: log diverges from leader %d after epoch %d: truncating %d -> %d",
                 partition.topic, partition.index, self.leader_id, epoch, before, target)
        if target < partition.log.log_start_offset:
            partition.truncate_fully_and_start_at(max(end_offset, 0))
        else:
            partition.truncate_to(target)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a fetch's failure as seen (it is handled, or the fetch was abandoned)."""
    if not future.cancelled():
        future.exception()


class ReplicaFetcherManager:
    """The fetchers of one broker: one per leader it follows partitions of."""

    def __init__(self, broker: FollowerHost) -> None:
        self.broker = broker
        self._fetchers: dict[int, ReplicaFetcher] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def update(self, wanted: dict[int, set[PartitionKey]]) -> None:
        """Follow exactly ``wanted`` (leader id -> partitions) from now on."""
        for leader_id, keys in wanted.items():
            fetcher = self._fetchers.get(leader_id)
            if fetcher is None:
                fetcher = self._fetchers[leader_id] = ReplicaFetcher(self.broker, leader_id)
            fetcher.set_partitions(keys)
        for leader_id in [i for i in self._fetchers if i not in wanted]:
            fetcher = self._fetchers.pop(leader_id)
            task = asyncio.get_running_loop().create_task(fetcher.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def cancel(self) -> None:
        """Stop every fetcher at once (the broker is closing)."""
        for fetcher in self._fetchers.values():
            fetcher.cancel()
        self._fetchers = {}

    async def close(self) -> None:
        """Stop every fetcher."""
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        for fetcher in fetchers:
            await fetcher.close()
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
