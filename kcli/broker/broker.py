"""The broker: owns metadata, partitions and the server, and wires them together."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kcli.broker.cluster.controller import Controller
from kcli.broker.cluster.metadata import (
    BrokerInfo,
    ClusterMetadata,
    MetadataStore,
    TopicState,
    new_cluster_id,
)
from kcli.broker.configs import Settings
from kcli.broker.group import OFFSETS_TOPIC, GroupCoordinator
from kcli.broker.log.background import CleanerSettings, LogCleanerTask, retention_loop
from kcli.broker.log.log import sync_segments
from kcli.broker.partition import Partition, TopicSettings

log = logging.getLogger("kcli.broker")


class BrokerStartError(Exception):
    """The broker cannot start (data dir locked or unreadable, port busy...)."""


@dataclass(frozen=True)
class BrokerConfig:
    """Everything a broker process is started with."""

    node_id: int
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    cluster_dir: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def metadata_dir(self) -> Path:
        """Where metadata.json lives: the shared cluster dir, else the data dir."""
        return self.cluster_dir or self.data_dir


def partition_dir_name(topic: str, index: int) -> str:
    """Kafka's directory name for a partition."""
    return f"{topic}-{index}"


class Broker:
    """One Kafka-protocol broker: state shared by every connection's handlers."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.settings = Settings(config.settings)
        self.data_dir = config.data_dir
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.topic_settings: dict[str, TopicSettings] = {}
        self.advertised_host = config.advertised_host or config.host
        self.advertised_port = config.port
        self._lock_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.log_cleaner: LogCleanerTask | None = None
        store = MetadataStore(config.metadata_dir)
        self.store = store
        self.controller: Controller  # set in open()
        self.groups = GroupCoordinator(self)

    @property
    def metadata(self) -> ClusterMetadata:
        """The current cluster metadata."""
        return self.controller.metadata

    def open(self, port: int) -> None:
        """Lock the data dir, load or create metadata, open every hosted partition."""
        self.advertised_port = port
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        try:
            metadata = self.store.load()
        except ValueError as error:
            raise BrokerStartError(str(error)) from None
        if metadata is None:
            metadata = ClusterMetadata(cluster_id=new_cluster_id())
        self._check_meta_properties(metadata.cluster_id)
        metadata.controller_id = self.node_id
        metadata.brokers[self.node_id] = BrokerInfo(
            self.node_id, self.advertised_host, self.advertised_port
        )
        self.controller = Controller(self.store, metadata, self.settings)
        self.store.save(metadata)
        self._remove_deleted_dirs()
        self.apply_metadata()
        log.info(
            "broker %d of cluster %s: %d partition(s) in %s",
            self.node_id, metadata.cluster_id, len(self.partitions), self.data_dir,
        )

    def _lock_data_dir(self) -> None:
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BrokerStartError(
                f"data dir {self.data_dir} is in use by another broker"
            ) from None
        self._lock_fd = fd

    def _check_meta_properties(self, cluster_id: str) -> None:
        path = self.data_dir / "meta.properties"
        if path.exists():
            props = dict(
                line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
            )
            if props.get("cluster.id") != cluster_id or props.get("node.id") != str(self.node_id):
                raise BrokerStartError(
                    f"{path} belongs to node {props.get('node.id')} of cluster "
                    f"{props.get('cluster.id')}, not node {self.node_id} of {cluster_id}"
                )
            return
        path.write_text(f"version=1\ncluster.id={cluster_id}\nnode.id={self.node_id}\n")

    def _remove_deleted_dirs(self) -> None:
        for path in self.data_dir.glob("*-delete"):
            shutil.rmtree(path, ignore_errors=True)

    def apply_metadata(self) -> None:
        """Open partitions this broker now hosts, close the ones it no longer does."""
        wanted: set[tuple[str, int]] = set()
        for topic in self.metadata.topics.values():
            settings = TopicSettings.resolve(self.settings, topic.configs)
            old = self.topic_settings.get(topic.name)
            self.topic_settings[topic.name] = settings
            for index, state in enumerate(topic.partitions):
                if self.node_id not in state.replicas:
                    continue
                key = (topic.name, index)
                wanted.add(key)
                partition = self.partitions.get(key)
                if partition is None:
                    directory = self.data_dir / f"{topic.name}-{index}"
                    self.partitions[key] = Partition(
                        topic.name, index, directory, state, settings, self.node_id
                    )
                else:
                    partition.state = state
                    if old != settings:
                        partition.update_settings(settings)
        for key in [k for k in self.partitions if k not in wanted]:
            self._drop_partition(key)
        for name in [n for n in self.topic_settings if n not in self.metadata.topics]:
            del self.topic_settings[name]
        self.groups.on_metadata_changed()

    def _drop_partition(self, key: tuple[str, int]) -> None:
        partition = self.partitions.pop(key)
        partition.close()
        directory = partition.log.directory
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}-delete")
        os.replace(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        partition.wake_waiters()

    def topic(self, name: str) -> TopicState | None:
        """A topic's metadata by name."""
        return self.metadata.topics.get(name)

    def partition(self, topic: str, index: int) -> Partition | None:
        """The local replica of a partition, if this broker hosts it."""
        return self.partitions.get((topic, index))

    def live_broker_ids(self) -> set[int]:
        """Ids of brokers currently alive (a single broker: itself)."""
        return {self.node_id}

    def live_brokers(self) -> list[BrokerInfo]:
        """Endpoints of live brokers, by id."""
        live = self.live_broker_ids()
        return [b for node, b in sorted(self.metadata.brokers.items()) if node in live]

    async def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, str | None],
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicState:
        """Create a topic through the controller and open its local partitions."""
        topic = self.controller.create_topic(
            name, num_partitions, replication_factor, configs, assignment,
            validate_only=validate_only,
        )
        if not validate_only:
            self.apply_metadata()
            log.info("created topic %s with %d partition(s)", name, len(topic.partitions))
        return topic

    async def auto_create_topic(self, name: str) -> TopicState:
        """Create a topic a client asked Metadata for, with the broker defaults."""
        if name == OFFSETS_TOPIC:  # internal: created as the group coordinator needs it
            return self.groups.ensure_offsets_topic()
        return await self.create_topic(name, -1, -1, {})

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data."""
        self.controller.delete_topic(name)
        self.apply_metadata()
        self.groups.on_topic_deleted(name)
        log.info("deleted topic %s", name)

    async def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Grow a topic's partition count."""
        self.controller.create_partitions(name, count, assignment, validate_only=validate_only)
        if not validate_only:
            self.apply_metadata()

    async def set_topic_configs(
        self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Replace a topic's config overrides."""
        self.controller.set_topic_configs(name, configs, validate_only=validate_only)
        if not validate_only:
            self.apply_metadata()

    def allocate_producer_id(self) -> int:
        """A never-used producer id."""
        return self.controller.allocate_producer_id()

    def delete_records(self, partition: Partition, offset: int) -> int:
        """Advance a partition's log start offset; returns the new low watermark."""
        return partition.delete_records_before(offset)

    async def await_replication(self, results: object, ack_timeout: object) -> None:
        """Wait until acks=all appends reach the in-sync replicas (one replica: at once)."""

    def record_follower_fetch(self, partition: Partition, replica_id: int, offset: int) -> None:
        """Note how far a follower has fetched (no followers on a single broker)."""

    def start_background(self) -> None:
        """Start housekeeping tasks (periodic flush, producer state expiry, offset expiry),
        log retention and the log cleaner."""
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        settings = self.settings
        hosted = self.partitions.values
        self._tasks.append(asyncio.create_task(
            retention_loop(hosted, settings.get_int("log.retention.check.interval.ms")),
            name="log-retention",
        ))
        if settings.get_bool("log.cleaner.enable"):
            io_limit = float(settings.get("log.cleaner.io.max.bytes.per.second"))
            self.log_cleaner = LogCleanerTask(hosted, CleanerSettings(
                backoff_ms=settings.get_int("log.cleaner.backoff.ms"),
                dedupe_buffer_size=settings.get_int("log.cleaner.dedupe.buffer.size"),
                io_max_bytes_per_second=io_limit if io_limit < 1e300 else None,
            ))
            self._tasks.append(asyncio.create_task(self.log_cleaner.run(), name="log-cleaner"))
        self.groups.start()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for partition in list(self.partitions.values()):
                try:
                    partition.log.remove_deleted_files()
                    partition.log.flush_if_due()
                    rolled = partition.log.rolled_unsynced()
                    if rolled:  # fsync on segment roll, without stalling the event loop
                        await asyncio.to_thread(sync_segments, rolled)
                        partition.log.mark_synced(rolled)
                except OSError:
                    log.exception("flush of %s-%d failed", partition.topic, partition.index)

    def close(self) -> None:
        """Stop background work and close every partition durably."""
        for task in self._tasks:
            task.cancel()
        self.groups.close()
        for partition in self.partitions.values():
            try:
                partition.close()
            except OSError:
                log.exception("closing %s-%d failed", partition.topic, partition.index)
        self.partitions.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
