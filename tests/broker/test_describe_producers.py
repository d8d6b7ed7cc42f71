"""DescribeProducers: an idempotent producer's id, epoch and last sequence per partition."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.describe_producers.v0.request import DescribeProducersRequest, TopicRequest

from tests.support.wire import WireClient


def test_an_idempotent_producer_is_described(bootstrap: str, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the answer came
    admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(5):
        producer.produce(topic_name, b"%d" % i, partition=0, timestamp=1_700_000_000_000 + i)
    assert producer.flush(10) == 0
    with WireClient(bootstrap) as client:
        response = client.request(61, 0, DescribeProducersRequest(topics=(
            TopicRequest(name=topic_name, partition_indexes=(0, 1, 7)),)))
    [topic] = response.topics
    by_partition = {p.partition_index: p for p in topic.partitions}
    [state] = by_partition[0].active_producers
    assert state.producer_id >= 0
    assert (state.producer_epoch, state.last_sequence) == (0, 4)
    assert state.last_timestamp == 1_700_000_000_004
    assert (state.coordinator_epoch, state.current_txn_start_offset) == (-1, -1)
    assert by_partition[1].active_producers == ()  # nobody wrote there
    assert by_partition[7].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
