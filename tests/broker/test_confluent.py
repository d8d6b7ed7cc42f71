"""confluent-kafka (librdkafka) admin, producer and consumer against the embedded broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from kcli.broker.errors import ErrorCode
from tests.support.wire import WireClient

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # -2: beginning
    messages = []
    idle = 0
    while len(messages) < expected and idle < 100:
        batch = consumer.consume(1000, timeout=0.2)
        idle = 0 if batch else idle + 1
        for message in batch:
            assert message.error() is None, message.error()
            messages.append(message)
    consumer.close()
    return messages


def test_create_describe_delete_topics(admin: AdminClient, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 4, 1, config={"retention.ms": "3600000"})])[
        topic_name].result(10)
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    described = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(10)
    assert len(described.partitions) == 4
    assert described.topic_id is not None
    admin.delete_topics([topic_name])[topic_name].result(10)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_invalid_topic_requests_get_kafka_errors(admin: AdminClient) -> None:
    name = f"t-{uuid.uuid4().hex}"
    with pytest.raises(KafkaException, match="INVALID_REPLICATION_FACTOR"):
        admin.create_topics([NewTopic(name, 1, 3)])[name].result(10)
    bad = "bad name!"
    with pytest.raises(KafkaException, match="TOPIC_EXCEPTION"):
        admin.create_topics([NewTopic(bad, 1, 1)])[bad].result(10)
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "later"})])[
            name].result(10)
    assert name not in admin.list_topics(timeout=10).topics


INVALID_NAMES = ["nl\n", ".", "..", "x" * 250, "tab\tname", "caf\u00e9"]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_invalid_topic_names_are_refused(admin: AdminClient, name: str) -> None:
    with pytest.raises(KafkaException, match="TOPIC_EXCEPTION"):
        admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    assert name not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize("auto_create", [True, False])
def test_metadata_never_creates_an_invalid_name(bootstrap: str, auto_create: bool) -> None:
    """Kafka answers INVALID_TOPIC_EXCEPTION for a name no topic can have, created or not."""
    wanted = tuple(MetadataRequestTopic(topic_id=None, name=name)  # type: ignore[arg-type]
                   for name in ("nl\n", "..", "y" * 250))
    with WireClient(bootstrap) as client:
        response = client.request(3, 12, MetadataRequest(
            topics=wanted, allow_auto_topic_creation=auto_create,
            include_topic_authorized_operations=False))
        listed = client.request(3, 12, MetadataRequest(
            topics=None, allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
    assert [t.error_code for t in response.topics] == [ErrorCode.invalid_topic_exception] * 3
    assert not {t.name for t in listed.topics} & {w.name for w in wanted}


def test_names_colliding_by_dot_and_underscore_are_refused(admin: AdminClient) -> None:
    base = f"t.{uuid.uuid4().hex}_x"
    admin.create_topics([NewTopic(base, 1, 1)])[base].result(10)
    for name in (base.replace(".", "_"), base.replace("_", ".")):
        with pytest.raises(KafkaException, match="collides with existing topic"):
            admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    assert admin.list_topics(timeout=10).topics.keys() & {base, base.replace(".", "_")} == {base}


def test_create_partitions(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name].result(10)
    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(10)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 5
    with pytest.raises(KafkaException, match="INVALID_PARTITIONS"):
        admin.create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic_name, b"to the new partition", partition=4)
    assert producer.flush(10) == 0
    assert len(read_all(bootstrap, topic_name, 5, 1)) == 1


def test_describe_and_alter_configs(admin: AdminClient, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"cleanup.policy": "compact"})])[
        topic_name].result(10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["retention.ms"].is_default
    assert configs["retention.ms"].value == "604800000"

    # incremental: set one, keep the rest
    change = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([change])[change].result(10)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "compact"

    # legacy alter: replaces the whole set of overrides
    replace = ConfigResource(ConfigResource.Type.TOPIC, topic_name,
                             set_config={"max.message.bytes": "2000000"})
    # the AlterConfigs API itself, deprecated in the client but still used by tools
    with pytest.warns(DeprecationWarning, match="alter_configs"):
        admin.alter_configs([replace])[replace].result(10)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["max.message.bytes"].value == "2000000"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "x"})
    with (pytest.raises(KafkaException, match="INVALID_CONFIG"),
          pytest.warns(DeprecationWarning, match="alter_configs")):
        admin.alter_configs([bad])[bad].result(10)


def test_describe_broker_configs(admin: AdminClient) -> None:
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["num.partitions"].value == "1"
    assert configs["auto.create.topics.enable"].value == "true"


def test_describe_cluster(admin: AdminClient, bootstrap: str) -> None:
    cluster = admin.describe_cluster(request_timeout=10).result(10)
    assert cluster.cluster_id
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    assert f"{cluster.nodes[0].host}:{cluster.nodes[0].port}" == bootstrap


def test_delete_records(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(100):
        producer.produce(topic_name, str(i).encode())
    assert producer.flush(10) == 0
    partition = TopicPartition(topic_name, 0, 40)
    result = admin.delete_records([partition])[partition].result(10)
    assert result.low_watermark == 40
    messages = read_all(bootstrap, topic_name, 1, 60)
    assert [m.value() for m in messages] == [str(i).encode() for i in range(40, 100)]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (40, 100)
    consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_idempotent_producer_each_codec_read_back_in_order(
    bootstrap: str, topic_name: str, codec: str, admin: AdminClient
) -> None:
    admin.create_topics([NewTopic(topic_name, 3, 1)])[topic_name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "compression.type": codec, "linger.ms": 5, "acks": "all"})
    sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for i in range(3000):
        partition = i % 3
        value = f"{codec}-{i}-".encode() * (1 + i % 7)
        producer.produce(topic_name, value, key=str(i).encode(), partition=partition,
                         headers=[("i", str(i).encode()), ("null", None)])
        sent[partition].append(value)
    assert producer.flush(30) == 0
    messages = read_all(bootstrap, topic_name, 3, 3000)
    got: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for message in messages:
        got[message.partition()].append(message.value())
        assert message.headers()[1] == ("null", None)
    assert got == sent
    for partition in range(3):
        offsets = [m.offset() for m in messages if m.partition() == partition]
        assert offsets == list(range(1000))


def test_large_record_and_message_too_large(bootstrap: str, topic_name: str,
                                            admin: AdminClient) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"max.message.bytes": "200000"})])[
        topic_name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 10_000_000,
                         "compression.type": "none"})
    errors: list[str] = []
    producer.produce(topic_name, b"x" * 150_000)
    producer.flush(10)  # its own batch: a batch over the limit is refused whole
    producer.produce(topic_name, b"y" * 300_000,
                     on_delivery=lambda err, _msg: errors.append(err.name() if err else "ok"))
    producer.flush(10)
    assert errors == ["MSG_SIZE_TOO_LARGE"]
    assert [len(m.value()) for m in read_all(bootstrap, topic_name, 1, 1)] == [150_000]


def test_auto_create_on_metadata(bootstrap: str) -> None:
    name = f"auto-{uuid.uuid4().hex}"
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(name, b"hello")
    assert producer.flush(10) == 0
    assert name in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def test_internal_topics_refuse_clients(admin: AdminClient, bootstrap: str,
                                        topic_name: str) -> None:
    with pytest.raises(KafkaException, match="INVALID_REQUEST"):
        admin.create_topics([NewTopic("__transaction_state", 1, 1)])[
            "__transaction_state"].result(10)
    # a commit makes the coordinator create __consumer_offsets; clients may not write to it
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    consumer.commit(offsets=[TopicPartition(topic_name, 0, 0)], asynchronous=False)
    consumer.close()
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    producer.produce("__consumer_offsets", b"x", partition=0,
                     on_delivery=lambda err, _m: errors.append(err.name() if err else "ok"))
    producer.flush(10)
    assert errors == ["TOPIC_EXCEPTION"]
