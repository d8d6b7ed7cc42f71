"""AdminClient group operations, and OffsetDelete on the wire (the Python client has none)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from kio.schema.offset_delete.v0.request import (
    OffsetDeleteRequest,
    OffsetDeleteRequestPartition,
    OffsetDeleteRequestTopic,
)

from kcli.broker.handlers.base import make
from tests.broker.groups.conftest import GroupConsumer, create_topic, wait_for
from tests.support.wire import WireClient


@pytest.fixture
def admin(gbootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": gbootstrap})


def offsets(admin: AdminClient, group: str, topic: str | None = None,
            partitions: int = 0) -> dict[tuple[str, int], tuple[int, str | None]]:
    wanted = ([TopicPartition(topic, p) for p in range(partitions)] if topic is not None
              else None)
    result = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, wanted)])[group].result(10)
    return {(tp.topic, tp.partition): (tp.offset, tp.metadata)
            for tp in result.topic_partitions}


def listed(admin: AdminClient, **filters: object) -> dict[str, ConsumerGroupState]:
    result = admin.list_consumer_groups(request_timeout=10, **filters).result(10)
    assert not result.errors, result.errors
    return {g.group_id: g.state for g in result.valid}


def test_list_describe_and_delete_groups(
    admin: AdminClient, gbootstrap: str, group_id: str, topic_name: str,
    consumers: list[GroupConsumer],
) -> None:
    create_topic(gbootstrap, topic_name, 2)
    member = GroupConsumer(gbootstrap, group_id, topic_name, **{"client.id": "the-client"})
    consumers.append(member)
    wait_for(lambda: member.partitions() == {0, 1}, what="an assignment")
    idle = f"{group_id}-idle"
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        idle, [TopicPartition(topic_name, 0, 5)])])[idle].result(10)

    assert listed(admin)[group_id] == ConsumerGroupState.STABLE
    stable = listed(admin, states={ConsumerGroupState.STABLE})
    assert group_id in stable
    assert idle not in stable
    assert listed(admin, states={ConsumerGroupState.EMPTY})[idle] == ConsumerGroupState.EMPTY
    assert group_id in listed(admin, types={ConsumerGroupType.CLASSIC})
    assert group_id not in listed(admin, types={ConsumerGroupType.CONSUMER})

    described = admin.describe_consumer_groups([group_id])[group_id].result(10)
    assert described.state == ConsumerGroupState.STABLE
    assert described.partition_assignor == "range"
    assert described.is_simple_consumer_group is False
    assert described.coordinator.id == 1
    [m] = described.members
    assert m.client_id == "the-client"
    assert m.host == "/127.0.0.1"
    assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1]
    assert {tp.topic for tp in m.assignment.topic_partitions} == {topic_name}

    with pytest.raises(KafkaException, match="NON_EMPTY_GROUP"):
        admin.delete_consumer_groups([group_id])[group_id].result(10)
    member.commit_and_close()
    consumers.remove(member)
    assert listed(admin)[group_id] == ConsumerGroupState.EMPTY
    admin.delete_consumer_groups([group_id])[group_id].result(10)
    assert group_id not in listed(admin)
    assert offsets(admin, group_id, topic_name, 2) == {
        (topic_name, 0): (-1001, None), (topic_name, 1): (-1001, None)}  # -1: none
    with pytest.raises(KafkaException, match="GROUP_ID_NOT_FOUND"):
        admin.delete_consumer_groups([group_id])[group_id].result(10)


def test_list_and_alter_offsets_with_metadata(
    admin: AdminClient, gbootstrap: str, group_id: str, topic_name: str,
) -> None:
    create_topic(gbootstrap, topic_name, 3)
    request = ConsumerGroupTopicPartitions(group_id, [
        TopicPartition(topic_name, 0, 10, "checkpoint ✓"),
        TopicPartition(topic_name, 2, 30),
    ])
    result = admin.alter_consumer_group_offsets([request])[group_id].result(10)
    assert all(tp.error is None for tp in result.topic_partitions)
    assert offsets(admin, group_id) == {(topic_name, 0): (10, "checkpoint ✓"),
                                        (topic_name, 2): (30, None)}
    assert offsets(admin, group_id, topic_name, 3)[(topic_name, 1)][0] == -1001
    too_long = ConsumerGroupTopicPartitions(
        group_id, [TopicPartition(topic_name, 1, 5, "x" * 5000)])
    assert alter_errors(admin, too_long) == ["OFFSET_METADATA_TOO_LARGE"]
    unknown = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic_name, 7, 5)])
    assert alter_errors(admin, unknown) == ["UNKNOWN_TOPIC_OR_PART"]


def alter_errors(admin: AdminClient, request: ConsumerGroupTopicPartitions) -> list[str]:
    """Error names of an offset change, whether reported per partition or for the request."""
    try:
        result = admin.alter_consumer_group_offsets([request])[request.group_id].result(10)
    except KafkaException as error:
        return [error.args[0].name()]
    return [tp.error.name() for tp in result.topic_partitions if tp.error is not None]


def delete_offsets(bootstrap: str, group: str, topic: str, partitions: list[int]) -> Any:
    """OffsetDelete v0, which confluent-kafka's AdminClient does not offer."""
    request = make(OffsetDeleteRequest, group_id=group, topics=(
        make(OffsetDeleteRequestTopic, name=topic, partitions=tuple(
            make(OffsetDeleteRequestPartition, partition_index=p) for p in partitions)),))
    with WireClient(bootstrap) as client:
        return client.request(47, 0, request)


def test_delete_a_topics_offsets_from_a_group(
    admin: AdminClient, gbootstrap: str, group_id: str, topic_name: str,
    consumers: list[GroupConsumer],
) -> None:
    other = f"{topic_name}-other"
    create_topic(gbootstrap, topic_name, 2)
    create_topic(gbootstrap, other, 1)
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id, [
        TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 2),
        TopicPartition(other, 0, 3)])])[group_id].result(10)
    member = GroupConsumer(gbootstrap, group_id, topic_name)  # subscribes to topic_name only
    consumers.append(member)
    wait_for(lambda: member.partitions() == {0, 1}, what="an assignment")

    refused = delete_offsets(gbootstrap, group_id, topic_name, [0, 1])
    assert int(refused.error_code) == 0
    assert [int(p.error_code) for p in refused.topics[0].partitions] == [86, 86]
    done = delete_offsets(gbootstrap, group_id, other, [0])
    assert [int(p.error_code) for p in done.topics[0].partitions] == [0]
    remaining = offsets(admin, group_id)
    assert (other, 0) not in remaining
    assert remaining[(topic_name, 1)] == (2, None)
    missing = delete_offsets(gbootstrap, f"{group_id}-none", other, [0])
    assert int(missing.error_code) == 69  # GROUP_ID_NOT_FOUND
