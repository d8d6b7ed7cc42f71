"""The shape of a cluster (brokers, controller, topics and partitions) as plain models,
from one Metadata request: what a dashboard or a status command shows first."""

from __future__ import annotations

from typing import Any

from kcli.client.cluster import Cluster
from kcli.client.models import BrokerInfo, ClusterLayout, PartitionLayout


def cluster_layout(cluster: Cluster, metadata: Any = None) -> ClusterLayout:
    """Brokers, controller and partitions of every topic (internal ones included).
    ``metadata``: a ClusterMetadata the caller already has (no request is sent)."""
    if metadata is None:
        metadata = cluster.metadata()
    brokers = tuple(sorted((BrokerInfo(b.id, b.host, b.port) for b in metadata.brokers.values()),
                           key=lambda b: b.id))
    topics: dict[str, tuple[PartitionLayout, ...]] = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None and topic.error.code() != 0:
            continue
        partitions = []
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            error = p.error.str() if p.error is not None and p.error.code() != 0 else None
            partitions.append(PartitionLayout(
                partition=pid, leader=p.leader if p.leader >= 0 else None,
                replicas=tuple(p.replicas), isr=tuple(p.isrs), error=error))
        topics[name] = tuple(partitions)
    controller = getattr(metadata, "controller_id", -1)
    return ClusterLayout(
        cluster_id=getattr(metadata, "cluster_id", None) or None,
        controller=controller if controller is not None and controller >= 0 else None,
        brokers=brokers, topics=topics)
