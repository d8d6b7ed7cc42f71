"""Restarts and crashes: every acknowledged record, topic and config survives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.support.broker import BrokerProcess

BrokerFactory = Callable[..., BrokerProcess]


def read_partition(bootstrap: str, topic: str, partition: int) -> list[tuple[int, bytes | None,
                                                                              bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 20})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    consumer.assign([TopicPartition(topic, partition, low)])
    out = []
    deadline = time.monotonic() + 30
    while (not out or out[-1][0] < high - 1) and high > low and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.2):
            assert message.error() is None, message.error()
            out.append((message.offset(), message.key(), message.value()))
    consumer.close()
    return out


def test_clean_restart_keeps_topics_configs_records(make_broker: BrokerFactory) -> None:
    broker = make_broker().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("kept", 3, 1, config={"retention.ms": "123456789",
                                                         "cleanup.policy": "compact"})])[
        "kept"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(3000):
        producer.produce("kept", key=str(i).encode(), value=f"v{i}".encode(), partition=i % 3)
    assert producer.flush(30) == 0
    before = {p: read_partition(broker.bootstrap, "kept", p) for p in range(3)}
    assert broker.stop() == 0

    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics["kept"].partitions) == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, "kept")
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "123456789"
    assert configs["cleanup.policy"].value == "compact"
    assert {p: read_partition(broker.bootstrap, "kept", p) for p in range(3)} == before
    # new writes continue the offsets
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    producer.produce("kept", key=b"k", value=b"after", partition=0)
    assert producer.flush(10) == 0
    assert read_partition(broker.bootstrap, "kept", 0)[-1] == (1000, b"k", b"after")


def test_kill_during_writes_keeps_every_acknowledged_record(make_broker: BrokerFactory) -> None:
    broker = make_broker().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("crash", 1, 1)])["crash"].result(10)
    acked: list[bytes] = []
    lock = threading.Lock()

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            with lock:
                acked.append(msg.value())  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 1, "message.timeout.ms": 3000, "retries": 0})
    i = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        producer.produce("crash", value=f"record-{i}".encode(), on_delivery=on_delivery)
        producer.poll(0)
        i += 1
    broker.kill()
    producer.flush(5)
    assert acked, "nothing was acknowledged before the kill"

    broker.start()
    stored = [value for _off, _key, value in read_partition(broker.bootstrap, "crash", 0)]
    # every acknowledged record is there; nothing is duplicated or out of order
    assert set(acked) <= set(stored)
    assert stored == [f"record-{n}".encode() for n in range(len(stored))]


def _last_segment(data_dir: Path, topic: str) -> Path:
    return sorted((data_dir / f"{topic}-0").glob("*.log"))[-1]


def test_torn_tail_is_cut_and_the_rest_kept(make_broker: BrokerFactory) -> None:
    broker = make_broker().start()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(50):
        producer.produce("torn", value=f"r{i}".encode())
        producer.flush(10)
    assert broker.stop() == 0
    segment = _last_segment(broker.data_dir, "torn")
    size = segment.stat().st_size
    with open(segment, "r+b") as f:  # half of the last batch, then garbage
        f.seek(0, 2)
        f.truncate(size - 10)
        f.seek(0, 2)
        f.write(b"\xde\xad\xbe\xef" * 50)

    broker.start()
    values = [v for _o, _k, v in read_partition(broker.bootstrap, "torn", 0)]
    assert values == [f"r{i}".encode() for i in range(49)]
    warnings = [line for line in broker.log().splitlines() if "WARNING" in line]
    assert any("torn-0" in line for line in warnings), broker.log()
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce("torn", value=b"again")
    assert producer.flush(10) == 0
    assert read_partition(broker.bootstrap, "torn", 0)[-1][0] == 49


def test_rolled_segments_are_synced_and_move_the_recovery_point(
    make_broker: BrokerFactory,
) -> None:
    from kcli.broker.log.checkpoints import RECOVERY_POINT_FILE

    broker = make_broker().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("rolling", 1, 1, config={"segment.bytes": "4096"})])[
        "rolling"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(40):
        producer.produce("rolling", value=b"x" * 500 + str(i).encode())
        producer.flush(10)
    segments = sorted((broker.data_dir / "rolling-0").glob("*.log"))
    assert len(segments) > 3
    active_base = int(segments[-1].stem)
    point_file = broker.data_dir / "rolling-0" / RECOVERY_POINT_FILE
    deadline = time.monotonic() + 10
    point = -1
    while time.monotonic() < deadline:  # the housekeeping task syncs rolled segments each second
        if point_file.exists():
            point = int(point_file.read_text().split()[0])
            if point == active_base:
                break
        time.sleep(0.1)
    assert point == active_base
