"""kcat's balanced consumer (-G) against the embedded broker."""

from __future__ import annotations

import subprocess

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.broker.groups.conftest import create_topic, produce


def test_kcat_balanced_consumer_reads_everything_and_commits(
    kcat: str, gbootstrap: str, group_id: str, topic_name: str,
) -> None:
    create_topic(gbootstrap, topic_name, 3)
    values = produce(gbootstrap, topic_name, 3, 100)
    result = subprocess.run(
        [kcat, "-b", gbootstrap, "-G", group_id, "-o", "beginning", "-e", "-q",
         "-f", "%p %o %s\\n", "-X", "heartbeat.interval.ms=100", topic_name],
        capture_output=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = [line.split(" ", 2) for line in result.stdout.decode().splitlines()]
    assert len(lines) == 300
    assert {value.encode() for _p, _o, value in lines} == values
    assert {(int(p), int(o)) for p, o, _v in lines} == {
        (p, o) for p in range(3) for o in range(100)}
    admin = AdminClient({"bootstrap.servers": gbootstrap})
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic_name, p)
                                                      for p in range(3)])
    offsets = admin.list_consumer_group_offsets([request])[group_id].result(10)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 100, 1: 100, 2: 100}
