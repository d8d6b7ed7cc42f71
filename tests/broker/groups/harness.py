"""An in-process broker for coordinator tests: the real coordinator, log and timers, no sockets."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.serial import entity_writer

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.group import GroupCoordinator
from kcli.broker.group.group import JoinResult, SyncResult

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
