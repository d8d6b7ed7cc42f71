"""Moving partitions between brokers and electing their leaders, on any Kafka cluster.

Leader elections go through confluent-kafka (``AdminClient.elect_leaders``). librdkafka
has no AlterPartitionReassignments or ListPartitionReassignments, so moves go through
kafka-python's admin client, which has both and speaks the same SASL and TLS: the
connection settings of the profile and ``-X`` are translated for it
(:func:`kafka_python_settings`); a setting it cannot honour is refused, never dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from kcli.client.cluster import Cluster
from kcli.errors import BadInput, KcliError, NotFound, OperationFailed, Unreachable

TP = tuple[str, int]

# librdkafka property -> kafka-python KafkaAdminClient argument
_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers",
    "client.id": "client_id",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
}
_CONNECTION_PREFIXES = ("security.", "sasl.", "ssl.")
_HOSTNAME_CHECK = "ssl.endpoint.identification.algorithm"


def kafka_python_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The connection settings of a librdkafka configuration, for kafka-python. Client
    tuning is left out; a security setting with no counterpart is BadInput."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        target = _SETTINGS.get(key)
        if target is not None:
            out[target] = value
        elif key.startswith(_CONNECTION_PREFIXES) and key != _HOSTNAME_CHECK:
            raise BadInput(f"{key} is not supported for partition moves (kafka-python has "
                           "no such setting)")
    if config.get(_HOSTNAME_CHECK, "https") == "none":
        out["ssl_check_hostname"] = False
    return out


@dataclass(frozen=True)
class Move:
    """One partition's planned or running move."""

    topic: str
    partition: int
    current: tuple[int, ...]
    target: tuple[int, ...]
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()
    in_sync: tuple[int, ...] = ()

    @property
    def progress(self) -> float:
        """Share of the target replicas in sync (1.0: done)."""
        return sum(1 for r in self.target if r in self.in_sync) / max(1, len(self.target))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["progress"] = round(self.progress, 3)
        return data


def _layout(cluster: Cluster, topic: str) -> tuple[dict[int, Any], set[int]]:
    metadata = cluster.metadata()
    found = metadata.topics.get(topic)
    if found is None or (found.error is not None and found.error.code() != 0):
        raise NotFound(f"topic {topic!r} does not exist")
    return dict(found.partitions), set(metadata.brokers)


def plan_moves(cluster: Cluster, topic: str, partitions: Sequence[int] | None,
               to: Sequence[int] | None, replication: int | None) -> list[Move]:
    """Targets for the partitions of ``topic`` (all when None): exactly ``to``, or the
    current replicas cut or grown to ``replication`` (grown with the brokers that hold
    the fewest replicas of the topic). Partitions already there are left out."""
    layout, brokers = _layout(cluster, topic)
    chosen = list(partitions) if partitions else sorted(layout)
    missing = [p for p in chosen if p not in layout]
    if missing:
        raise NotFound(f"topic {topic!r} has no partition {missing[0]} (it has {len(layout)})")
    if to is not None:
        unknown = [b for b in to if b not in brokers]
        if unknown or len(set(to)) != len(to) or not to:
            raise BadInput(f"--to {','.join(map(str, to))}: give distinct ids of live "
                           f"brokers ({', '.join(map(str, sorted(brokers)))})")
    if replication is not None and not 1 <= replication <= len(brokers):
        raise BadInput(f"--replication-factor {replication}: the cluster has "
                       f"{len(brokers)} live broker(s)")
    load = Counter(r for p in layout.values() for r in p.replicas)
    moves = []
    for index in chosen:
        current = tuple(layout[index].replicas)
        if to is not None:
            target = tuple(to)
        else:
            assert replication is not None
            grown = list(current[:replication])
            for broker in sorted(brokers - set(grown), key=lambda b: (load[b], b)):
                if len(grown) >= replication:
                    break
                grown.append(broker)
                load[broker] += 1
            target = tuple(grown)
        if target != current:
            moves.append(Move(topic, index, current, target))
    return moves


@contextmanager
def _admin(cluster: Cluster) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as KafkaPythonError

    settings = kafka_python_settings(cluster.config)
    try:
        admin = KafkaAdminClient(request_timeout_ms=int(cluster.timeout * 1000), **settings)
    except KafkaPythonError as error:
        raise Unreachable(f"cannot reach {cluster.bootstrap}: {error}") from None
    try:
        yield admin
    except KafkaPythonError as error:
        raise OperationFailed(f"partition reassignment: {error}") from None
    finally:
        admin.close()


def start_moves(cluster: Cluster, moves: Sequence[Move | tuple[str, int, None]],
                ) -> dict[TP, KcliError | None]:
    """AlterPartitionReassignments: a target per move (None in a tuple cancels);
    the error of each partition the cluster refused."""
    from kafka import TopicPartition

    wanted = {TopicPartition(m[0], m[1]) if isinstance(m, tuple)
              else TopicPartition(m.topic, m.partition):
              None if isinstance(m, tuple) else list(m.target) for m in moves}
    with _admin(cluster) as admin:
        answers = admin.alter_partition_reassignments(wanted)
    out: dict[TP, KcliError | None] = {}
    for tp in wanted:
        error = answers.get(tp)
        out[(tp.topic, tp.partition)] = None if error is None else _partition_error(error, tp)
    return out


def _partition_error(error: Any, tp: Any) -> KcliError:
    name = getattr(error, "__name__", str(error))
    text = f"{tp.topic}[{tp.partition}]: {getattr(error, 'description', '') or name}"
    if "NoReassignmentInProgress" in name:
        return NotFound(text)
    if "InvalidReplicaAssignment" in name or "UnknownTopic" in name:
        return BadInput(text)
    return OperationFailed(text)


def moves_in_progress(cluster: Cluster, topic: str | None = None) -> list[Move]:
    """ListPartitionReassignments, with which target replicas are in sync already."""
    with _admin(cluster) as admin:
        listed = admin.list_partition_reassignments()
    metadata = cluster.metadata() if listed else None
    moves = []
    for tp, entry in sorted(listed.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
        if topic is not None and tp.topic != topic:
            continue
        removing = tuple(entry["removing_replicas"])
        replicas = tuple(entry["replicas"])
        isr: tuple[int, ...] = ()
        assert metadata is not None
        meta = metadata.topics.get(tp.topic)
        if meta is not None and tp.partition in meta.partitions:
            isr = tuple(meta.partitions[tp.partition].isrs)
        moves.append(Move(tp.topic, tp.partition,
                          tuple(r for r in replicas if r not in entry["adding_replicas"]),
                          tuple(r for r in replicas if r not in removing),
                          tuple(entry["adding_replicas"]), removing, isr))
    return moves


@dataclass(frozen=True)
class Election:
    """One partition's leader: now, and whom an election would choose."""

    topic: str
    partition: int
    leader: int
    preferred: int
    result: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def plan_elections(cluster: Cluster, topic: str | None, partitions: Sequence[int] | None,
                   unclean: bool) -> list[Election]:
    """The partitions an election would change, from the metadata."""
    metadata = cluster.metadata()
    if topic is not None and topic not in metadata.topics:
        raise NotFound(f"topic {topic!r} does not exist")
    out = []
    for name in sorted(metadata.topics if topic is None else [topic]):
        for index, p in sorted(metadata.topics[name].partitions.items()):
            if partitions and index not in partitions:
                continue
            preferred = p.replicas[0] if p.replicas else -1
            if unclean:
                if p.leader < 0:
                    out.append(Election(name, index, p.leader, preferred, "unclean election"))
            elif p.leader != preferred:
                ready = preferred in p.isrs and preferred in metadata.brokers
                out.append(Election(name, index, p.leader, preferred,
                                    "to the preferred replica" if ready
                                    else "preferred replica not in sync"))
    return out


def elect(cluster: Cluster, elections: Sequence[Election], unclean: bool,
          ) -> dict[TP, KcliError | None]:
    """ElectLeaders for the planned partitions; the error of each refused one (an
    election that turned out not to be needed is not an error)."""
    from confluent_kafka import ElectionType, TopicPartition

    if not elections:
        return {}
    kind = ElectionType.UNCLEAN if unclean else ElectionType.PREFERRED
    # no request_timeout: confluent-kafka 2.16's elect_leaders fails on that keyword
    # (SystemError from its argument parser); Cluster.wait bounds the wait instead
    future = cluster.admin.elect_leaders(
        kind, [TopicPartition(e.topic, e.partition) for e in elections])
    answers = cluster.wait(future, "elect leaders")
    out: dict[TP, KcliError | None] = {}
    for tp, error in answers.items():
        failed = error is not None and error.code() not in (0, 84)  # 84: not needed
        out[(tp.topic, tp.partition)] = (
            OperationFailed(f"{tp.topic}[{tp.partition}]: {error.str()}") if failed else None)
    return out
