"""Time and size retention end to end: old segments go, and every client sees the new start."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from tests.support.broker import BrokerProcess, log_bytes

BrokerFactory = Callable[..., BrokerProcess]

FAST_RETENTION = {"log.retention.check.interval.ms": "100"}


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def setup_topic(broker: BrokerProcess, topic: str, timestamps: list[int]) -> AdminClient:
    """A topic of small segments holding one 500-byte record per timestamp, one per batch."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"segment.bytes": "4096",
                                                       "file.delete.delay.ms": "0"})])[
        topic].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i, timestamp in enumerate(timestamps):
        producer.produce(topic, key=b"k%d" % i, value=b"x" * 500, timestamp=timestamp)
        producer.flush(10)
    return admin


def alter(admin: AdminClient, topic: str, **configs: str) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ])
    admin.incremental_alter_configs([resource])[resource].result(10)


def earliest(admin: AdminClient, topic: str) -> int:
    tp = TopicPartition(topic, 0)
    return int(admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10).offset)


def first_offset_from_beginning(bootstrap: str, topic: str) -> int:
    """The first offset a new group subscribed with auto.offset.reset=earliest gets."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None:
                assert message.error() is None, message.error()
                return int(message.offset() or 0)
        raise AssertionError("nothing consumed")
    finally:
        consumer.close()


def kcat_first_offset(kcat: str, bootstrap: str, topic: str) -> int:
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-c",
                          "1", "-f", "%o\\n"], capture_output=True, timeout=30, check=True).stdout
    return int(out.split()[0])


def test_size_retention_moves_the_start_for_every_client(make_broker: BrokerFactory,
                                                         kcat: str) -> None:
    broker = make_broker(settings=FAST_RETENTION).start()
    now = int(time.time() * 1000)
    admin = setup_topic(broker, "sized", [now] * 60)
    directory = broker.data_dir / "sized-0"
    segments_before = len(list(directory.glob("*.log")))
    assert segments_before > 5
    assert earliest(admin, "sized") == 0
    alter(admin, "sized", retention_bytes="12000")
    wait_for(lambda: earliest(admin, "sized") > 0, what="size retention")
    start = earliest(admin, "sized")
    sizes = log_bytes(directory)
    assert sizes <= 12000 + 4096  # what is left is within a segment of the limit
    assert len(list(directory.glob("*.log"))) < segments_before
    assert first_offset_from_beginning(broker.bootstrap, "sized") == start
    assert kcat_first_offset(kcat, broker.bootstrap, "sized") == start
    # the low watermark of a consumer is the same, and offsets below it are out of range
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "low",
                         "auto.offset.reset": "earliest"})
    assert consumer.get_watermark_offsets(TopicPartition("sized", 0), timeout=10)[0] == start
    consumer.assign([TopicPartition("sized", 0, 0)])  # below the start: reset to earliest
    message = None
    deadline = time.monotonic() + 20
    while message is None and time.monotonic() < deadline:
        message = consumer.poll(0.2)
    consumer.close()
    assert message is not None
    assert message.error() is None
    assert message.offset() == start


def test_time_retention_deletes_segments_past_retention_ms(make_broker: BrokerFactory,
                                                            kcat: str) -> None:
    broker = make_broker(settings=FAST_RETENTION).start()
    now = int(time.time() * 1000)
    hour_ago = now - 3_600_000
    admin = setup_topic(broker, "timed", [hour_ago] * 30 + [now] * 30)
    alter(admin, "timed", retention_ms="600000")  # ten minutes: the old half goes
    wait_for(lambda: earliest(admin, "timed") > 0, what="time retention")
    start = earliest(admin, "timed")
    # whole segments go, so the start is a segment's base offset at or before record 30
    assert 20 < start <= 30
    assert start in {int(p.stem) for p in (broker.data_dir / "timed-0").glob("*.log")}
    assert first_offset_from_beginning(broker.bootstrap, "timed") == start
    assert kcat_first_offset(kcat, broker.bootstrap, "timed") == start
    # nothing recent goes; a restart keeps the new start
    time.sleep(0.3)  # a few more retention checks
    assert earliest(admin, "timed") == start
    assert broker.stop() == 0
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert earliest(admin, "timed") == start


def test_retention_never_deletes_the_active_segment(make_broker: BrokerFactory) -> None:
    broker = make_broker(settings=FAST_RETENTION).start()
    old = int(time.time() * 1000) - 3_600_000
    admin = setup_topic(broker, "active", [old] * 30)
    active = max(int(p.stem) for p in (broker.data_dir / "active-0").glob("*.log"))
    alter(admin, "active", retention_ms="1000")
    wait_for(lambda: earliest(admin, "active") == active, what="retention")
    time.sleep(0.3)
    assert earliest(admin, "active") == active  # everything old went, but not the active one
    assert first_offset_from_beginning(broker.bootstrap, "active") == active


def test_delete_records_and_retention_agree(make_broker: BrokerFactory) -> None:
    broker = make_broker(settings=FAST_RETENTION).start()
    admin = setup_topic(broker, "both", [int(time.time() * 1000)] * 40)
    tp = TopicPartition("both", 0, 7)
    (deleted,) = admin.delete_records([tp]).values()
    assert deleted.result(10).low_watermark == 7
    assert earliest(admin, "both") == 7
    alter(admin, "both", retention_bytes="10000")
    wait_for(lambda: earliest(admin, "both") > 7, what="size retention")
    start = earliest(admin, "both")
    # DeleteRecords below the start changes nothing; above it moves it on
    (below,) = admin.delete_records([TopicPartition("both", 0, 3)]).values()
    assert below.result(10).low_watermark == start
    (above,) = admin.delete_records([TopicPartition("both", 0, start + 1)]).values()
    assert above.result(10).low_watermark == start + 1
    assert first_offset_from_beginning(broker.bootstrap, "both") == start + 1
