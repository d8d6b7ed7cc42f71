"""The controller: the one writer of cluster metadata.

Topic creation and deletion, partition assignment, config changes and producer-id
blocks all pass through here and are persisted before they take effect.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence

from kcli.broker.cluster.metadata import (
    ClusterMetadata,
    InvalidTopicName,
    MetadataStore,
    PartitionState,
    TopicState,
    check_topic_name,
)
from kcli.broker.configs import InvalidConfig, Settings, validate_topic_configs

TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_TOPIC_EXCEPTION = 17
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_DELETION_DISABLED = 73
INVALID_REQUEST = 42
MAX_PARTITIONS = 100_000
RESERVED_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
PRODUCER_ID_BLOCK = 1000


class ControllerError(Exception):
    """A metadata change was refused; carries the Kafka error code and a message."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class Controller:
    """Validates and applies metadata changes, persisting each one."""

    def __init__(self, store: MetadataStore, metadata: ClusterMetadata, settings: Settings) -> None:
        self.store = store
        self.metadata = metadata
        self.settings = settings
        self._producer_ids = range(0)

    def live_brokers(self) -> list[int]:
        """Ids of brokers that can take replicas, sorted."""
        return sorted(self.metadata.brokers)

    def _assign(self, count: int, replication_factor: int, first: int) -> list[PartitionState]:
        brokers = self.live_brokers()
        if replication_factor > len(brokers):
            raise ControllerError(
                INVALID_REPLICATION_FACTOR,
                f"replication factor {replication_factor} is larger than the "
                f"{len(brokers)} available broker(s)",
            )
        start = random.randrange(len(brokers))
        result = []
        for p in range(first, first + count):
            replicas = [brokers[(start + p + i) % len(brokers)] for i in range(replication_factor)]
            result.append(PartitionState(replicas=replicas, leader=replicas[0], isr=list(replicas)))
        return result

    def _manual_assignment(self, assignment: Sequence[Sequence[int]]) -> list[PartitionState]:
        live = set(self.metadata.brokers)
        sizes = {len(replicas) for replicas in assignment}
        result = []
        for replicas in assignment:
            if not replicas or len(set(replicas)) != len(replicas) or len(sizes) != 1:
                raise ControllerError(
                    INVALID_REPLICA_ASSIGNMENT,
                    "each partition needs the same number of distinct replicas",
                )
            unknown = [r for r in replicas if r not in live]
            if unknown:
                raise ControllerError(
                    INVALID_REPLICA_ASSIGNMENT, f"unknown broker id(s) {unknown} in assignment"
                )
            result.append(PartitionState(replicas=list(replicas), leader=replicas[0],
                                         isr=list(replicas)))
        return result

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
            raise ControllerError(INVALID_TOPIC_EXCEPTION, str(error)) from None
        if name in self.metadata.topics:
            raise ControllerError(TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if name in RESERVED_TOPICS and not internal:
            raise ControllerError(INVALID_REQUEST, f"{name!r} is reserved for the broker")
        try:
            overrides = validate_topic_configs(configs)
        except InvalidConfig as error:
            raise ControllerError(INVALID_CONFIG, str(error)) from None
        if assignment:
            if num_partitions != -1 or replication_factor != -1:
                raise ControllerError(
                    INVALID_REQUEST,
                    "give either a replica assignment or partition count and replication factor",
                )
            partitions = self._manual_assignment(assignment)
        else:
            if num_partitions == -1:
                num_partitions = self.settings.get_int("num.partitions")
            if replication_factor == -1:
                replication_factor = self.settings.get_int("default.replication.factor")
            if not 1 <= num_partitions <= MAX_PARTITIONS:
                raise ControllerError(
                    INVALID_PARTITIONS, f"number of partitions must be 1..{MAX_PARTITIONS}"
                )
            if replication_factor < 1:
                raise ControllerError(
                    INVALID_REPLICATION_FACTOR, "replication factor must be at least 1"
                )
            partitions = self._assign(num_partitions, replication_factor, 0)
        min_isr = int(self.settings.topic_value(overrides, "min.insync.replicas"))
        if "min.insync.replicas" in overrides and min_isr > len(partitions[0].replicas):
            raise ControllerError(
                INVALID_CONFIG,
                f"min.insync.replicas {min_isr} is larger than the replication factor "
                f"{len(partitions[0].replicas)}",
            )
        topic = TopicState(name, uuid.uuid4(), partitions, overrides, internal)
        if not validate_only:
            self.metadata.topics[name] = topic
            self.store.save(self.metadata)
        return topic

    def delete_topic(self, name: str) -> TopicState:
        """Remove a topic from the metadata; returns what was removed."""
        if not self.settings.get_bool("delete.topic.enable"):
            raise ControllerError(TOPIC_DELETION_DISABLED, "delete.topic.enable is false")
        topic = self.metadata.topics.get(name)
        if topic is None:
            raise ControllerError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        if topic.internal:
            raise ControllerError(INVALID_TOPIC_EXCEPTION, f"{name!r} is an internal topic")
        del self.metadata.topics[name]
        self.store.save(self.metadata)
        return topic

    def create_partitions(
        self,
        name: str,
        count: int,
        assignment: Sequence[Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicState:
        """Grow a topic to ``count`` partitions."""
        topic = self.metadata.topics.get(name)
        if topic is None:
            raise ControllerError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        current = len(topic.partitions)
        if count <= current:
            raise ControllerError(
                INVALID_PARTITIONS,
                f"topic {name!r} has {current} partitions; the new count must be larger",
            )
        if count > MAX_PARTITIONS:
            raise ControllerError(INVALID_PARTITIONS, f"at most {MAX_PARTITIONS} partitions")
        if assignment:
            if len(assignment) != count - current:
                raise ControllerError(
                    INVALID_REPLICA_ASSIGNMENT,
                    f"assignment lists {len(assignment)} partitions, {count - current} are added",
                )
            added = self._manual_assignment(assignment)
        else:
            added = self._assign(count - current, len(topic.partitions[0].replicas), current)
        if not validate_only:
            topic.partitions.extend(added)
            self.store.save(self.metadata)
        return topic

    def set_topic_configs(
        self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False
    ) -> None:
        """Replace all config overrides of a topic."""
        topic = self.metadata.topics.get(name)
        if topic is None:
            raise ControllerError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        try:
            overrides = validate_topic_configs(configs)
        except InvalidConfig as error:
            raise ControllerError(INVALID_CONFIG, str(error)) from None
        if not validate_only:
            topic.configs = overrides
            self.store.save(self.metadata)

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before, even across restarts."""
        if not self._producer_ids:
            start = self.metadata.next_producer_id
            self.metadata.next_producer_id = start + PRODUCER_ID_BLOCK
            self.store.save(self.metadata)
            self._producer_ids = range(start, start + PRODUCER_ID_BLOCK)
        producer_id = self._producer_ids[0]
        self._producer_ids = self._producer_ids[1:]
        return producer_id
