"""The consumer group protocol (KIP-848) with librdkafka's ``group.protocol=consumer``:
members join and split partitions, leave and hand them on, and commit, over TCP."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.broker.groups.conftest import GroupConsumer, create_topic, produce, wait_for
from tests.support.broker import kcli_command, kcli_env

NEW_PROTOCOL = {"group.protocol": "consumer"}


def test_two_consumers_split_then_one_takes_all(gbootstrap: str, group_id: str,
                                                consumers: list[GroupConsumer]) -> None:
    topic = f"kip848-{uuid.uuid4().hex[:8]}"
    create_topic(gbootstrap, topic, 6)
    first = GroupConsumer(gbootstrap, group_id, topic, **NEW_PROTOCOL)
    consumers.append(first)
    wait_for(lambda: first.partitions() == set(range(6)), 20, "the first to own everything")
    second = GroupConsumer(gbootstrap, group_id, topic, **NEW_PROTOCOL)
    consumers.append(second)
    wait_for(lambda: len(first.partitions()) == 3 and len(second.partitions()) == 3, 20,
             "an even split")
    assert first.partitions().isdisjoint(second.partitions())
    # produced once split: had the first read everything while it owned it all, the
    # second would have nothing read to commit, and nobody the positions of its half
    values = produce(gbootstrap, topic, 6, 20)

    admin = AdminClient({"bootstrap.servers": gbootstrap})
    described = admin.describe_consumer_groups([group_id])[group_id].result(10)
    assert described.type == ConsumerGroupType.CONSUMER
    assert described.partition_assignor == "uniform"
    assert {tp.partition for m in described.members
            for tp in m.assignment.topic_partitions} == set(range(6))
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(10)
    assert group_id in {g.group_id for g in listed.valid}

    wait_for(lambda: first.count() + second.count() == len(values), 20, "every record read")
    assert {p for p, _o, _v in second.messages} == second.partitions()
    second.commit_and_close()
    wait_for(lambda: first.partitions() == set(range(6)), 20, "the first to take all back")
    first.commit_and_close()
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
    offsets = {tp.partition: tp.offset for tp in committed[group_id].result(10).topic_partitions}
    assert offsets == dict.fromkeys(range(6), 20)
    assert {v for _p, _o, v in first.messages + second.messages} == values


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_rolling_upgrade_and_back(gbootstrap: str, group_id: str,
                                    consumers: list[GroupConsumer], strategy: str) -> None:
    """Classic consumers are replaced one by one by consumer protocol ones and back, as
    in a rolling deploy: the group never stops, and no partition is held twice."""
    topic = f"kip848-{uuid.uuid4().hex[:8]}"
    create_topic(gbootstrap, topic, 4)
    classic = {"partition.assignment.strategy": strategy}

    def start(**config: str) -> GroupConsumer:
        consumer = GroupConsumer(gbootstrap, group_id, topic, **config)
        consumers.append(consumer)
        return consumer

    def split(*members: GroupConsumer) -> bool:
        owned = [m.partitions() for m in members]
        return (sorted(p for o in owned for p in o) == [0, 1, 2, 3]
                and all(len(o) == 2 for o in owned))

    old = [start(**classic), start(**classic)]
    wait_for(lambda: split(*old), 30, "two classic members")
    new = start(**NEW_PROTOCOL)  # the group becomes a consumer protocol group
    old[0].close()
    wait_for(lambda: split(old[1], new), 30, "a classic and a new member")
    admin = AdminClient({"bootstrap.servers": gbootstrap})
    described = admin.describe_consumer_groups([group_id])[group_id].result(10)
    assert described.type == ConsumerGroupType.CONSUMER
    newer = start(**NEW_PROTOCOL)
    old[1].close()
    wait_for(lambda: split(new, newer), 30, "two new members")

    back = start(**classic)  # and back: a classic member joins the consumer group...
    wait_for(lambda: sorted(len(m.partitions()) for m in (new, newer, back)) == [1, 1, 2],
             30, "three members")
    new.close()
    newer.close()  # ...and when the last new one leaves, the group is classic again
    wait_for(lambda: back.partitions() == {0, 1, 2, 3}, 30, "the classic member to take all")
    described = admin.describe_consumer_groups([group_id])[group_id].result(10)
    assert described.type == ConsumerGroupType.CLASSIC
    assert not back.errors


def test_commits_from_a_stale_epoch_are_refused(gbootstrap: str, group_id: str,
                                                consumers: list[GroupConsumer]) -> None:
    topic = f"kip848-{uuid.uuid4().hex[:8]}"
    create_topic(gbootstrap, topic, 1)
    produce(gbootstrap, topic, 1, 5)
    member = GroupConsumer(gbootstrap, group_id, topic, **NEW_PROTOCOL)
    consumers.append(member)
    wait_for(lambda: member.count() == 5, 20, "the records")
    # an admin commit is refused while the group has members...
    admin = AdminClient({"bootstrap.servers": gbootstrap})
    future = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, 0, 1)])])[group_id]
    try:
        result = future.result(10)
        errors = [tp.error for tp in result.topic_partitions if tp.error]
    except KafkaException as failure:
        errors = [failure.args[0]]
    assert errors, "an admin commit went through while the group had a member"
    # ...while the member's own commit, in its epoch, goes through
    member.commit_and_close()
    done = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
    assert [tp.offset for tp in done[group_id].result(10).topic_partitions] == [5]


def test_kcli_group_describe_names_the_protocol_and_assignor(
        gbootstrap: str, group_id: str, consumers: list[GroupConsumer]) -> None:
    topic = f"kip848-{uuid.uuid4().hex[:8]}"
    create_topic(gbootstrap, topic, 2)
    member = GroupConsumer(gbootstrap, group_id, topic, **NEW_PROTOCOL,
                           **{"group.remote.assignor": "range"})
    consumers.append(member)
    wait_for(lambda: member.partitions() == {0, 1}, 20, "the member to own both")

    def describe(*args: str) -> str:
        done = subprocess.run(kcli_command("-b", gbootstrap, "group", "describe", group_id,
                                           *args), capture_output=True, text=True,
                              env=kcli_env(), timeout=60, check=True)
        return done.stdout

    detail = json.loads(describe("-o", "json"))
    assert (detail["group_protocol"], detail["protocol"], detail["state"]) == (
        "consumer", "range", "Stable")
    assert detail["group_epoch"] == detail["assignment_epoch"] >= 1
    (shown,) = detail["members"]
    assert shown["member_epoch"] == detail["group_epoch"]
    assert shown["target"] == shown["assignments"] == [
        {"topic": topic, "partition": 0}, {"topic": topic, "partition": 1}]
    table = describe("-o", "table")
    assert "consumer (KIP-848: the coordinator assigns)" in table
    assert "assignor" in table
    assert "group epoch" in table
