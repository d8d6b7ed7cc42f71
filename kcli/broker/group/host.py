"""What the group coordinator needs of the broker it runs in, and nothing more.

As Kafka's group coordinator depends only on a ``PartitionWriter`` and a metadata image,
the coordinator here sees its broker through ``CoordinatorHost``: the topics, the
offsets partitions it writes and awaits, who is alive, and a way to create its internal
topic. ``Broker`` is one host; the coordinator's tests build a small one of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

from kcli.broker.cluster.metadata import BrokerInfo, TopicState
from kcli.broker.configs import Settings
from kcli.broker.log import AppendInfo, Record


class OffsetsLog(Protocol):
    """An offsets partition's log, as the coordinator replays it."""

    @property
    def log_start_offset(self) -> int:
        """The first offset in the log."""

    @property
    def log_end_offset(self) -> int:
        """The offset the next record gets."""

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        """Whole batches from ``offset``, about ``max_bytes`` of them, below ``upper_bound``."""

    def size_bytes(self) -> int:
        """Bytes on disk."""


class PartitionWriter(Protocol):
    """An offsets partition, as the coordinator writes to it and waits for its commits."""

    @property
    def is_leader(self) -> bool:
        """Whether this broker leads the partition (and so coordinates its groups)."""

    @property
    def high_watermark(self) -> int:
        """Writes below it are on every in-sync replica."""

    @property
    def log(self) -> OffsetsLog:
        """The partition's log."""

    def append_records(self, records: Sequence[Record],
                       producer: tuple[int, int] | None = None) -> AppendInfo:
        """Append records as leader (a transactional batch with ``producer``); raises
        NotLeader, MessageTooLarge, ProducerStateError (a fenced producer), LogError,
        OSError."""

    def add_waiter(self, waiter: asyncio.Future[None], *, on_append: bool = False) -> None:
        """Complete ``waiter`` when the high watermark moves or leadership changes."""


class CoordinatorHost(Protocol):
    """The broker, as the group coordinator uses it."""

    @property
    def node_id(self) -> int:
        """This broker's id."""

    @property
    def settings(self) -> Settings:
        """Broker settings (group.*, offsets.* are read from here)."""

    def topic(self, name: str) -> TopicState | None:
        """A topic's metadata by name."""

    def topic_names(self) -> list[str]:
        """Every topic's name (consumer groups resolve regex subscriptions against them)."""

    def partition(self, topic: str, index: int) -> PartitionWriter | None:
        """The local replica of a partition, if this broker hosts it."""

    def live_broker_ids(self) -> set[int]:
        """Ids of the brokers alive now, this one included."""

    def broker_endpoint(self, node_id: int) -> BrokerInfo | None:
        """Where a broker listens, if it is registered."""

    def refresh_metadata(self) -> None:
        """Adopt the cluster's metadata now if another broker changed it (and tell the
        coordinator through ``on_metadata_changed``), instead of at the next poll."""

    def create_internal_topic(self, name: str, num_partitions: int, replication_factor: int,
                              configs: Mapping[str, str]) -> TopicState:
        """Create an internal topic and open its local partitions (the coordinator is
        told through ``on_metadata_changed``); raises ControllerError."""
