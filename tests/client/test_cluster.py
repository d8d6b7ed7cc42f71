"""The client layer against real endpoints: fast failure, plain dataclasses back."""

from __future__ import annotations

import socket
import time

import pytest

from kcli.client.cluster import Cluster
from kcli.client.consumer import RecordConsumer
from kcli.client.groups import describe_groups
from kcli.client.models import TopicSummary
from kcli.client.offsets import PositionSpec, watermarks
from kcli.client.producer import RecordProducer
from kcli.client.topics import create_topic, describe_topic, list_topics
from kcli.errors import NotFound, Unreachable


@pytest.mark.system  # a real client against a closed port
def test_refused_connection_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        cluster = Cluster({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0},
                          timeout=20)
        started = time.monotonic()
        with pytest.raises(Unreachable, match=rf"cannot reach 127.0.0.1:{port}: "
                                              r"Connection refused"):
            list_topics(cluster)
        assert time.monotonic() - started < 10  # well before the timeout


def test_topics_records_and_offsets(bootstrap: str, topic_name: str) -> None:
    cluster = Cluster({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    assert create_topic(cluster, topic_name, 2, 1, {}) is True
    assert create_topic(cluster, topic_name, 2, 1, {}, if_not_exists=True) is False
    producer = RecordProducer({"bootstrap.servers": bootstrap}, topic_name)
    producer.send_values([b"a", b"b", b"c"], partition=1)
    producer.send(b"d", key=b"k", partition=0, timestamp=1, headers=[("h", None)])
    report = producer.flush()
    assert (report.sent, report.failed) == (4, 0)
    summary = next(t for t in list_topics(cluster) if t.name == topic_name)
    assert summary == TopicSummary(topic_name, 2, 1, 4, summary.size, False)
    detail = describe_topic(cluster, topic_name)
    assert [(p.partition, p.low, p.high, p.leader) for p in detail.partitions] == [
        (0, 0, 1, detail.partitions[0].leader), (1, 0, 3, detail.partitions[1].leader)]
    marks = watermarks(cluster, [(topic_name, 0), (topic_name, 1)])
    assert marks.high == {(topic_name, 0): 1, (topic_name, 1): 3}

    reader = RecordConsumer(cluster, topic_name, start=PositionSpec("last", 2)).open()
    assert reader.total == 3
    seen = []
    while (batch := reader.next_batch(100)) is not None:
        seen += [m.value() for m in batch]
    reader.close()
    assert sorted(seen) == [b"b", b"c", b"d"]
    with pytest.raises(NotFound):
        describe_topic(cluster, f"{topic_name}-missing")


def test_unknown_group_is_not_found(bootstrap: str) -> None:
    cluster = Cluster({"bootstrap.servers": bootstrap}, timeout=15)
    with pytest.raises(NotFound, match=r"group 'no-such-group-c' does not exist"):
        describe_groups(cluster, ["no-such-group-c"])
