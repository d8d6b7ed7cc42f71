"""Cluster metadata: brokers, topics, partition assignments and topic configs.

The metadata lives in one JSON file (``metadata.json`` in the cluster directory),
written atomically (temp file, fsync, rename), so an engineer can read it with ``cat``
or ``jq`` and a crash never leaves half of it. Every change bumps ``epoch``.

Several broker processes share the file. A change is a transaction: take
``flock(metadata.lock)``, reload ``metadata.json``, apply the change, write it back
(epoch + 1), unlock (``MetadataStore.locked``); the controller module runs them.
Readers never lock: the rename makes every read see one whole version, and
``MetadataStore.signature`` tells cheaply whether the file changed since the last read.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.durable import PRIVATE_FILE, make_private_dir, write_atomically

FORMAT_VERSION = 1
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME = 249


class InvalidTopicName(ValueError):
    """The topic name breaks Kafka's naming rules."""


def check_topic_name(name: str) -> None:
    """Raise InvalidTopicName unless ``name`` is a legal Kafka topic name (Kafka's
    ``Topic.validate``): 1 to 249 ASCII letters, digits, '.', '_' and '-', not '.' or '..'.
    """
    if not name:
        raise InvalidTopicName("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicName(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicName(f"topic name is longer than {MAX_TOPIC_NAME} characters")
    if not _LEGAL_TOPIC.fullmatch(name):  # not match(^...$): `$` matches before a final \n
        raise InvalidTopicName(
            f"topic name {name!r} may contain only ASCII letters, digits, '.', '_' and '-'"
        )


def colliding_topic(name: str, existing: Iterable[str]) -> str | None:
    """An existing topic other than ``name`` that differs from it only by '.' against
    '_' (Kafka's ``Topic.hasCollision``: their metric names would be one), or None."""
    if "." not in name and "_" not in name:
        return None
    unified = name.replace(".", "_")
    return next((other for other in existing
                 if other != name and other.replace(".", "_") == unified), None)


def new_cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, url-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class BrokerInfo:
    """A broker's advertised endpoints: ``host``/``port`` of its inter-broker listener,
    and every listener's in ``endpoints`` (name -> (host, port))."""

    node_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: dict[str, tuple[str, int]] = field(default_factory=dict)

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """Where clients of ``listener`` reach this broker; None when it has no such
        listener. A broker that lists no endpoints has one listener, its host/port."""
        if not self.endpoints:
            return self.host, self.port
        return self.endpoints.get(listener)


@dataclass
class PartitionState:
    """Assignment and leadership of one partition."""

    replicas: list[int]
    leader: int
    leader_epoch: int = 0
    isr: list[int] = field(default_factory=list)
    partition_epoch: int = 0
    adding: list[int] = field(default_factory=list)
    """Replicas a reassignment in progress adds (see ``reassignment``)."""
    removing: list[int] = field(default_factory=list)
    """Replicas it removes once the added ones are in sync."""


@dataclass
class TopicState:
    """A topic: its stable id, partitions and config overrides."""

    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionState]
    configs: dict[str, str] = field(default_factory=dict)
    internal: bool = False


@dataclass
class ClusterMetadata:
    """Everything the controller owns, as one document."""

    cluster_id: str
    epoch: int = 0
    controller_id: int = -1
    brokers: dict[int, BrokerInfo] = field(default_factory=dict)
    topics: dict[str, TopicState] = field(default_factory=dict)
    next_producer_id: int = 0
    scram: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """user -> mechanism -> stored SCRAM credential (salt, keys, iterations; base64),
    never a password (kcli.broker.security.scram)."""
    acls: list[dict[str, str]] = field(default_factory=list)
    """Every ACL (kcli.broker.security.acls.Acl.to_json), in creation order."""

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicState | None:
        """Look a topic up by its id (Fetch v13+, DeleteTopics v6)."""
        for topic in self.topics.values():
            if topic.topic_id == topic_id:
                return topic
        return None

    def to_json(self) -> dict[str, Any]:
        """The document as written to disk."""
        return {
            "format": FORMAT_VERSION,
            "cluster_id": self.cluster_id,
            "epoch": self.epoch,
            "controller_id": self.controller_id,
            "next_producer_id": self.next_producer_id,
            "brokers": {
                str(b.node_id): {"host": b.host, "port": b.port, "rack": b.rack,
                                 **({"endpoints": {name: [h, p] for name, (h, p)
                                                   in sorted(b.endpoints.items())}}
                                    if b.endpoints else {})}
                for b in sorted(self.brokers.values(), key=lambda b: b.node_id)
            },
            **({"scram": self.scram} if self.scram else {}),
            **({"acls": self.acls} if self.acls else {}),
            "topics": {
                t.name: {
                    "id": str(t.topic_id),
                    "internal": t.internal,
                    "configs": dict(sorted(t.configs.items())),
                    "partitions": [
                        {
                            "replicas": p.replicas,
                            "leader": p.leader,
                            "leader_epoch": p.leader_epoch,
                            "isr": p.isr,
                            "partition_epoch": p.partition_epoch,
                            **({"adding": p.adding, "removing": p.removing}
                               if p.adding or p.removing else {}),
                        }
                        for p in t.partitions
                    ],
                }
                for t in sorted(self.topics.values(), key=lambda t: t.name)
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClusterMetadata:
        """Parse the on-disk document; raises ValueError when it is not one."""
        if doc.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported metadata format {doc.get('format')!r}")
        return cls(
            cluster_id=str(doc["cluster_id"]),
            epoch=int(doc["epoch"]),
            controller_id=int(doc.get("controller_id", -1)),
            next_producer_id=int(doc.get("next_producer_id", 0)),
            brokers={
                int(node): BrokerInfo(int(node), str(b["host"]), int(b["port"]), b.get("rack"),
                                      {str(name): (str(h), int(p)) for name, (h, p)
                                       in b.get("endpoints", {}).items()})
                for node, b in doc.get("brokers", {}).items()
            },
            scram={str(user): {str(m): dict(c) for m, c in mechanisms.items()}
                   for user, mechanisms in doc.get("scram", {}).items()},
            acls=[{str(k): str(v) for k, v in acl.items()} for acl in doc.get("acls", [])],
            topics={
                name: TopicState(
                    name=name,
                    topic_id=uuid.UUID(t["id"]),
                    internal=bool(t.get("internal", False)),
                    configs={str(k): str(v) for k, v in t.get("configs", {}).items()},
                    partitions=[
                        PartitionState(
                            replicas=[int(r) for r in p["replicas"]],
                            leader=int(p["leader"]),
                            leader_epoch=int(p.get("leader_epoch", 0)),
                            isr=[int(r) for r in p.get("isr", p["replicas"])],
                            partition_epoch=int(p.get("partition_epoch", 0)),
                            adding=[int(r) for r in p.get("adding", ())],
                            removing=[int(r) for r in p.get("removing", ())],
                        )
                        for p in t["partitions"]
                    ],
                )
                for name, t in doc.get("topics", {}).items()
            },
        )


class MetadataBusy(Exception):
    """The metadata lock stayed taken longer than a transaction may wait."""


Signature = tuple[int, int, int]
"""(inode, mtime_ns, size) of ``metadata.json``: changes whenever the file is replaced."""


class MetadataStore:
    """Loads and saves the cluster metadata document; locks it for transactions."""

    FILE_NAME = "metadata.json"
    LOCK_NAME = "metadata.lock"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.FILE_NAME
        self.lock_path = directory / self.LOCK_NAME

    def signature(self) -> Signature | None:
        """The file's identity now (a stat call), None when there is no file yet."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def load(self) -> ClusterMetadata | None:
        """The stored metadata, or None when the cluster is new."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return ClusterMetadata.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.path} is not a kcli metadata file: {error}") from None

    def save(self, metadata: ClusterMetadata) -> None:
        """Write the document durably; bumps its epoch first."""
        metadata.epoch += 1
        data = json.dumps(metadata.to_json(), indent=2).encode() + b"\n"
        make_private_dir(self.path.parent)
        write_atomically(self.path, data)

    @contextlib.contextmanager
    def locked(self, timeout: float = 5.0) -> Iterator[None]:
        """Hold ``flock(metadata.lock)`` (one transaction at a time over all brokers).

        Waits by polling so that a holder that is stopped (SIGSTOP) cannot hang the
        caller forever: MetadataBusy after ``timeout`` seconds. A holder that dies
        releases the lock (the kernel drops flocks with the process).
        """
        make_private_dir(self.lock_path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise MetadataBusy(
                            f"{self.lock_path} stayed locked {timeout:.0f}s"
                        ) from None
                    time.sleep(0.001)
            yield
        finally:
            os.close(fd)  # releases the flock
