"""The broker: owns metadata, partitions and the server, and wires them together.

In a cluster (several brokers sharing a cluster directory, see
``kcli.broker.cluster.coordination``) the broker also: holds its liveness lock, polls the
shared metadata and applies each new version (opening and closing partitions, leading
or following them), runs a replica fetcher per leader it follows, changes the ISR of the
partitions it leads, and, while it holds the controller lock, elects leaders when
brokers die or return. A single broker is the same machinery with one member.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kcli.broker.cluster import reassignment
from kcli.broker.cluster.checkpoint import read_checkpoint, write_checkpoint
from kcli.broker.cluster.controller import Controller, ControllerError, elect_leaders
from kcli.broker.cluster.coordination import BrokerIdInUse, ClusterDirectory
from kcli.broker.cluster.fetcher import ReplicaFetcherManager
from kcli.broker.cluster.metadata import (
    BrokerInfo,
    ClusterMetadata,
    MetadataBusy,
    MetadataStore,
    TopicState,
)
from kcli.broker.configs import Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.group import OFFSETS_TOPIC, GroupCoordinator
from kcli.broker.log.background import CleanerSettings, LogCleanerTask, retention_loop
from kcli.broker.log.dirs import (
    DELETE_SUFFIX,
    delete_partition_dir,
    is_partition_dir,
    partition_dir_name,
    read_topic_id,
    set_aside,
    write_topic_id,
)
from kcli.broker.log.errors import LogOffline
from kcli.broker.log.log import sync_segments
from kcli.broker.partition import Partition
from kcli.broker.replicas import ReplicaManager
from kcli.broker.security import users
from kcli.broker.security.acls import Acl, Authorizer
from kcli.broker.security.inter_broker import Login
from kcli.broker.security.scram import ScramCredential
from kcli.broker.topic_settings import TopicSettings
from kcli.broker.txn.coordinator import TXN_TOPIC, TransactionCoordinator
from kcli.broker.txn.verification import PartitionVerifier
from kcli.durable import PRIVATE_FILE, make_private_dir, write_atomically

log = logging.getLogger("kcli.broker")

T = TypeVar("T")

METADATA_POLL_S = 0.1
"""How often the shared metadata file is checked for a new version."""
CONTROLLER_POLL_S = 0.2
"""How often a broker tries to become the controller, and the controller probes liveness."""
LIVENESS_CACHE_S = 0.1
STARTUP_GRACE_S = 5.0
"""For this long after it started, a controller moves no leadership while some registered
broker has not been seen live since: that one may merely be starting with it. (A broker
seen live and then gone has died.)"""
ISR_CHANGE_RETRY_S = 0.2
HW_CHECKPOINT_S = 5.0
"""How often moved high watermarks are written to replication-offset-checkpoint (Kafka's
replica.high.watermark.checkpoint.interval.ms)."""

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


class Broker:
    """One Kafka-protocol broker: state shared by every connection's handlers."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.settings = Settings(config.settings)
        self.data_dir = config.data_dir
        self.replicas = ReplicaManager(self)
        self.topic_settings: dict[str, TopicSettings] = {}
        self.advertised_host = config.advertised_host or config.host
        self.advertised_port = config.port
        self._authorizer: tuple[ClusterMetadata, Authorizer] | None = None
        self.inter_broker_login: Login | None = None
        """How this broker logs in to the others' inter-broker listener (the runner
        sets it from the listener settings; None: plaintext)."""
        self._lock_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.log_cleaner: LogCleanerTask | None = None
        store = MetadataStore(config.metadata_dir)
        self.store = store
        self.cluster = ClusterDirectory(config.metadata_dir)
        self.controller = Controller(
            store, self.settings, self.node_id,
            lambda ids: self.cluster.live_brokers(ids, self.node_id),
        )
        self.fetchers: ReplicaFetcherManager | None = None  # in start_background()
        self.groups = GroupCoordinator(self)
        self.transactions = TransactionCoordinator(self)
        self.txn_verifier = PartitionVerifier(self)
        self._started_at = time.monotonic()
        self._balanced_at = self._started_at  # leaders are balanced one interval after start
        self._live: set[int] = {self.node_id}
        self._live_at = -1.0
        self._seen_live: set[int] = set()  # brokers seen live since this one started
        self._settled: tuple[int, frozenset[int]] | None = None  # nothing to elect at these
        self._stopping = False
        self._isr_attempts: dict[tuple[str, int], float] = {}
        self._offline_settled: tuple[int, frozenset[tuple[str, int]], frozenset[int]] | None = None
        self._checkpointed: dict[tuple[str, int], int] = {}  # as last written
        self._recovered: dict[tuple[str, int], int] = {}  # as read at start, until opened
        self._undeleted: dict[str, list[str]] = {}  # topic -> why its data stayed

    @property
    def partitions(self) -> dict[tuple[str, int], Partition]:
        """The partitions this broker hosts (the replica manager's)."""
        return self.replicas.partitions

    @property
    def metadata(self) -> ClusterMetadata:
        """The current cluster metadata."""
        return self.controller.metadata

    def open(self, port: int, endpoints: dict[str, tuple[str, int]] | None = None,
             advertised_host: str | None = None) -> None:
        """Lock the data dir, take this broker's liveness lock, register in the cluster
        metadata (creating it for a new cluster), open every hosted partition. ``port``
        (and ``advertised_host``) are the inter-broker listener's; ``endpoints`` every
        listener's, when there are several."""
        self.advertised_port = port
        if advertised_host is not None:
            self.advertised_host = advertised_host
        make_private_dir(self.data_dir)
        self._lock_data_dir()
        try:
            self.cluster.acquire_broker(self.node_id)
            info = BrokerInfo(self.node_id, self.advertised_host, self.advertised_port,
                              endpoints=dict(endpoints or {}))
            metadata = self.controller.open(info, self._check_meta_properties)
            self.live_broker_ids()  # who runs now, before anyone can die unseen
            if self.cluster.try_acquire_controller():
                self.controller.claim_controller()  # open() applies the metadata next
        except (BrokerIdInUse, ControllerError, MetadataBusy, ValueError) as error:
            self._release_locks()
            raise BrokerStartError(str(error)) from None
        except BaseException:
            self._release_locks()
            raise
        self._remove_deleted_dirs()
        self._set_aside_stray_dirs()
        self._recovered = read_checkpoint(self.data_dir)
        self.apply_metadata()
        log.info(
            "broker %d of cluster %s: %d partition(s) in %s%s",
            self.node_id, metadata.cluster_id, len(self.partitions), self.data_dir,
            " (controller)" if self.cluster.is_controller else "",
        )

    def _lock_data_dir(self) -> None:
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
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
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as error:
                raise BrokerStartError(
                    f"{path} is damaged (not UTF-8 text: {error.reason} at byte {error.start})"
                ) from None
            props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if props.get("cluster.id") != cluster_id or props.get("node.id") != str(self.node_id):
                raise BrokerStartError(
                    f"{path} belongs to node {props.get('node.id')} of cluster "
                    f"{props.get('cluster.id')}, not node {self.node_id} of {cluster_id}"
                )
            return
        write_atomically(
            path, f"version=1\ncluster.id={cluster_id}\nnode.id={self.node_id}\n".encode(),
            PRIVATE_FILE,
        )

    def _remove_deleted_dirs(self) -> None:
        for path in self.data_dir.glob(f"*{DELETE_SUFFIX}"):
            shutil.rmtree(path, ignore_errors=True)

    def _set_aside_stray_dirs(self) -> None:
        """Rename the partition directories that no partition hosted here claims (a
        deletion that failed, a replica moved away while this broker was down) so that
        a topic created later under that name never opens their data; kept, as Kafka
        keeps stray logs."""
        hosted = {
            partition_dir_name(topic.name, index)
            for topic in self.metadata.topics.values()
            for index, state in enumerate(topic.partitions)
            if self.node_id in state.replicas
        }
        for path in sorted(self.data_dir.iterdir()):
            if path.name in hosted or not is_partition_dir(path):
                continue
            try:
                stray = set_aside(path)
            except OSError as error:
                log.error("cannot set aside %s, which no partition here claims: %s",
                          path, error)
            else:
                log.warning("%s is no partition of this broker: set aside as %s",
                            path.name, stray.name)

    def refresh_metadata(self) -> None:
        """Apply the shared metadata if another broker changed it (a stat when it did not)."""
        if self.controller.reload_if_changed():
            self.apply_metadata()

    def apply_metadata(self) -> None:
        """Open partitions this broker now hosts, close the ones it no longer does; lead
        or follow each as the metadata says; point the replica fetchers at the leaders."""
        self._live_at = -1.0  # brokers may have registered: probe afresh
        self._undeleted.clear()  # what delete_topic did not collect is only logged
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
                    directory = self.data_dir / partition_dir_name(topic.name, index)
                    if not self._claim_dir(directory, topic):
                        continue
                    self.partitions[key] = Partition(
                        topic.name, index, directory, state, settings, self.node_id,
                        self._recovered.pop(key, None), request_isr_change=self._change_isr,
                    )
                else:
                    partition.update_state(state)
                    if old != settings:
                        partition.update_settings(settings)
        for key in [k for k in self.partitions if k not in wanted]:
            self._drop_partition(key)
        for name in [n for n in self.topic_settings if n not in self.metadata.topics]:
            del self.topic_settings[name]
        self._update_fetchers()
        self.groups.on_metadata_changed()
        self.transactions.on_metadata_changed()

    def _update_fetchers(self) -> None:
        if self.fetchers is None:
            return
        wanted: dict[int, set[tuple[str, int]]] = {}
        if not self._stopping:
            for key, partition in self.partitions.items():
                leader = partition.state.leader
                if leader >= 0 and leader != self.node_id and not partition.log.offline:
                    wanted.setdefault(leader, set()).add(key)
        self.fetchers.update(wanted)

    def _claim_dir(self, directory: Path, topic: TopicState) -> bool:
        """Make ``directory`` the topic's before its partition opens there: stamp it with
        the topic id (a directory from before the stamps is adopted); one stamped with
        another topic's id is an old topic's data under the same name, deleted first.
        False when that deletion fails: the partition stays closed, never serving it."""
        stamped = read_topic_id(directory)
        if stamped is not None and stamped != topic.topic_id:
            log.warning("%s holds the data of an earlier topic %s: deleting it",
                        directory.name, topic.name)
            try:
                delete_partition_dir(directory)
            except OSError as error:
                log.error("cannot delete %s (%s): partition %s stays offline here",
                          directory, error, directory.name)
                return False
        if stamped != topic.topic_id:
            make_private_dir(directory)
            write_topic_id(directory, topic.topic_id)
        return True

    def _drop_partition(self, key: tuple[str, int]) -> None:
        """Close a partition this broker no longer hosts and delete its data. Never
        raises: a failure is logged and kept for ``delete_topic`` to report; the data
        left behind stays stamped with its topic's id, so a new topic of that name
        never opens it."""
        partition = self.partitions.pop(key)
        try:
            partition.discard()
        except OSError as error:
            log.error("closing %s-%d failed: %s", partition.topic, partition.index, error)
        directory = partition.log.directory
        try:
            delete_partition_dir(directory, in_background=True)
        except OSError as error:
            log.error("cannot delete %s: %s", directory, error)
            self._undeleted.setdefault(partition.topic, []).append(
                f"{directory.name}: {error.strerror or error}")
        partition.wake_waiters()

    def topic(self, name: str) -> TopicState | None:
        """A topic's metadata by name."""
        return self.metadata.topics.get(name)

    def topic_names(self) -> list[str]:
        """Every topic's name."""
        return list(self.metadata.topics)

    def partition(self, topic: str, index: int) -> Partition | None:
        """The local replica of a partition, if this broker hosts it."""
        return self.replicas.get(topic, index)

    def live_broker_ids(self) -> set[int]:
        """Ids of registered brokers whose liveness lock is held (probed at most every
        100 ms); always includes this broker."""
        now = time.monotonic()
        if now - self._live_at > LIVENESS_CACHE_S:
            self._live = self.cluster.live_brokers(self.metadata.brokers, self.node_id)
            self._live_at = now
            self._seen_live |= self._live
        return set(self._live)

    def _probe_live(self) -> set[int]:
        self._live_at = -1.0
        return self.live_broker_ids()

    @property
    def authorizer(self) -> Authorizer | None:
        """The ACL authorizer over the cluster's ACLs now; None when authorizer.class.name
        is empty (every request allowed, as Kafka without an authorizer)."""
        if not self.settings.get("authorizer.class.name"):
            return None
        metadata = self.metadata
        if self._authorizer is None or self._authorizer[0] is not metadata:
            super_users = [u.strip() for u in self.settings.get("super.users").split(";")
                           if u.strip()]
            self._authorizer = (metadata, Authorizer(
                (Acl.from_json(doc) for doc in metadata.acls), super_users,
                self.settings.get_bool("allow.everyone.if.no.acl.found")))
        return self._authorizer[1]

    def scram_credential(self, user: str, mechanism: str) -> ScramCredential | None:
        """A user's stored SCRAM credential, as the cluster metadata has it now."""
        self.refresh_metadata()
        return users.credential(self.metadata, user, mechanism)

    def broker_endpoint(self, node_id: int) -> BrokerInfo | None:
        """Where a registered broker listens."""
        return self.metadata.brokers.get(node_id)

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

    def create_internal_topic(self, name: str, num_partitions: int, replication_factor: int,
                              configs: Mapping[str, str]) -> TopicState:
        """Create a topic only the broker writes to (``__consumer_offsets``) and open its
        local partitions; raises ControllerError."""
        topic = self.controller.create_topic(name, num_partitions, replication_factor,
                                             configs, internal=True)
        self.apply_metadata()
        return topic

    async def auto_create_topic(self, name: str) -> TopicState:
        """Create a topic a client asked Metadata for, with the broker defaults."""
        if name == OFFSETS_TOPIC:  # internal: created as the group coordinator needs it
            return self.groups.ensure_offsets_topic()
        if name == TXN_TOPIC:  # and this one as the transaction coordinator needs it
            return self.transactions.ensure_state_topic()
        return await self.create_topic(name, -1, -1, {})

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data; ControllerError (KAFKA_STORAGE_ERROR) when the
        topic is gone but some of its data could not be deleted."""
        self.controller.delete_topic(name)
        self.apply_metadata()
        self.groups.on_topic_deleted(name)
        log.info("deleted topic %s", name)
        undeleted = self._undeleted.pop(name, None)
        if undeleted:
            raise ControllerError(
                ErrorCode.kafka_storage_error,
                f"topic {name!r} is deleted, but not all its data: {'; '.join(undeleted)}",
            )

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

    def reassign_partitions(self, moves: Sequence[tuple[str, int, Sequence[int] | None]],
                            ) -> list[reassignment.Outcome]:
        """Start or cancel partition moves and open/close what this broker now hosts."""
        outcomes = self.controller.reassign(moves)
        self.apply_metadata()
        for (topic, index, target), outcome in zip(moves, outcomes, strict=True):
            if not outcome.error_code:
                log.info("%s-%d: %s", topic, index, f"moving to {list(target)}"
                         if target is not None else "reassignment cancelled")
        return outcomes

    def elect_partition_leaders(self, partitions: Sequence[tuple[str, int]],
                                election: int) -> list[reassignment.Outcome]:
        """Elect leaders on request (ElectLeaders)."""
        outcomes = self.controller.elect(partitions, election, self.live_broker_ids())
        self.apply_metadata()
        return outcomes

    def _balance_leaders(self, live: set[int]) -> None:
        """As the controller, every leader.imbalance.check.interval.seconds: give each
        partition back to its preferred replica when that one is live and in sync (a
        broker that came back leads its partitions again)."""
        if self.settings.get("auto.leader.rebalance.enable") != "true":
            return
        interval = self.settings.get_int("leader.imbalance.check.interval.seconds")
        now = time.monotonic()
        if now - self._balanced_at < interval:
            return
        self._balanced_at = now
        todo = reassignment.imbalanced(self.metadata, live)
        if not todo:
            return
        for (topic, index), outcome in zip(
                todo, self.controller.elect(todo, reassignment.PREFERRED, live), strict=True):
            if not outcome.error_code:
                log.info("controller: %s-%d: leadership back to its preferred replica",
                         topic, index)
        self.apply_metadata()

    def allocate_producer_id(self) -> int:
        """A never-used producer id."""
        return self._adopting(self.controller.allocate_producer_id)

    def _adopting(self, transaction: Callable[[], T]) -> T:
        """Run a controller transaction that changes nothing this broker hosts, and apply
        the metadata it adopted if others had changed it meanwhile: the transaction read
        the freshest file, so the next poll would see nothing new."""
        before = self.metadata
        result = transaction()
        if self.metadata is not before:
            self.apply_metadata()
        return result

    # ================================================================== replication

    def _change_isr(self, partition: Partition, isr: list[int], why: str) -> None:
        """Kafka's AlterPartition, as a metadata transaction with epoch checks."""
        key = (partition.topic, partition.index)
        now = time.monotonic()
        if now - self._isr_attempts.get(key, -1.0) < ISR_CHANGE_RETRY_S:
            return
        self._isr_attempts[key] = now
        state = partition.state
        try:
            self.controller.alter_isr(partition.topic, partition.index, state.leader_epoch,
                                      state.partition_epoch, isr)
        except ControllerError as error:
            log.info("%s-%d: ISR change to %s refused: %s", partition.topic, partition.index,
                     isr, error.message)
            self.refresh_metadata()
            return
        log.info("%s-%d: ISR %s -> %s (%s)", partition.topic, partition.index, state.isr, isr,
                 why)
        del self._isr_attempts[key]
        self.apply_metadata()

    def _hand_over_offline_logs(self) -> None:
        """Kafka's rule for a log dir that failed: its partitions move. Leaderships of
        partitions whose log went offline here go to in-sync peers, and this broker leaves
        their ISRs (``controlled_shutdown`` for those partitions alone); it stops
        fetching them. They stay offline here until a restart recovers the logs."""
        offline = frozenset(key for key, p in self.partitions.items() if p.log.offline)
        if not offline or self._stopping:
            return
        live = self.live_broker_ids()
        settled = (self.metadata.epoch, offline, frozenset(live))
        if settled == self._offline_settled:
            return
        try:
            changes = self.controller.controlled_shutdown(live, only=offline)
        except ControllerError as error:
            log.warning("moving partitions off offline logs failed: %s", error.message)
            return
        for change in changes:
            log.warning("%s", change)
        self._offline_settled = (self.metadata.epoch, offline, frozenset(live))
        self.apply_metadata()

    def _shrink_isrs(self) -> None:
        """Take followers that stopped keeping up out of the ISRs this broker leads."""
        max_lag = self.settings.get_int("replica.lag.time.max.ms")
        for partition in list(self.partitions.values()):
            partition.maybe_shrink_isr(max_lag)

    # ================================================================== the controller

    def _control(self) -> None:
        """One round of the controller's duties, if this broker is (or becomes) it."""
        if self._stopping:
            return
        live = self._probe_live()
        metadata = self.metadata
        if not self.cluster.is_controller:
            if not self.cluster.try_acquire_controller():
                return
            log.info("broker %d is now the controller", self.node_id)
            self._adopting(self.controller.claim_controller)
        never_seen = set(metadata.brokers) - self._seen_live
        if never_seen and time.monotonic() - self._started_at < STARTUP_GRACE_S:
            return  # they may be starting with us: give them a moment
        self._balance_leaders(live)
        metadata = self.metadata
        settled = (metadata.epoch, frozenset(live))
        if settled == self._settled:
            return
        if not elect_leaders(metadata, live, self.settings, dry_run=True):
            self._settled = settled
            return
        for change in self.controller.elect_leaders(live):
            log.info("controller: %s", change)
        self.apply_metadata()

    async def shutdown(self) -> None:
        """Controlled shutdown: hand the partitions this broker leads to other in-sync
        replicas (so clients move at once instead of timing out), stop fetching."""
        self._stopping = True
        if self.fetchers is not None:
            await self.fetchers.close()
            self.fetchers = None
        try:
            changes = self.controller.controlled_shutdown(self._probe_live())
        except ControllerError as error:
            log.warning("controlled shutdown failed: %s", error.message)
        else:
            for change in changes:
                log.info("%s", change)
            self.apply_metadata()
        self.cluster.release_controller()

    # ================================================================== background

    def start_background(self) -> None:
        """Start housekeeping tasks (periodic flush, producer state expiry, offset expiry),
        log retention and the log cleaner, and the cluster's: metadata polling, the
        controller, fetchers, ISR shrinking."""
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
        self._start_cluster_tasks()
        self.groups.start()
        self.transactions.start()

    def _start_cluster_tasks(self) -> None:
        self.fetchers = ReplicaFetcherManager(self)
        self._update_fetchers()
        max_lag = self.settings.get_int("replica.lag.time.max.ms")
        for interval, step, name in (
            (METADATA_POLL_S, self.refresh_metadata, "metadata-poll"),
            (CONTROLLER_POLL_S, self._control, "controller"),
            (min(max_lag / 2, 500) / 1000, self._shrink_isrs, "isr-shrink"),
            (CONTROLLER_POLL_S, self._hand_over_offline_logs, "offline-logs"),
            (HW_CHECKPOINT_S, self._checkpoint_high_watermarks, "hw-checkpoint"),
        ):
            self._tasks.append(asyncio.create_task(_every(interval, step, name), name=name))

    def _checkpoint_high_watermarks(self) -> None:
        """Write replication-offset-checkpoint when a high watermark moved. A write the
        disk refuses is one warning line and retried on the next tick. A stale checkpoint
        only holds a high watermark back after a restart until the followers fetch
        again, so unlike Kafka, which takes the log dir offline for it, a full disk does
        not stop every partition."""
        current = {key: p.high_watermark for key, p in self.partitions.items()}
        if current == self._checkpointed:
            return
        try:
            write_checkpoint(self.data_dir, current)
        except OSError as error:
            log.warning("high watermark checkpoint not written: %s", error)
            return
        self._checkpointed = current

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for partition in list(self.partitions.values()):
                try:
                    partition.log.remove_deleted_files()
                    partition.log.flush_if_due()
                    rolled = partition.log.rolled_unsynced()
                    if rolled:  # fsync on segment roll, without stalling the event loop
                        failures = await asyncio.to_thread(sync_segments, rolled)
                        partition.log.mark_synced(rolled, failures)
                except LogOffline as error:  # its leadership moves (_hand_over_offline_logs)
                    log.error("%s-%d: log offline: %s", partition.topic, partition.index, error)
                except OSError:
                    log.exception("flush of %s-%d failed", partition.topic, partition.index)

    def close(self) -> None:
        """Stop background work and close every partition durably."""
        for task in self._tasks:
            task.cancel()
        if self.fetchers is not None:
            self.fetchers.cancel()
        self._checkpoint_high_watermarks()
        self.groups.close()
        self.transactions.close()
        self.txn_verifier.close()
        for partition in self.partitions.values():
            try:
                partition.close()
            except OSError:
                log.exception("closing %s-%d failed", partition.topic, partition.index)
        self.partitions.clear()
        self._release_locks()

    def _release_locks(self) -> None:
        self.cluster.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


async def _every(interval: float, step: Callable[[], None], name: str) -> None:
    """Run ``step`` every ``interval`` seconds; an error is logged, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            step()
        except Exception:
            log.exception("%s failed", name)
