"""confluent-kafka (librdkafka) consumer groups against the embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.broker.groups.conftest import (
    FAST_CONSUMER,
    GroupConsumer,
    create_topic,
    produce,
    wait_for,
)
from tests.support.broker import BrokerProcess, kcli_env

PARTITIONS = 6
PER_PARTITION = 50


def balanced(members: list[GroupConsumer], partitions: int) -> bool:
    """Every partition owned by exactly one member, shares differing by at most one."""
    owned = [m.partitions() for m in members]
    counts = Counter(p for parts in owned for p in parts)
    sizes = [len(parts) for parts in owned]
    return (set(counts) == set(range(partitions)) and set(counts.values()) == {1}
            and max(sizes) - min(sizes) <= 1)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([request])[group].result(10)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


@pytest.mark.parametrize(("members", "strategy"), [
    (2, "range"), (3, "range"), (2, "roundrobin"), (3, "roundrobin"),
    (2, "cooperative-sticky"), (3, "cooperative-sticky"),
])
def test_members_share_partitions_and_read_every_record_once(
    gbootstrap: str, group_id: str, topic_name: str, consumers: list[GroupConsumer],
    members: int, strategy: str,
) -> None:
    create_topic(gbootstrap, topic_name, PARTITIONS)
    for _ in range(members):
        consumers.append(GroupConsumer(gbootstrap, group_id, topic_name,
                                       **{"partition.assignment.strategy": strategy}))
    wait_for(lambda: balanced(consumers, PARTITIONS), what="a balanced group")
    assert {len(c.partitions()) for c in consumers} == {PARTITIONS // members}
    values = produce(gbootstrap, topic_name, PARTITIONS, PER_PARTITION)
    total = PARTITIONS * PER_PARTITION
    wait_for(lambda: sum(c.count() for c in consumers) >= total, what="every record")
    read = [m for c in consumers for m in c.messages]
    assert len(read) == total  # nothing twice
    assert {value for _p, _o, value in read} == values
    for consumer in consumers:  # each read only its own partitions
        assert {p for p, _o, _v in consumer.messages} == consumer.partitions()
    assert all(not c.errors for c in consumers), [c.errors for c in consumers]
    for consumer in consumers:
        consumer.commit_and_close()
    assert committed(gbootstrap, group_id, topic_name, PARTITIONS) == dict.fromkeys(
        range(PARTITIONS), PER_PARTITION)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_members_coming_and_going_at_once_never_lose_their_membership(
    gbootstrap: str, group_id: str, topic_name: str, consumers: list[GroupConsumer],
    strategy: str,
) -> None:
    """Concurrent joins and leaves: nobody that stays is ever told it is unknown, fenced or
    of an illegal generation (a gap other light brokers have)."""
    create_topic(gbootstrap, topic_name, 12)
    config = {"partition.assignment.strategy": strategy, "debug": "cgrp"}
    for _ in range(4):
        consumers.append(GroupConsumer(gbootstrap, group_id, topic_name, **config))
    wait_for(lambda: balanced(consumers, 12), what="four balanced members")
    leaving = consumers.pop(0)
    leaving.stop.set()
    closer = threading.Thread(target=leaving.close)
    closer.start()
    for _ in range(2):
        consumers.append(GroupConsumer(gbootstrap, group_id, topic_name, **config))
    closer.join(30)
    wait_for(lambda: balanced(consumers, 12), what="five balanced members")
    assert {len(c.partitions()) for c in consumers} <= {2, 3}
    for consumer in consumers:
        assert any("JoinGroup response" in line for line in consumer.client_log)
        trouble = [line for line in consumer.client_log
                   if any(word in line for word in ("Unknown member", "UNKNOWN_MEMBER",
                                                    "Illegal generation", "ILLEGAL_GENERATION",
                                                    "Fenced", "FENCED"))]
        assert not trouble, trouble[:5]


CHILD = textwrap.dedent("""
    import json, sys
    from confluent_kafka import Consumer
    bootstrap, group, topic = sys.argv[1:4]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "session.timeout.ms": 1000, "heartbeat.interval.ms": 100,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    def assigned(c, partitions):
        print(json.dumps([p.partition for p in partitions]), flush=True)
    consumer.subscribe([topic], on_assign=assigned)
    while True:
        consumer.poll(0.05)
""")


def test_a_member_that_stops_heartbeating_is_expelled(
    gbootstrap: str, group_id: str, topic_name: str, consumers: list[GroupConsumer],
) -> None:
    create_topic(gbootstrap, topic_name, PARTITIONS)
    survivor = GroupConsumer(gbootstrap, group_id, topic_name)
    consumers.append(survivor)
    wait_for(lambda: survivor.partitions() == set(range(PARTITIONS)), what="the first member")
    child = subprocess.Popen([sys.executable, "-c", CHILD, gbootstrap, group_id, topic_name],
                             stdout=subprocess.PIPE, env=kcli_env(), text=True)
    try:
        assert child.stdout is not None
        child_partitions = set(json.loads(child.stdout.readline()))
        wait_for(lambda: survivor.partitions() == set(range(PARTITIONS)) - child_partitions,
                 what="the split")
        assert len(child_partitions) == PARTITIONS // 2
        killed = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        wait_for(lambda: survivor.partitions() == set(range(PARTITIONS)), timeout=15,
                 what="the dead member's partitions")
        moved_after = time.monotonic() - killed
        assert moved_after >= 0.9, "expelled before its session timeout of 1s"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    values = produce(gbootstrap, topic_name, PARTITIONS, 10)
    wait_for(lambda: {v for _p, _o, v in list(survivor.messages)} >= values,
             what="records of every partition")


def test_restarted_broker_keeps_offsets_and_a_new_consumer_resumes(
    make_broker: Callable[..., BrokerProcess], group_id: str, topic_name: str,
) -> None:
    broker = make_broker(settings={"group.min.session.timeout.ms": "100"}).start()
    create_topic(broker.bootstrap, topic_name, 2)
    produce(broker.bootstrap, topic_name, 2, 100)
    read: list[tuple[int | None, int | None]] = []

    def consume_some(count: int) -> None:
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_id,
                             **FAST_CONSUMER})
        consumer.subscribe([topic_name])
        taken = 0
        deadline = time.monotonic() + 20
        while taken < count and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            read.append((message.partition(), message.offset()))
            consumer.commit(message=message, asynchronous=False)
            taken += 1
        consumer.close()
        assert taken == count

    consume_some(70)
    broker.kill()  # a crash: acknowledged commits must survive it
    broker.start()
    consume_some(60)
    assert broker.stop() == 0  # and a clean restart
    broker.start()
    consume_some(70)
    assert sorted(read) == sorted((p, o) for p in range(2) for o in range(100))
    assert committed(broker.bootstrap, group_id, topic_name, 2) == {0: 100, 1: 100}


def test_static_member_rejoins_without_a_rebalance(
    gbootstrap: str, group_id: str, topic_name: str, consumers: list[GroupConsumer],
) -> None:
    create_topic(gbootstrap, topic_name, PARTITIONS)
    first = GroupConsumer(gbootstrap, group_id, topic_name, **{"group.instance.id": "a"})
    other = GroupConsumer(gbootstrap, group_id, topic_name, **{"group.instance.id": "b"})
    consumers += [first, other]
    wait_for(lambda: balanced(consumers, PARTITIONS), what="a balanced group")
    before = first.partitions()
    assigned, revoked = other.assigned_events, other.revoked_events
    first.close()  # a static member does not leave the group when it closes
    again = GroupConsumer(gbootstrap, group_id, topic_name, **{"group.instance.id": "a"})
    consumers.append(again)
    wait_for(lambda: again.partitions() == before, what="the old assignment")
    # An eager rebalance would have revoked the other member's partitions before the new
    # member could get any: its callbacks show none happened.
    assert (other.assigned_events, other.revoked_events) == (assigned, revoked)
    admin = AdminClient({"bootstrap.servers": gbootstrap})
    group = admin.describe_consumer_groups([group_id])[group_id].result(10)
    assert sorted(m.group_instance_id for m in group.members) == ["a", "b"]
    assert str(group.state) == "ConsumerGroupState.STABLE"
