"""In-process hosts for coordinator tests: the real coordinator, logs and timers, no sockets.

``run_host`` gives the coordinator the small ``CoordinatorHost`` it depends on: real
partitions on disk in one node's data dir and a metadata of its own, nothing else of a
broker. ``run_broker`` opens a whole ``Broker`` for the tests of how the two meet.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.serial import entity_writer

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.cluster.controller import ControllerError
from kcli.broker.cluster.metadata import BrokerInfo, PartitionState, TopicState
from kcli.broker.configs import Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.group import OFFSETS_TOPIC, GroupCoordinator
from kcli.broker.group.group import JoinResult, SyncResult
from kcli.broker.partition import Partition
from kcli.broker.topic_settings import TopicSettings

FAST = {
    "group.min.session.timeout.ms": "10",
    "group.initial.rebalance.delay.ms": "0",
}


def subscription(*topics: str) -> bytes:
    """Consumer protocol subscription metadata (version 0) for ``topics``."""
    out = io.BytesIO()
    out.write(b"\x00\x00")
    entity_writer(ConsumerProtocolSubscription)(
        out, ConsumerProtocolSubscription(topics=topics, user_data=None))
    return out.getvalue()


def run_broker(data_dir: Path, test: Callable[[Broker], Awaitable[None]],
               settings: dict[str, str] | None = None) -> None:
    """Open a broker on ``data_dir`` inside an event loop, run ``test``, close it."""

    async def main() -> None:
        broker = Broker(BrokerConfig(node_id=1, data_dir=data_dir,
                                     settings={**FAST, **(settings or {})}))
        broker.open(9092)
        try:
            await test(broker)
        finally:
            broker.close()

    asyncio.run(main())


class SharedMetadata:
    """The metadata of a cluster of ``OffsetsHost``s, as the brokers' metadata.json: a
    host sees a change another made only when it refreshes. ``hidden_refreshes``
    refreshes see nothing new yet (a write racing the read)."""

    def __init__(self, node_ids: Sequence[int]) -> None:
        self.node_ids = list(node_ids)
        self.topics: dict[str, TopicState] = {}
        self.hidden_refreshes = 0


class OffsetsHost:
    """A ``CoordinatorHost``: topics in memory, partitions as real logs on disk.

    Alone (the default), it is a one-node cluster. With ``shared``, it is one node of
    several: topics are created in the shared metadata with leaders taking turns over
    the nodes, and this host sees them when it creates one or refreshes, as a broker.
    Reopened on the same data dir, it finds the offsets partitions a previous one wrote.
    Leadership is changed by editing a topic's ``PartitionState`` and calling
    ``apply_metadata``, as the controller's metadata would.
    """

    def __init__(self, data_dir: Path, settings: dict[str, str], *, node_id: int = 1,
                 shared: SharedMetadata | None = None) -> None:
        self.data_dir = data_dir
        self.node_id = node_id
        self.shared = shared
        self.settings = Settings(settings)
        self.topics: dict[str, TopicState] = {}
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.groups = GroupCoordinator(self)
        data_dir.mkdir(parents=True, exist_ok=True)
        written = list(data_dir.glob(f"{OFFSETS_TOPIC}-*"))
        if written:
            self._add_topic(OFFSETS_TOPIC, len(written), {"cleanup.policy": "compact"},
                            internal=True)
            self.apply_metadata()

    # ---------------------------------------------------------------- CoordinatorHost

    def topic(self, name: str) -> TopicState | None:
        return self.topics.get(name)

    def topic_names(self) -> list[str]:
        return list(self.topics)

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))

    def live_broker_ids(self) -> set[int]:
        return set(self._node_ids)

    def broker_endpoint(self, node_id: int) -> BrokerInfo | None:
        return BrokerInfo(node_id, "127.0.0.1", 9091 + node_id) if (
            node_id in self._node_ids) else None

    def refresh_metadata(self) -> None:
        if self.shared is None:
            return
        if self.shared.hidden_refreshes:
            self.shared.hidden_refreshes -= 1
            return
        if self.topics != self.shared.topics:
            self.topics = dict(self.shared.topics)
            self.apply_metadata()

    def create_internal_topic(self, name: str, num_partitions: int, replication_factor: int,
                              configs: Mapping[str, str]) -> TopicState:
        if self.shared is not None and name in self.shared.topics:
            raise ControllerError(ErrorCode.topic_already_exists,
                                  f"topic {name!r} already exists")
        topic = self._add_topic(name, num_partitions, configs, internal=True)
        self.apply_metadata()
        return topic

    # ---------------------------------------------------------------- what tests do

    async def create_topic(self, name: str, num_partitions: int) -> TopicState:
        """A topic the groups commit offsets for (only its metadata: nothing is written)."""
        return self._add_topic(name, num_partitions, {}, internal=False)

    async def delete_topic(self, name: str) -> None:
        """Forget a topic and tell the coordinator, as the broker does."""
        del self.topics[name]
        self.groups.on_topic_deleted(name)

    def apply_metadata(self) -> None:
        """Open the internal topics' partitions and apply leadership, then tell the
        coordinator."""
        for topic in self.topics.values():
            if not topic.internal:
                continue
            settings = TopicSettings.resolve(self.settings, topic.configs)
            for index, state in enumerate(topic.partitions):
                if self.node_id not in state.replicas:
                    continue
                partition = self.partitions.get((topic.name, index))
                if partition is None:
                    self.partitions[(topic.name, index)] = Partition(
                        topic.name, index, self.data_dir / f"{topic.name}-{index}", state,
                        settings, self.node_id)
                else:
                    partition.update_state(state)
        self.groups.on_metadata_changed()

    def close(self) -> None:
        """Stop the coordinator and close every log."""
        self.groups.close()
        for partition in self.partitions.values():
            partition.close()

    def _add_topic(self, name: str, count: int, configs: Mapping[str, str], *,
                   internal: bool) -> TopicState:
        nodes = self._node_ids
        topic = TopicState(name, uuid.uuid4(), [
            PartitionState(replicas=[node], leader=node, isr=[node])
            for node in (nodes[i % len(nodes)] for i in range(count))
        ], dict(configs), internal)
        self.topics[name] = topic
        if self.shared is not None:
            self.shared.topics[name] = topic
        return topic

    @property
    def _node_ids(self) -> list[int]:
        return self.shared.node_ids if self.shared is not None else [self.node_id]


def run_host(data_dir: Path, test: Callable[[OffsetsHost], Awaitable[None]],
             settings: dict[str, str] | None = None) -> None:
    """Run ``test`` on an ``OffsetsHost`` in ``data_dir`` inside an event loop."""

    async def main() -> None:
        host = OffsetsHost(data_dir, {**FAST, **(settings or {})})
        try:
            await test(host)
        finally:
            host.close()

    asyncio.run(main())


class Client:
    """Drives the coordinator as a group member would."""

    def __init__(self, coordinator: GroupCoordinator, group: str, *, version: int = 5,
                 protocols: Sequence[tuple[str, bytes]] = (("range", subscription("t")),),
                 session_ms: int = 10_000, rebalance_ms: int = 10_000,
                 instance_id: str | None = None, client_id: str = "client") -> None:
        self.coordinator = coordinator
        self.group = group
        self.version = version
        self.protocols = tuple(protocols)
        self.session_ms = session_ms
        self.rebalance_ms = rebalance_ms
        self.instance_id = instance_id
        self.client_id = client_id
        self.member_id = ""
        self.generation = -1
        self.protocol_type = "consumer"

    def join(self, **overrides: Any) -> asyncio.Future[JoinResult]:
        args: dict[str, Any] = {
            "group_id": self.group, "member_id": self.member_id,
            "group_instance_id": self.instance_id, "session_timeout_ms": self.session_ms,
            "rebalance_timeout_ms": self.rebalance_ms, "protocol_type": self.protocol_type,
            "protocols": self.protocols, "client_id": self.client_id,
            "client_host": "/127.0.0.1", "require_known_member_id": self.version >= 4,
            "supports_skip_assignment": self.version >= 9,
        }
        args.update(overrides)
        return self.coordinator.join_group(**args)

    async def joined(self, future: asyncio.Future[JoinResult]) -> JoinResult:
        result = await asyncio.wait_for(future, 5)
        if result.member_id:
            self.member_id = result.member_id
        if result.error == 0:
            self.generation = result.generation_id
        return result

    async def join_fully(self) -> JoinResult:
        """Join, answering MEMBER_ID_REQUIRED once."""
        result = await self.joined(self.join())
        if result.error == 79:
            result = await self.joined(self.join())
        return result

    def sync(self, assignments: Sequence[tuple[str, bytes]] = ()) -> asyncio.Future[SyncResult]:
        return self.coordinator.sync_group(
            group_id=self.group, generation_id=self.generation, member_id=self.member_id,
            group_instance_id=self.instance_id, protocol_type=None, protocol_name=None,
            assignments=assignments)

    def heartbeat(self, **overrides: Any) -> int:
        args: dict[str, Any] = {"group_id": self.group, "generation_id": self.generation,
                                "member_id": self.member_id,
                                "group_instance_id": self.instance_id}
        args.update(overrides)
        return self.coordinator.heartbeat(**args)


async def settle(times: int = 5) -> None:
    """Let ready callbacks and zero-delay timers run."""
    for _ in range(times):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (polling the loop) until ``predicate`` holds; fail after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.005)  # readiness polling of coordinator state
    except TimeoutError:
        raise AssertionError("condition not reached in time") from None
