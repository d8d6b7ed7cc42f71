"""Clients pinned to versions Kafka 3.9 serves and 4.0 dropped: kafka-python told it
talks to a 0.8.2-0.11 broker, kcat with the 0.9 fallback, and raw old requests for the
rest. Before, the broker closed their connections (a lag monitor saw no offsets, a
Sarama-style consumer never committed)."""

from __future__ import annotations

import struct
import subprocess
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from kcli.broker.protocol import legacy
from tests.support.wire import WireClient


def fill(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, b"%d" % i, partition=0)
    assert producer.flush(10) == 0


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [found] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(found.offset)
    finally:
        consumer.close()


@pytest.mark.parametrize("api_version", [(0, 8, 1), (0, 8, 2), (0, 9)])
def test_an_old_consumer_lists_offsets_and_commits(bootstrap: str, topic_name: str,
                                                   api_version: tuple[int, ...]) -> None:
    """(0, 8, 1): OffsetCommit v0 and OffsetFetch v0; (0, 8, 2): v1 and v1; all three
    ListOffsets v0."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    fill(bootstrap, topic_name, 12)
    group = f"old-{topic_name}"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             api_version=api_version, enable_auto_commit=False)
    try:
        tp = KafkaPartition(topic_name, 0)
        consumer.assign([tp])
        assert consumer.end_offsets([tp]) == {tp: 12}
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        consumer.commit({tp: OffsetAndMetadata(7, "from an old client", -1)})
        assert consumer.committed(tp) == 7
    finally:
        consumer.close()
    assert committed(bootstrap, group, topic_name) == 7  # the same offsets a new client reads


def test_old_admin_requests(bootstrap: str, topic_name: str) -> None:
    """kafka-python pinned to 0.10.1: CreateTopics v0 and DeleteTopics v0."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, api_version=(0, 10, 1))
    try:
        admin.create_topics([NewTopic(topic_name, 3, 1)])
        assert len(Consumer({"bootstrap.servers": bootstrap, "group.id": "x"}).list_topics(
            topic_name, timeout=10).topics[topic_name].partitions) == 3
        admin.delete_topics([topic_name])
    finally:
        admin.close()


def test_kcat_with_the_09_fallback_queries_offsets(kcat: str, bootstrap: str,
                                                   topic_name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    fill(bootstrap, topic_name, 5)
    done = subprocess.run([kcat, "-b", bootstrap, "-X", "api.version.request=false",
                           "-X", "broker.version.fallback=0.9.0", "-Q", "-t",
                           f"{topic_name}:0:-1"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{topic_name} [0] offset 5" in done.stdout


def old_request(client: WireClient, api_key: int, version: int, body: dict[str, Any],
                ) -> dict[str, Any]:
    """Send ``body`` as (api_key, version) and decode the answer as that version."""
    old = legacy.TRANSLATIONS[(api_key, version)]
    client.correlation_id += 1
    header = struct.pack(">hhih", api_key, version, client.correlation_id, 3) + b"old"
    client.send_raw(header + legacy.encode(old.old_request, body))
    frame = client.recv_frame()
    assert struct.unpack_from(">i", frame)[0] == client.correlation_id
    return legacy.decode(old.old_response, frame[4:])


def test_describe_configs_v0_and_epochs_v0_v1_and_log_dirs_v0(bootstrap: str,
                                                              topic_name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"retention.ms": "60000"})])
    admin.close()
    fill(bootstrap, topic_name, 3)
    with WireClient(bootstrap) as client:
        answer = old_request(client, 32, 0, {"resources": [
            {"resource_type": 2, "resource_name": topic_name, "configuration_keys": None}]})
        [result] = answer["results"]
        assert result["error_code"] == 0
        configs = {c["name"]: c for c in result["configs"]}
        assert (configs["retention.ms"]["value"], configs["retention.ms"]["is_default"]) == (
            "60000", False)
        assert configs["cleanup.policy"]["is_default"] is True

        partitions = [{"partition": 0, "leader_epoch": 0}]
        for version in (0, 1):
            epochs = old_request(client, 23, version, {"topics": [
                {"topic": topic_name, "partitions": partitions}]})
            [found] = epochs["topics"][0]["partitions"]
            assert (found["error_code"], found["end_offset"]) == (0, 3)
            assert ("leader_epoch" in found) == (version == 1)

        dirs = old_request(client, 35, 0, {"topics": [
            {"topic": topic_name, "partitions": [0]}]})
        [log_dir] = dirs["results"]
        [topic] = log_dir["topics"]
        assert topic["name"] == topic_name
        assert topic["partitions"][0]["partition_size"] > 0


@pytest.mark.parametrize(("api_version", "compression"), [
    ((0, 9), None), ((0, 9), "gzip"), ((0, 10, 0), None), ((0, 10, 0), "gzip"),
    ((0, 10, 1), None)])
def test_old_producers_and_consumers_speak_message_sets(
        bootstrap: str, topic_name: str, api_version: tuple[int, ...],
        compression: str | None) -> None:
    """(0, 9): Produce v1 and Fetch v1 with magic 0; (0, 10, x): Produce v2 and Fetch
    v2/v3 with magic 1. A new client reads the same records."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version,
                             compression_type=compression)
    for i in range(20):
        producer.send(topic_name, key=b"k%d" % i, value=b"value %d" % i, partition=0,
                      timestamp_ms=1_700_000_000_000 + i)
    producer.flush(10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version,
                             consumer_timeout_ms=5000, auto_offset_reset="earliest")
    consumer.assign([KafkaPartition(topic_name, 0)])
    old = [(m.offset, m.key, m.value, m.timestamp) for m in consumer]
    consumer.close()
    with_time = api_version >= (0, 10)
    assert old == [(i, b"k%d" % i, b"value %d" % i,
                    1_700_000_000_000 + i if with_time else None) for i in range(20)]

    new = Consumer({"bootstrap.servers": bootstrap, "group.id": f"new-{topic_name}",
                    "auto.offset.reset": "earliest", "enable.partition.eof": True})
    try:
        new.assign([TopicPartition(topic_name, 0, 0)])
        seen = []
        while len(seen) < 20:
            message = new.poll(10)
            assert message is not None
            if message.error() is None:
                seen.append((message.offset(), message.key(), message.value(),
                             message.timestamp()[1]))
    finally:
        new.close()
    assert seen == [(i, b"k%d" % i, b"value %d" % i,
                     1_700_000_000_000 + i if with_time else -1) for i in range(20)]


@pytest.mark.parametrize("fallback", ["0.9.0", "0.10.0"])  # message format v0, v1
@pytest.mark.parametrize("codec", ["snappy", "lz4", "gzip"])
def test_kcat_with_an_old_fallback_produces_and_consumes(kcat: str, bootstrap: str,
                                                         topic_name: str, fallback: str,
                                                         codec: str) -> None:
    """librdkafka told the broker is 0.9 (Produce v1, Fetch v1: magic 0) or 0.10.0
    (Produce v2, Fetch v2: magic 1) sends each codec's compressed wrapper and reads
    down-converted batches; lz4 at magic 0 has its old, broken frame checksum."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    old = ["-X", "api.version.request=false", "-X", f"broker.version.fallback={fallback}"]
    done = subprocess.run([kcat, "-b", bootstrap, "-P", "-t", topic_name, "-p", "0",
                           "-K", ":", "-z", codec, *old], input="a:1\nb:2\n",
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    # a compressed batch from a new client, read back (down-converted) by the old one
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                         "linger.ms": 100})
    for value in (b"x", b"y"):
        producer.produce(topic_name, value, partition=0)
    assert producer.flush(10) == 0
    done = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic_name, "-e", "-q",
                           "-f", "%o %k %s\n", *old], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "0 a 1\n1 b 2\n2  x\n3  y\n"


def test_down_conversion_can_be_turned_off_per_topic(kcat: str, bootstrap: str,
                                                     topic_name: str) -> None:
    """message.downconversion.enable=false: an old Fetch gets UNSUPPORTED_VERSION for
    that topic, as from Kafka 3.9; a new client still reads it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={
        "message.downconversion.enable": "false"})])
    admin.close()
    fill(bootstrap, topic_name, 2)
    with WireClient(bootstrap) as client:
        answer = old_request(client, 1, 2, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "topics": [
                {"topic": topic_name, "partitions": [
                    {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    [partition] = answer["responses"][0]["partitions"]
    assert partition["error_code"] == 35  # UNSUPPORTED_VERSION
    assert not partition["records"]
    done = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic_name, "-e", "-q"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.split() == ["0", "1"]


def test_zstd_data_is_refused_to_an_old_fetch(bootstrap: str, topic_name: str) -> None:
    """Kafka answers UNSUPPORTED_COMPRESSION_TYPE: no v0/v1 reader knows zstd."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.close()
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd"})
    producer.produce(topic_name, b"squeezed" * 1000, partition=0)  # worth compressing
    assert producer.flush(10) == 0
    with WireClient(bootstrap) as client:
        answer = old_request(client, 1, 3, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "topics": [{"topic": topic_name, "partitions": [
                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    [partition] = answer["responses"][0]["partitions"]
    assert partition["error_code"] == 76  # UNSUPPORTED_COMPRESSION_TYPE
    assert partition["high_watermark"] == 1
    assert not partition["records"]


def test_fetch_v17_the_newest_kafka_39_serves(bootstrap: str, topic_name: str) -> None:
    """Fetch v17 (KIP-853's replica directory id, a tagged field) is what Kafka 3.9's own
    Java client sends when the broker offers it; a consumer's fetch reads as at v16."""
    import datetime

    from kio.static.primitive import i32Timedelta

    from kcli.broker.protocol.versions import ApiKey
    from tests.broker.groups.test_wire import body

    fill(bootstrap, topic_name, 3)
    with WireClient(bootstrap) as client:
        metadata = client.request(ApiKey.METADATA, 12, body(
            ApiKey.METADATA, 12, topics=(body(ApiKey.METADATA, 12, "MetadataRequestTopic",
                                              topic_id=None, name=topic_name),),
            include_topic_authorized_operations=False))
        topic_id = metadata.topics[0].topic_id
        partition = body(ApiKey.FETCH, 17, "FetchPartition", partition=0, fetch_offset=0,
                         partition_max_bytes=1 << 20)
        answer = client.request(ApiKey.FETCH, 17, body(
            ApiKey.FETCH, 17, max_wait=i32Timedelta.parse(datetime.timedelta()), min_bytes=1,
            topics=(body(ApiKey.FETCH, 17, "FetchTopic", topic_id=topic_id,
                         partitions=(partition,)),), forgotten_topics_data=()))
    [topic] = answer.responses
    [fetched] = topic.partitions
    assert (topic.topic_id, fetched.error_code, fetched.high_watermark) == (topic_id, 0, 3)
    records, pos, count = bytes(fetched.records or b""), 0, 0
    while pos < len(records):  # v2 batches: base offset, length, ..., count at byte 57
        count += struct.unpack_from(">i", records, pos + 57)[0]
        pos += 12 + struct.unpack_from(">i", records, pos + 8)[0]
    assert count == 3
