"""Metadata changes as transactions, and the controller's leader elections.

Every broker has a ``Controller``: it is how that broker changes the cluster metadata.
A change (topic creation, deletion, partitions, configs, producer-id blocks, broker
registration, an ISR change by a partition leader) is a transaction on the shared
``metadata.json`` (see ``coordination``): lock, reload, validate and apply, write with
epoch + 1, unlock. Nothing takes effect before it is persisted.

The broker holding ``controller.lock`` is *the* controller of the cluster; it alone runs
``elect_leaders`` when brokers die or come back, as Kafka's active controller does.
A clean shutdown runs ``controlled_shutdown`` on the way out.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeVar, cast

from kcli.broker.cluster import reassignment
from kcli.broker.cluster.metadata import (
    BrokerInfo,
    ClusterMetadata,
    InvalidTopicName,
    MetadataBusy,
    MetadataStore,
    PartitionState,
    Signature,
    TopicState,
    check_topic_name,
    colliding_topic,
    new_cluster_id,
)
from kcli.broker.configs import InvalidConfig, Settings, validate_topic_configs
from kcli.broker.errors import ErrorCode
from kcli.broker.fd_budget import open_files_limit, partitions_allowed

log = logging.getLogger("kcli.broker.cluster")

MAX_PARTITIONS = 100_000
RESERVED_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
PRODUCER_ID_BLOCK = 1000

T = TypeVar("T")


class ControllerError(Exception):
    """A metadata change was refused; carries the Kafka error code and a message."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class _Unchanged(Exception):
    """Raised by a transaction's change function that found nothing to change; carries
    the transaction's result."""

    def __init__(self, result: object = None) -> None:
        super().__init__()
        self.result = result


class Controller:
    """This broker's writer of the shared metadata: every change is a transaction."""

    def __init__(
        self,
        store: MetadataStore,
        settings: Settings,
        node_id: int,
        probe: Callable[[Iterable[int]], set[int]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.node_id = node_id
        self.metadata = ClusterMetadata(cluster_id="")
        self._probe = probe or set
        self._signature: Signature | None = None
        self._producer_ids = range(0)

    # ================================================================== transactions

    def transact(self, change: Callable[[ClusterMetadata], T]) -> T:
        """Run a change from another room (SCRAM users, ACLs) as one transaction."""
        return self._transact(change)

    def _transact(self, change: Callable[[ClusterMetadata], T], *, save: bool = True) -> T:
        """Run ``change`` on the freshest metadata under the lock; persist it when ``save``
        (and ``change`` did not raise); adopt the result as this broker's view. A file
        that cannot be written (a full disk) is ControllerError KAFKA_STORAGE_ERROR, with
        nothing changed: every handler answers it instead of dropping the connection."""
        try:
            with self.store.locked():
                metadata = self.store.load()
                if metadata is None:  # the file vanished: recover it from our copy
                    metadata = ClusterMetadata.from_json(self.metadata.to_json())
                try:
                    result = change(metadata)
                except _Unchanged as unchanged:
                    save = False
                    result = cast(T, unchanged.result)
                if save:
                    self.store.save(metadata)
                signature = self.store.signature()
        except MetadataBusy as error:
            raise ControllerError(ErrorCode.request_timed_out, str(error)) from None
        except OSError as error:
            log.error("cannot write the cluster metadata: %s", error)
            raise ControllerError(ErrorCode.kafka_storage_error,
                                  f"cannot write the cluster metadata: {error}") from None
        if metadata.epoch >= self.metadata.epoch:
            self.metadata = metadata
            self._signature = signature
        return result

    def reload_if_changed(self) -> bool:
        """Adopt ``metadata.json`` if another broker changed it; True when it did."""
        signature = self.store.signature()
        if signature is None or signature == self._signature:
            return False
        try:
            metadata = self.store.load()
        except (OSError, ValueError) as error:
            log.error("cannot read the cluster metadata: %s", error)
            return False
        self._signature = signature
        if metadata is None or metadata.epoch <= self.metadata.epoch:
            return False
        self.metadata = metadata
        return True

    def open(self, info: BrokerInfo, check_cluster_id: Callable[[str], None]) -> ClusterMetadata:
        """Create the cluster's metadata if it is new, and register this broker in it.

        ``check_cluster_id`` may raise to refuse a data dir of another cluster.
        """

        def register(metadata: ClusterMetadata) -> ClusterMetadata:
            if not metadata.cluster_id:
                metadata.cluster_id = new_cluster_id()
            check_cluster_id(metadata.cluster_id)
            metadata.brokers[info.node_id] = info
            return metadata

        with self.store.locked():
            metadata = self.store.load() or ClusterMetadata(cluster_id="")
            register(metadata)
            self.store.save(metadata)
            self._signature = self.store.signature()
        self.metadata = metadata
        return metadata

    def claim_controller(self) -> None:
        """Record in the metadata that this broker is now the controller."""

        def claim(metadata: ClusterMetadata) -> None:
            if metadata.controller_id == self.node_id:
                raise _Unchanged
            metadata.controller_id = self.node_id

        self._transact(claim)

    # ================================================================== topics

    def live_brokers(self, metadata: ClusterMetadata | None = None) -> list[int]:
        """Ids of brokers that can take replicas: registered and live now, sorted."""
        return sorted(self._probe((metadata or self.metadata).brokers))

    def _assign(
        self, metadata: ClusterMetadata, count: int, replication_factor: int, first: int
    ) -> list[PartitionState]:
        brokers = self.live_brokers(metadata)
        if replication_factor > len(brokers):
            raise ControllerError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication_factor} is larger than the "
                f"{len(brokers)} available broker(s)",
            )
        start = random.randrange(len(brokers))
        result = []
        for p in range(first, first + count):
            replicas = [brokers[(start + p + i) % len(brokers)] for i in range(replication_factor)]
            result.append(PartitionState(replicas=replicas, leader=replicas[0], isr=list(replicas)))
        return result

    def _manual_assignment(
        self, metadata: ClusterMetadata, assignment: Sequence[Sequence[int]]
    ) -> list[PartitionState]:
        registered = set(metadata.brokers)
        live = self._probe(registered)
        sizes = {len(replicas) for replicas in assignment}
        result = []
        for replicas in assignment:
            if not replicas or len(set(replicas)) != len(replicas) or len(sizes) != 1:
                raise ControllerError(
                    ErrorCode.invalid_replica_assignment,
                    "each partition needs the same number of distinct replicas",
                )
            unknown = [r for r in replicas if r not in registered]
            if unknown:
                raise ControllerError(
                    ErrorCode.invalid_replica_assignment,
                    f"unknown broker id(s) {unknown} in assignment"
                )
            # the first live replica leads; the ISR is the live ones (all of them, usually)
            isr = [r for r in replicas if r in live] or list(replicas)
            leader = isr[0] if isr[0] in live else -1
            result.append(PartitionState(replicas=list(replicas), leader=leader, isr=isr))
        return result

    def _check_broker_partitions(self, metadata: ClusterMetadata,
                                 added: Sequence[PartitionState]) -> None:
        """Refuse partitions that would take a broker past max.broker.partitions: one
        CreateTopics of many thousands must not leave a broker reopening files on every write."""
        limit = self.settings.get_int("max.broker.partitions")
        if limit < 0:
            limit = partitions_allowed(open_files_limit())
        hosted: dict[int, int] = {}
        for topic in metadata.topics.values():
            for partition in topic.partitions:
                for replica in partition.replicas:
                    hosted[replica] = hosted.get(replica, 0) + 1
        for partition in added:
            for replica in partition.replicas:
                hosted[replica] = hosted.get(replica, 0) + 1
        touched = sorted({replica for partition in added for replica in partition.replicas})
        over = [(hosted[broker], broker) for broker in touched if hosted[broker] > limit]
        if over:
            count, broker = max(over)
            raise ControllerError(
                ErrorCode.policy_violation,
                f"broker {broker} would host {count} partitions, over max.broker.partitions "
                f"{limit}",
            )

    def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, str | None],
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
        internal: bool = False,
    ) -> TopicState:
        """Create a topic (-1 counts mean the broker defaults)."""
        try:
            check_topic_name(name)
        except InvalidTopicName as error:
            raise ControllerError(ErrorCode.invalid_topic_exception, str(error)) from None
        if name in RESERVED_TOPICS and not internal:
            raise ControllerError(ErrorCode.invalid_request, f"{name!r} is reserved for the broker")
        try:
            overrides = validate_topic_configs(configs)
        except InvalidConfig as error:
            raise ControllerError(ErrorCode.invalid_config, str(error)) from None

        def create(metadata: ClusterMetadata) -> TopicState:
            if name in metadata.topics:
                raise ControllerError(ErrorCode.topic_already_exists,
                                      f"topic {name!r} already exists")
            other = None if internal else colliding_topic(name, [*metadata.topics,
                                                                 *RESERVED_TOPICS])
            if other is not None:
                raise ControllerError(ErrorCode.invalid_topic_exception,
                                      f"topic {name!r} collides with existing topic {other!r} "
                                      "('.' and '_' are one in metric names)")
            count, factor = num_partitions, replication_factor
            if assignment:
                if count != -1 or factor != -1:
                    raise ControllerError(
                        ErrorCode.invalid_request,
                        "give either a replica assignment or partition count and "
                        "replication factor",
                    )
                partitions = self._manual_assignment(metadata, assignment)
            else:
                if count == -1:
                    count = self.settings.get_int("num.partitions")
                if factor == -1:
                    factor = self.settings.get_int("default.replication.factor")
                if not 1 <= count <= MAX_PARTITIONS:
                    raise ControllerError(
                        ErrorCode.invalid_partitions,
                        f"number of partitions must be 1..{MAX_PARTITIONS}"
                    )
                if factor < 1:
                    raise ControllerError(
                        ErrorCode.invalid_replication_factor,
                        "replication factor must be at least 1"
                    )
                partitions = self._assign(metadata, count, factor, 0)
            min_isr = int(self.settings.topic_value(overrides, "min.insync.replicas"))
            if "min.insync.replicas" in overrides and min_isr > len(partitions[0].replicas):
                raise ControllerError(
                    ErrorCode.invalid_config,
                    f"min.insync.replicas {min_isr} is larger than the replication factor "
                    f"{len(partitions[0].replicas)}",
                )
            self._check_broker_partitions(metadata, partitions)
            topic = TopicState(name, uuid.uuid4(), partitions, overrides, internal)
            if not validate_only:
                metadata.topics[name] = topic
            return topic

        return self._transact(create, save=not validate_only)

    def delete_topic(self, name: str) -> TopicState:
        """Remove a topic from the metadata; returns what was removed."""
        if not self.settings.get_bool("delete.topic.enable"):
            raise ControllerError(ErrorCode.topic_deletion_disabled, "delete.topic.enable is false")

        def delete(metadata: ClusterMetadata) -> TopicState:
            topic = metadata.topics.get(name)
            if topic is None:
                raise ControllerError(ErrorCode.unknown_topic_or_partition,
                                      f"topic {name!r} does not exist")
            if topic.internal:
                raise ControllerError(ErrorCode.invalid_topic_exception,
                                      f"{name!r} is an internal topic")
            del metadata.topics[name]
            return topic

        return self._transact(delete)

    def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicState:
        """Grow a topic to ``count`` partitions."""

        def grow(metadata: ClusterMetadata) -> TopicState:
            topic = metadata.topics.get(name)
            if topic is None:
                raise ControllerError(ErrorCode.unknown_topic_or_partition,
                                      f"topic {name!r} does not exist")
            current = len(topic.partitions)
            if count <= current:
                raise ControllerError(
                    ErrorCode.invalid_partitions,
                    f"topic {name!r} has {current} partitions; the new count must be larger",
                )
            if count > MAX_PARTITIONS:
                raise ControllerError(ErrorCode.invalid_partitions,
                                      f"at most {MAX_PARTITIONS} partitions")
            if assignment:
                if len(assignment) != count - current:
                    raise ControllerError(
                        ErrorCode.invalid_replica_assignment,
                        f"assignment lists {len(assignment)} partitions, "
                        f"{count - current} are added",
                    )
                added = self._manual_assignment(metadata, assignment)
            else:
                added = self._assign(
                    metadata, count - current, len(topic.partitions[0].replicas), current
                )
            self._check_broker_partitions(metadata, added)
            if not validate_only:
                topic.partitions.extend(added)
            return topic

        return self._transact(grow, save=not validate_only)

    def set_topic_configs(
        self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Replace all config overrides of a topic."""
        try:
            overrides = validate_topic_configs(configs)
        except InvalidConfig as error:
            raise ControllerError(ErrorCode.invalid_config, str(error)) from None

        def alter(metadata: ClusterMetadata) -> None:
            topic = metadata.topics.get(name)
            if topic is None:
                raise ControllerError(ErrorCode.unknown_topic_or_partition,
                                      f"topic {name!r} does not exist")
            if not validate_only:
                topic.configs = overrides

        self._transact(alter, save=not validate_only)

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before, by any broker, even across restarts."""
        if not self._producer_ids:

            def take_block(metadata: ClusterMetadata) -> int:
                start = metadata.next_producer_id
                metadata.next_producer_id = start + PRODUCER_ID_BLOCK
                return start

            start = self._transact(take_block)
            self._producer_ids = range(start, start + PRODUCER_ID_BLOCK)
        producer_id = self._producer_ids[0]
        self._producer_ids = self._producer_ids[1:]
        return producer_id

    # ================================================================== replication

    def alter_isr(
        self, topic: str, index: int, leader_epoch: int, partition_epoch: int, isr: list[int]
    ) -> PartitionState:
        """A partition leader (this broker) changes the ISR: Kafka's AlterPartition.

        Refused (ControllerError) when this broker no longer leads at ``leader_epoch``,
        when the partition changed since ``partition_epoch``, or when a replica added to
        the ISR is not live.
        """

        def alter(metadata: ClusterMetadata) -> PartitionState:
            state = metadata.topics.get(topic)
            if state is None or not 0 <= index < len(state.partitions):
                raise ControllerError(ErrorCode.unknown_topic_or_partition,
                                      f"{topic}-{index} is gone")
            p = state.partitions[index]
            if p.leader != self.node_id or p.leader_epoch != leader_epoch:
                raise ControllerError(ErrorCode.fenced_leader_epoch,
                                      f"{topic}-{index} is led by {p.leader} at epoch "
                                      f"{p.leader_epoch}")
            if p.partition_epoch != partition_epoch:
                raise ControllerError(ErrorCode.invalid_update_version,
                                      f"{topic}-{index} is at partition epoch {p.partition_epoch}")
            if self.node_id not in isr or any(r not in p.replicas for r in isr):
                raise ControllerError(ErrorCode.invalid_request,
                                      f"ISR {isr} of {topic}-{index} is invalid")
            added = [r for r in isr if r not in p.isr and r not in self._probe([r])]
            if added:
                raise ControllerError(ErrorCode.ineligible_replica,
                                      f"broker(s) {added} are not live")
            p.isr = list(isr)
            p.partition_epoch += 1
            if reassignment.complete(p):  # the moved-to replicas are all in sync now
                log.info("%s-%d: reassignment complete, replicas %s, leader %d", topic, index,
                         p.replicas, p.leader)
            return p

        return self._transact(alter)

    def reassign(self, moves: Sequence[tuple[str, int, Sequence[int] | None]],
                 ) -> list[reassignment.Outcome]:
        """AlterPartitionReassignments: start (target) or cancel (None) moves, in one
        transaction; an outcome per move."""
        def change(metadata: ClusterMetadata) -> list[reassignment.Outcome]:
            outcomes = [reassignment.reassign(metadata, topic, index, target)
                        for topic, index, target in moves]
            if all(o.error_code for o in outcomes):
                raise _Unchanged(outcomes)
            return outcomes

        return self._transact(change)

    def elect(self, partitions: Sequence[tuple[str, int]], election: int, live: set[int],
              ) -> list[reassignment.Outcome]:
        """ElectLeaders for the given partitions, in one transaction."""
        def change(metadata: ClusterMetadata) -> list[reassignment.Outcome]:
            outcomes = [reassignment.elect(metadata, topic, index, election, live)
                        for topic, index in partitions]
            if all(o.error_code for o in outcomes):
                raise _Unchanged(outcomes)
            return outcomes

        return self._transact(change)

    def elect_leaders(self, live: set[int]) -> list[str]:
        """As the controller: move leadership off dead brokers, drop them from ISRs and
        elect leaders for offline partitions; returns what changed, one line each."""

        def elect(metadata: ClusterMetadata) -> list[str]:
            changes = elect_leaders(metadata, live, self.settings)
            if not changes:
                raise _Unchanged([])
            return changes

        return self._transact(elect)

    def controlled_shutdown(self, live: set[int],
                            only: Collection[tuple[str, int]] | None = None) -> list[str]:
        """On a clean stop: hand this broker's leaderships to other in-sync replicas and
        leave the ISRs of the partitions it follows; returns what changed. With ``only``,
        for those partitions alone (the ones whose log went offline here)."""

        def hand_over(metadata: ClusterMetadata) -> list[str]:
            changes = controlled_shutdown(metadata, self.node_id, live, only)
            if not changes:
                raise _Unchanged([])
            return changes

        return self._transact(hand_over)


def _unclean_allowed(settings: Settings, topic: TopicState) -> bool:
    return settings.topic_value(topic.configs, "unclean.leader.election.enable") == "true"


def elect_leaders(
    metadata: ClusterMetadata, live: set[int], settings: Settings, *, dry_run: bool = False
) -> list[str]:
    """Apply the controller's rules to ``metadata`` for the ``live`` brokers, in place
    (unless ``dry_run``); returns what changes, one line per partition.

    - A dead broker leaves every ISR, unless it is the last member (Kafka keeps the last
      one, so that the partition can come back with it).
    - A partition whose leader is dead (or that has none) gets the first replica, in
      replica order, that is in the ISR and live; with none, it goes offline (leader -1),
      unless ``unclean.leader.election.enable`` lets any live replica lead (the ISR then
      restarts with it alone).
    - A leader change bumps the leader epoch; every change bumps the partition epoch.
    """
    changes: list[str] = []
    for topic in metadata.topics.values():
        for index, p in enumerate(topic.partitions):
            where = f"{topic.name}-{index}"
            live_isr = [r for r in p.isr if r in live]
            leader = p.leader
            if leader in live:
                if live_isr == p.isr:
                    continue
                isr = live_isr
                changes.append(f"{where}: ISR {p.isr} -> {isr} (dead replicas leave)")
            else:
                candidates = [r for r in p.replicas if r in live_isr]
                if candidates:
                    leader, isr = candidates[0], live_isr
                elif _unclean_allowed(settings, topic) and any(r in live for r in p.replicas):
                    leader = next(r for r in p.replicas if r in live)
                    isr = [leader]
                    log.warning("%s: unclean election of %d (no live in-sync replica)",
                                where, leader)
                elif p.leader != -1:
                    leader, isr = -1, p.isr
                else:
                    continue
                changes.append(
                    f"{where}: leader {p.leader} -> {leader} at epoch {p.leader_epoch + 1}, "
                    f"ISR {p.isr} -> {isr}"
                )
            if dry_run:
                continue
            if leader != p.leader:
                p.leader = leader
                p.leader_epoch += 1
            p.isr = list(isr)
            p.partition_epoch += 1
    return changes


def controlled_shutdown(metadata: ClusterMetadata, node_id: int, live: set[int],
                        only: Collection[tuple[str, int]] | None = None) -> list[str]:
    """Move ``node_id``'s leaderships to its live in-sync peers and take it out of the
    ISRs where a live leader stays, in place; returns what changed. With ``only``, for
    those partitions alone."""
    others = live - {node_id}
    why = "controlled shutdown" if only is None else "log offline"
    changes: list[str] = []
    for topic in metadata.topics.values():
        for index, p in enumerate(topic.partitions):
            if node_id not in p.replicas or (only is not None and (topic.name, index) not in only):
                continue
            where = f"{topic.name}-{index}"
            if p.leader == node_id:
                candidates = [r for r in p.replicas if r in p.isr and r in others]
                if not candidates:
                    continue
                p.leader = candidates[0]
                p.isr = [r for r in p.isr if r != node_id]
                p.leader_epoch += 1
                p.partition_epoch += 1
                changes.append(f"{where}: leader {node_id} -> {p.leader} ({why})")
            elif node_id in p.isr and p.leader in others and len(p.isr) > 1:
                p.isr = [r for r in p.isr if r != node_id]
                p.partition_epoch += 1
                changes.append(f"{where}: {node_id} leaves the ISR ({why})")
    return changes
