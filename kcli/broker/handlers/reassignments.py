"""AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders: moving
replicas between brokers and choosing leaders on request (kafka-reassign-partitions.sh,
kafka-leader-election.sh, rpk cluster partitions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kcli.broker.cluster import reassignment
from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType


def _by_topic(entries: Iterable[tuple[str, Any]], topic_cls: Any, **names: str,
              ) -> tuple[Any, ...]:
    """Partition entries grouped under their topic, in first-seen order; ``names`` maps
    ``name``/``partitions`` to the topic class's field names."""
    grouped: dict[str, list[Any]] = {}
    for topic, entry in entries:
        grouped.setdefault(topic, []).append(entry)
    name_field, partitions_field = names.get("name", "name"), names.get("partitions",
                                                                         "partitions")
    return tuple(make(topic_cls, **{name_field: topic, partitions_field: tuple(parts)})
                 for topic, parts in grouped.items())


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
async def alter_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    """Start or cancel (replicas null) moves; every partition gets its own answer."""
    moves = [(topic.name, int(p.partition_index),
              None if p.replicas is None else [int(r) for r in p.replicas])
             for topic in request.topics for p in topic.partitions]
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed,
                    error_message="Cluster ALTER is needed", responses=())
    try:
        outcomes = ctx.broker.reassign_partitions(moves)
    except ControllerError as error:
        return make(ctx.response_class(), throttle_time=0, error_code=error.error_code,
                    error_message=error.message, responses=())
    partition_cls = ctx.response_class("ReassignablePartitionResponse")
    entries = [(name, make(partition_cls, partition_index=index,
                           error_code=outcome.error_code, error_message=outcome.message))
               for (name, index, _target), outcome in zip(moves, outcomes, strict=True)]
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                error_message=None, responses=_by_topic(
                    entries, ctx.response_class("ReassignableTopicResponse")))


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS)
async def list_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    """The moves in progress, of the named partitions (null: of all)."""
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed,
                    error_message="Cluster DESCRIBE is needed", topics=())
    wanted = None if request.topics is None else [
        (t.name, int(i)) for t in request.topics for i in t.partition_indexes]
    partition_cls = ctx.response_class("OngoingPartitionReassignment")
    entries = [(name, make(partition_cls, partition_index=index, replicas=tuple(p.replicas),
                           adding_replicas=tuple(p.adding),
                           removing_replicas=tuple(p.removing)))
               for (name, index), p in reassignment.in_progress(ctx.broker.metadata, wanted)]
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                error_message=None, topics=_by_topic(
                    entries, ctx.response_class("OngoingTopicReassignment")))


@handles(ApiKey.ELECT_LEADERS)
async def elect_leaders(ctx: RequestContext, request: Any) -> Any:
    """Preferred (v0, or election type 0) or unclean (1) elections. With no partitions
    named, every partition is a candidate and those that need nothing are left out."""
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed,
                    replica_election_results=())
    election = int(getattr(request, "election_type", reassignment.PREFERRED))
    if election not in (reassignment.PREFERRED, reassignment.UNCLEAN):
        return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.invalid_request,
                    replica_election_results=())
    everything = request.topic_partitions is None
    if everything:
        partitions = [(t.name, i) for t in ctx.broker.metadata.topics.values()
                      for i in range(len(t.partitions))]
    else:
        partitions = [(t.topic, int(i)) for t in request.topic_partitions
                      for i in t.partitions]
    try:
        outcomes = ctx.broker.elect_partition_leaders(partitions, election)
    except ControllerError as error:
        return make(ctx.response_class(), throttle_time=0, error_code=error.error_code,
                    replica_election_results=())
    partition_cls = ctx.response_class("PartitionResult")
    entries = [(name, make(partition_cls, partition_id=index, error_code=outcome.error_code,
                           error_message=outcome.message))
               for (name, index), outcome in zip(partitions, outcomes, strict=True)
               if not (everything and outcome.error_code == ErrorCode.election_not_needed)]
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                replica_election_results=_by_topic(
                    entries, ctx.response_class("ReplicaElectionResult"), name="topic",
                    partitions="partition_result"))
