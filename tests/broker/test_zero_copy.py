"""Fetch answers sent from the segment files (sendfile): real clients read exactly what
was produced, a reader too slow to take a big answer at once still gets it whole and in
order, and the connection goes on serving after it."""

from __future__ import annotations

import datetime
import hashlib
import socket
import struct
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kio.static.primitive import i32Timedelta

from kcli.broker.log import decode_records, iter_batches
from kcli.broker.protocol.versions import ApiKey
from tests.broker.groups.test_wire import body
from tests.broker.test_kcat import create_topic
from tests.support.wire import WireClient

VALUE = 1000


def fill(bootstrap: str, topic: str, partitions: int, count: int) -> list[bytes]:
    """``count`` distinct values spread over the partitions, in order within each."""
    producer = Producer({"bootstrap.servers": bootstrap})
    values = [(b"%08d" % i) * (VALUE // 8) for i in range(count)]
    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions)
    assert producer.flush(30) == 0
    return values


def test_default_consumers_read_every_byte(bootstrap: str, kcat: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 4)
    values = fill(bootstrap, topic_name, 4, 8000)  # 8 MB: answers far over 64 KiB
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic_name})
    consumer.assign([TopicPartition(topic_name, p, 0) for p in range(4)])
    seen: dict[int, list[bytes]] = {p: [] for p in range(4)}
    deadline = time.monotonic() + 60
    while sum(map(len, seen.values())) < len(values) and time.monotonic() < deadline:
        for message in consumer.consume(1000, 1.0):
            assert message.error() is None, message.error()
            seen[message.partition()].append(message.value())
    consumer.close()
    for p in range(4):
        assert seen[p] == values[p::4]

    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic_name, "-o", "beginning",
                          "-e", "-q", "-f", "%p %s\n"], capture_output=True, timeout=60,
                         check=True).stdout
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(4)}
    for line in out.splitlines():
        partition, value = line.split(b" ", 1)
        by_partition[int(partition)].append(value)
    assert by_partition == {p: values[p::4] for p in range(4)}


def _fetch(client: WireClient, topic: str, offset: int, max_bytes: int) -> bytes:
    partition = body(ApiKey.FETCH, 12, "FetchPartition", partition=0, fetch_offset=offset,
                     partition_max_bytes=max_bytes)
    answer = client.request(ApiKey.FETCH, 12, body(
        ApiKey.FETCH, 12, replica_id=-1, max_wait=i32Timedelta.parse(datetime.timedelta()),
        min_bytes=1, max_bytes=max_bytes,
        topics=(body(ApiKey.FETCH, 12, "FetchTopic", topic=topic, partitions=(partition,)),),
        forgotten_topics_data=()))
    [fetched] = answer.responses[0].partitions
    assert fetched.error_code == 0
    return bytes(fetched.records or b"")


def _values(records: bytes) -> list[bytes | None]:
    return [r.value for header in iter_batches(records) for r in decode_records(records, header)]


def test_a_slow_reader_gets_a_big_answer_whole_then_more(bootstrap: str,
                                                          topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 1)
    values = fill(bootstrap, topic_name, 1, 6000)
    with WireClient(bootstrap) as client:
        # a small receive window and a reader that waits: the broker's socket fills
        # mid-answer, so the send goes on from the file after the transport drains
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        partition = body(ApiKey.FETCH, 12, "FetchPartition", partition=0, fetch_offset=0,
                         partition_max_bytes=8 << 20)
        request = body(ApiKey.FETCH, 12, replica_id=-1,
                       max_wait=i32Timedelta.parse(datetime.timedelta()), min_bytes=1,
                       max_bytes=8 << 20, topics=(body(
                           ApiKey.FETCH, 12, "FetchTopic", topic=topic_name,
                           partitions=(partition,)),), forgotten_topics_data=())
        original = client.recv_frame

        def slow_frame() -> bytes:
            time.sleep(0.5)  # let the broker hit a full socket first
            return original()

        client.recv_frame = slow_frame  # type: ignore[method-assign]
        answer = client.request(ApiKey.FETCH, 12, request)
        client.recv_frame = original  # type: ignore[method-assign]
        records = bytes(answer.responses[0].partitions[0].records or b"")
        assert len(records) > 6_000_000
        assert _values(records) == values
        digest = hashlib.sha256(records).hexdigest()
        # the same connection answers the next request, and the same bytes again
        again = _fetch(client, topic_name, 0, 8 << 20)
        assert hashlib.sha256(again).hexdigest() == digest
        tail = _fetch(client, topic_name, 5990, 1 << 20)
        assert _values(tail)[-1] == values[-1]


def test_short_answers_stay_bytes(bootstrap: str, topic_name: str) -> None:
    """Below 64 KiB nothing changes on the wire (a read costs less than the files)."""
    create_topic(bootstrap, topic_name, 1)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic_name, b"x", partition=0)
    assert producer.flush(10) == 0
    with WireClient(bootstrap) as client:
        records = _fetch(client, topic_name, 0, 1 << 20)
    [header] = iter_batches(records)
    assert struct.unpack_from(">q", records)[0] == header.base_offset == 0
    assert _values(records) == [b"x"]
