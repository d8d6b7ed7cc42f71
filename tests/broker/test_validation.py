"""Produce checks every record of a batch, not only its header: malformed batches with a
right CRC are refused and nothing is appended; a batch's max timestamp comes from its
records (issue 13, items 2 and 3). Raw Produce requests, real clients to look."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.types import TopicName
from kio.static.primitive import i16, i32, i32Timedelta

from kcli.broker.errors import ErrorCode
from kcli.broker.log import Record, encode_batch, read_header
from tests.broker.log.helpers import rebuilt
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient

NOW = int(time.time() * 1000)


def create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(10)


def produce_raw(bootstrap: str, topic: str, batch: bytes) -> Any:
    """One Produce v9 (acks=1) of `batch` to partition 0; the partition's answer."""
    request = ProduceRequest(
        acks=i16(1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        topic_data=(TopicProduceData(name=TopicName(topic), partition_data=(
            PartitionProduceData(index=i32(0), records=batch),)),),
    )
    with WireClient(bootstrap) as client:
        response = client.request(0, 9, request)
    return response.responses[0].partition_responses[0]


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "validation"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()


GOOD = encode_batch([Record(i, NOW + i, b"k", b"value %d" % i, []) for i in range(3)])

MALFORMED = {
    "count 2^31-1": rebuilt(GOOD, GOOD[61:], count=2**31 - 1),
    "count one more": rebuilt(GOOD, GOOD[61:], count=4),
    "count one less": rebuilt(GOOD, GOOD[61:], count=2),
    "record past the end": rebuilt(GOOD, GOOD[61:-3]),
    "random record bytes": rebuilt(GOOD, bytes(range(7, 7 + len(GOOD) - 61))),
    "gzip flag over plain bytes": rebuilt(GOOD, GOOD[61:], codec=1),
    "zstd flag over plain bytes": rebuilt(GOOD, GOOD[61:], codec=4),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_records_are_refused_and_nothing_appended(
    bootstrap: str, topic_name: str, name: str
) -> None:
    create(bootstrap, topic_name)
    assert produce_raw(bootstrap, topic_name, GOOD).error_code == ErrorCode.none
    before = watermarks(bootstrap, topic_name)
    answer = produce_raw(bootstrap, topic_name, MALFORMED[name])
    assert answer.error_code == ErrorCode.invalid_record, answer
    assert answer.error_message
    assert watermarks(bootstrap, topic_name) == before == (0, 3)
    assert produce_raw(bootstrap, topic_name, GOOD).base_offset == 3  # still appending


def test_a_max_timestamp_of_minus_one_is_stored_right(
    broker: BrokerProcess, topic_name: str
) -> None:
    """Sarama before 1.45 writes -1 as the batch's max timestamp."""
    bootstrap = broker.bootstrap
    create(bootstrap, topic_name, **{"segment.index.bytes": "4096", "index.interval.bytes": "1"})
    base = NOW - 60_000
    for start in (0, 3):
        records = [Record(i, base + (start + i) * 1000, None, b"v", []) for i in range(3)]
        batch = encode_batch(records, max_timestamp=-1)
        assert produce_raw(bootstrap, topic_name, batch).error_code == ErrorCode.none
    stored = (broker.data_dir / f"{topic_name}-0" / "00000000000000000000.log").read_bytes()
    assert read_header(stored).max_timestamp == base + 2000
    assert read_header(stored, read_header(stored).size).max_timestamp == base + 5000
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "validation"})
    try:
        found = [  # one partition a call: librdkafka keeps one timestamp per partition
            consumer.offsets_for_times([TopicPartition(topic_name, 0, at)], timeout=10)[0].offset
            for at in (base + 1500, base + 4000, base + 9000)
        ]
    finally:
        consumer.close()
    assert found == [2, 4, -1]


def test_each_record_timestamp_is_checked(bootstrap: str, topic_name: str) -> None:
    """The header claims `now`; the second record is two hours ahead, past the default
    message.timestamp.after.max.ms of one hour."""
    create(bootstrap, topic_name)
    records = [Record(0, NOW, None, b"a", []), Record(1, NOW + 7_200_000, None, b"b", [])]
    answer = produce_raw(bootstrap, topic_name, encode_batch(records, max_timestamp=NOW))
    assert answer.error_code == ErrorCode.invalid_timestamp
    assert [e.batch_index for e in answer.record_errors] == [1]
    assert watermarks(bootstrap, topic_name) == (0, 0)


def test_a_compacted_topic_names_the_keyless_records(bootstrap: str, topic_name: str) -> None:
    create(bootstrap, topic_name, **{"cleanup.policy": "compact"})
    records = [Record(i, NOW, None if i in (1, 3) else b"k", b"v", []) for i in range(4)]
    answer = produce_raw(bootstrap, topic_name, encode_batch(records))
    assert answer.error_code == ErrorCode.invalid_record
    assert [e.batch_index for e in answer.record_errors] == [1, 3]
