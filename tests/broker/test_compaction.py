"""cleanup.policy=compact end to end: the log cleaner against confluent-kafka and kcat."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess, log_bytes

BrokerFactory = Callable[..., BrokerProcess]
Row = tuple[int, bytes | None, bytes | None]

FAST_CLEANER = {"log.cleaner.backoff.ms": "50"}
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "2048",
           "min.cleanable.dirty.ratio": "0.01", "file.delete.delay.ms": "0"}


def create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(10)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]],
            **config: object) -> list[Row]:
    """Produce in order, one small batch at a time; returns (offset, key, value) of each."""
    produced: list[Row] = []
    lock = threading.Lock()

    def report(err: object, msg: object) -> None:
        assert err is None, err
        with lock:
            produced.append((int(msg.offset()), msg.key(), msg.value()))  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "batch.size": 600,
                         **config})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0
    return sorted(produced)


def survivors(produced: list[Row]) -> list[Row]:
    """Kafka's promise: the latest record of each key, at its own offset, in order."""
    latest: dict[bytes | None, Row] = {}
    for row in produced:
        latest[row[1]] = row
    return sorted(latest.values())


def read_all(bootstrap: str, topic: str) -> list[Row]:
    """Every record from offset 0 to the high watermark (confluent-kafka)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-reader",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 20,
                         "auto.offset.reset": "earliest"})
    tp = TopicPartition(topic, 0)
    _low, high = consumer.get_watermark_offsets(tp, timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    rows: list[Row] = []
    deadline = time.monotonic() + 30
    while (not rows or rows[-1][0] < high - 1) and high > 0 and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.2):
            assert message.error() is None, message.error()
            rows.append((int(message.offset() or 0), message.key(), message.value()))
    consumer.close()
    return rows


def read_with_kcat(kcat: str, bootstrap: str, topic: str) -> list[Row]:
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-J"], capture_output=True, timeout=30, check=True).stdout
    rows = []
    for line in out.splitlines():
        record = json.loads(line)
        key, value = record["key"], record["payload"]
        rows.append((record["offset"], None if key is None else key.encode(),
                     None if value is None else value.encode()))
    return rows


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def segment_files(data_dir: Path, topic: str) -> list[Path]:
    return sorted((data_dir / f"{topic}-0").glob("*.log"))


def keyed_updates(count: int, keys: int, seed: int, tombstones: float = 0.0,
                  size: int = 40) -> list[tuple[bytes | None, bytes | None]]:
    rng = random.Random(seed)
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(count):
        key = f"key-{rng.randrange(keys):04d}".encode()
        value = None if rng.random() < tombstones else f"value-{i}-".encode().ljust(size, b".")
        records.append((key, value))
    return records


def filler(n: int, tag: str) -> list[tuple[bytes | None, bytes | None]]:
    """Records of distinct keys that push everything before them out of the active
    segment (the cleaner never touches the active one)."""
    return [(f"{tag}-{i}".encode(), b"f" * 600) for i in range(n)]


def test_compaction_keeps_the_latest_value_of_each_key(make_broker: BrokerFactory,
                                                       kcat: str) -> None:
    broker = make_broker(settings=FAST_CLEANER).start()
    create(broker.bootstrap, "compacted", **COMPACT, **{"delete.retention.ms": "3600000"})
    produced = produce(broker.bootstrap, "compacted",
                       keyed_updates(1500, 40, seed=1, tombstones=0.05) + filler(6, "fill"))
    expected = survivors(produced)
    before = len(segment_files(broker.data_dir, "compacted"))
    wait_for(lambda: read_all(broker.bootstrap, "compacted") == expected, what="compaction")
    # the survivors, at their own offsets, tombstones kept (delete.retention.ms is an hour)
    assert any(value is None for _o, _k, value in expected)
    assert read_with_kcat(kcat, broker.bootstrap, "compacted") == expected
    assert len(segment_files(broker.data_dir, "compacted")) < before
    # new writes go on from the old end; a restart keeps it all
    more = produce(broker.bootstrap, "compacted", [(b"key-0001", b"after")])
    assert more[0][0] == produced[-1][0] + 1
    assert broker.stop() == 0
    broker.start()
    assert read_all(broker.bootstrap, "compacted") == [*expected, *more]


def test_tombstones_go_only_after_delete_retention_ms(make_broker: BrokerFactory) -> None:
    broker = make_broker(settings=FAST_CLEANER).start()
    create(broker.bootstrap, "deletes", **COMPACT, **{"delete.retention.ms": "4000"})
    records = keyed_updates(400, 10, seed=2) + [(f"key-{k:04d}".encode(), None) for k in range(5)]
    produced = produce(broker.bootstrap, "deletes", records + filler(6, "fill"))
    done_producing = time.monotonic()
    expected = survivors(produced)
    wait_for(lambda: read_all(broker.bootstrap, "deletes") == expected, what="first clean")
    assert time.monotonic() - done_producing < 4, "the first clean came too late to tell"
    without_tombstones = [row for row in expected if row[2] is not None]

    def tombstones_gone() -> bool:
        rows = read_all(broker.bootstrap, "deletes")
        if rows != without_tombstones:
            assert rows == expected  # nothing else changes meanwhile
            return False
        return True

    wait_for(tombstones_gone, what="tombstones to go")
    assert time.monotonic() - done_producing >= 4.0


def test_idempotent_producer_state_survives_compaction(make_broker: BrokerFactory,
                                                        kcat: str) -> None:
    broker = make_broker(settings=FAST_CLEANER).start()
    create(broker.bootstrap, "idem", **COMPACT)
    producer_config = {"enable.idempotence": True}
    produced = produce(broker.bootstrap, "idem",
                       keyed_updates(600, 5, seed=3) + filler(6, "fill"), **producer_config)
    expected = survivors(produced)
    wait_for(lambda: read_all(broker.bootstrap, "idem") == expected, what="compaction")
    assert read_with_kcat(kcat, broker.bootstrap, "idem") == expected
    # each producer's last batch is kept (maybe emptied): the broker still knows it
    assert broker.stop() == 0
    broker.start()
    more = produce(broker.bootstrap, "idem", [(b"key-0000", b"later")], **producer_config)
    assert read_all(broker.bootstrap, "idem") == [*expected, *more]


def test_a_compacted_topic_refuses_records_without_a_key(bootstrap: str,
                                                         topic_name: str) -> None:
    create(bootstrap, topic_name, **{"cleanup.policy": "compact"})
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "retries": 0})
    producer.produce(topic_name, value=b"no key",
                     on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)  # a batch is refused as a whole: send the keyed record apart
    producer.produce(topic_name, key=b"k", value=b"keyed",
                     on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert [e.code() if e else None for e in errors] == [KafkaError.INVALID_RECORD, None]


def test_consumer_offsets_are_compacted_and_survive_a_restart(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(settings={**FAST_CLEANER, "offsets.topic.segment.bytes": "1024",
                                   "offsets.topic.num.partitions": "1"}).start()
    create(broker.bootstrap, "work")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "committer",
                         "enable.auto.commit": False})
    for offset in range(1, 401):
        consumer.commit(offsets=[TopicPartition("work", 0, offset)], asynchronous=False)
    consumer.close()
    directory = broker.data_dir / "__consumer_offsets-0"

    def compacted() -> bool:
        return log_bytes(directory) < 20_000

    wait_for(compacted, what="__consumer_offsets to be compacted")
    assert broker.stop() == 0
    broker.start()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "committer"})
    (committed,) = consumer.committed([TopicPartition("work", 0)], timeout=10)
    consumer.close()
    assert committed.offset == 400


@pytest.mark.parametrize("iterations", [3])
def test_a_kill_mid_clean_loses_nothing(make_broker: BrokerFactory, iterations: int) -> None:
    broker = make_broker(settings={"log.cleaner.enable": "false"}).start()
    create(broker.bootstrap, "crashy", **{**COMPACT, "segment.bytes": "32768"})
    produced = produce(broker.bootstrap, "crashy",
                       keyed_updates(12_000, 800, seed=4, tombstones=0.02, size=60)
                       + filler(60, "fill"))
    by_offset = {offset: (key, value) for offset, key, value in produced}
    expected = survivors(produced)
    directory = broker.data_dir / "crashy-0"
    broker.kill()
    # a slow cleaner, so that kills land in the middle of its rounds
    broker.settings = {**FAST_CLEANER, "log.cleaner.io.max.bytes.per.second": "300000"}
    broker.start()
    rng = random.Random(5)
    for iteration in range(iterations):
        if iteration:  # fresh dirty data for a new round
            produced += produce(broker.bootstrap, "crashy",
                                keyed_updates(3_000, 800, seed=iteration, tombstones=0.02,
                                              size=60) + filler(60, f"fill{iteration}"))
            by_offset = {offset: (key, value) for offset, key, value in produced}
            expected = survivors(produced)
        wait_for(lambda: any(directory.glob("*.cleaned")), what="a clean to start")
        time.sleep(rng.uniform(0.05, 3.0))
        broker.kill()
        broker.start()
        rows = read_all(broker.bootstrap, "crashy")
        offsets = [offset for offset, _k, _v in rows]
        assert offsets == sorted(set(offsets)), "duplicates or disorder"
        assert all(by_offset[offset] == (key, value) for offset, key, value in rows)
        assert survivors(rows) == expected, "a latest value was lost"
    broker.kill()
    broker.settings = dict(FAST_CLEANER)  # full speed: the next clean completes
    broker.start()
    wait_for(lambda: read_all(broker.bootstrap, "crashy") == expected, what="a complete clean")


def test_a_clean_stop_mid_clean_is_prompt_and_loses_nothing(make_broker: BrokerFactory) -> None:
    broker = make_broker(settings={"log.cleaner.enable": "false"}).start()
    create(broker.bootstrap, "stopping", **{**COMPACT, "segment.bytes": "32768"})
    produced = produce(broker.bootstrap, "stopping",
                       keyed_updates(6_000, 500, seed=6, size=60) + filler(60, "fill"))
    expected = survivors(produced)
    broker.kill()
    broker.settings = {**FAST_CLEANER, "log.cleaner.io.max.bytes.per.second": "100000"}
    broker.start()
    directory = broker.data_dir / "stopping-0"
    wait_for(lambda: any(directory.glob("*.cleaned")), what="a clean to start")
    started = time.monotonic()
    assert broker.stop() == 0
    assert time.monotonic() - started < 5, "the cleaner held up the shutdown"
    broker.settings = dict(FAST_CLEANER)
    broker.start()
    wait_for(lambda: read_all(broker.bootstrap, "stopping") == expected, what="a complete clean")
