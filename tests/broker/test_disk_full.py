"""A full disk under a real broker: failed appends leave nothing behind, and once space is
freed the broker takes writes again, every acknowledged record once, offsets dense.

The broker's data dir is a small tmpfs (we run as root), every batch writes index
entries (index.interval.bytes=0), and the disk is filled with a file next to the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kcli.broker.broker as broker_module
from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.cluster.checkpoint import read_checkpoint
from kcli.broker.log import Record, encode_batch
from tests.support.broker import BrokerProcess

BrokerFactory = Callable[..., BrokerProcess]
TOPIC = "full"


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                   check=True, capture_output=True)
    try:
        yield directory
    finally:
        for args in (["umount", str(directory)], ["umount", "-l", str(directory)]):
            if subprocess.run(args, check=False, capture_output=True).returncode == 0:
                break


def _write_until_full(fd: int, chunk: bytes) -> None:
    try:
        while True:
            os.write(fd, chunk)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise


def fill(directory: Path) -> Path:
    """Write a file until the disk is full, to the last partial page; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        _write_until_full(fd, b"\0" * 65536)
        _write_until_full(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


def free(filler: Path, nbytes: int) -> None:
    os.truncate(filler, max(filler.stat().st_size - nbytes, 0))


class Deliveries:
    def __init__(self) -> None:
        self.acked: list[bytes] = []
        self.failed: list[tuple[bytes, int]] = []
        self._lock = threading.Lock()

    def __call__(self, err: KafkaError | None, msg: object) -> None:
        value: bytes = msg.value()  # type: ignore[attr-defined]
        with self._lock:
            if err is None:
                self.acked.append(value)
            else:
                self.failed.append((value, err.code()))


def produce(producer: Producer, deliveries: Deliveries, prefix: str, count: int) -> list[bytes]:
    values = [f"{prefix}-{i:04d}-".encode() + b"x" * 300 for i in range(count)]
    for value in values:
        producer.produce(TOPIC, value=value, partition=0, on_delivery=deliveries)
        producer.poll(0)
    return values


def read_all(bootstrap: str) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 20})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        consumer.assign([TopicPartition(TOPIC, 0, low)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 30
        while (not out or out[-1][0] < high - 1) and high > low and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                assert message.error() is None, message.error()
                out.append((message.offset(), message.value()))
        return out
    finally:
        consumer.close()


def check_log(records: list[tuple[int, bytes]], acked: list[bytes], failed: list[bytes]) -> None:
    offsets = [offset for offset, _ in records]
    assert offsets == list(range(len(records))), "offsets are not dense from 0"
    values = [value for _, value in records]
    assert len(set(values)) == len(values), "a record is stored twice"
    assert set(values) == set(acked), "the log is not exactly the acknowledged records"
    assert not set(failed) & set(values)


def test_a_full_disk_fails_appends_cleanly_and_recovers(
    tmp_path: Path, make_broker: BrokerFactory
) -> None:
    broker: BrokerProcess | None = None
    with tmpfs(tmp_path / "disk", "8m") as disk:
        try:
            broker = make_broker(settings={"log.index.interval.bytes": "0"})
            broker.data_dir = disk  # its own log file stays outside the tmpfs
            broker.log_path = tmp_path / "broker.log"
            broker.start()
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic(TOPIC, 1, 1, config={
                "index.interval.bytes": "0", "segment.bytes": "65536"})])[TOPIC].result(10)
            deliveries = Deliveries()
            acks_all = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
            no_retries = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                                   "retries": 0, "linger.ms": 0})
            produce(acks_all, deliveries, "before", 50)
            assert acks_all.flush(10) == 0
            assert len(deliveries.acked) == 50
            read_all(broker.bootstrap)  # the group coordinator's topic exists before the fill

            filler = fill(disk)
            # Without retries each failure is reported: KAFKA_STORAGE_ERROR in the Produce
            # response (not a dropped connection or a timeout).
            refused = produce(no_retries, deliveries, "refused", 40)
            assert no_retries.flush(20) == 0
            storage_errors = [v for v, code in deliveries.failed
                              if code == KafkaError.KAFKA_STORAGE_ERROR]
            assert storage_errors, deliveries.failed
            assert {code for _, code in deliveries.failed} == {KafkaError.KAFKA_STORAGE_ERROR}
            # The default producer retries a storage error until space comes back.
            retried = produce(acks_all, deliveries, "retried", 20)
            acks_all.poll(2.0)
            reads_while_full = read_all(broker.bootstrap)  # reads go on meanwhile
            check_log(reads_while_full, deliveries.acked, storage_errors)

            free(filler, 256 * 1024)
            assert acks_all.flush(30) == 0
            assert set(retried) <= set(deliveries.acked)
            produce(acks_all, deliveries, "after", 30)
            assert acks_all.flush(30) == 0
            failed = [v for v, _ in deliveries.failed]
            assert set(refused) == set(failed) | (set(refused) & set(deliveries.acked))
            check_log(read_all(broker.bootstrap), deliveries.acked, failed)

            assert broker.stop() == 0, broker.log()
            broker.start()  # a restart keeps every acknowledged record, nothing else
            check_log(read_all(broker.bootstrap), deliveries.acked, failed)
            assert "Traceback" not in broker.log()
        finally:
            if broker is not None:
                broker.kill()


def test_delete_records_and_creates_on_a_full_disk_are_storage_errors(
    tmp_path: Path, make_broker: BrokerFactory
) -> None:
    broker: BrokerProcess | None = None
    with tmpfs(tmp_path / "disk", "8m") as disk:
        try:
            broker = make_broker()
            broker.data_dir = disk
            broker.log_path = tmp_path / "broker.log"
            broker.start()
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(10)
            deliveries = Deliveries()
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            produce(producer, deliveries, "kept", 20)
            assert producer.flush(10) == 0
            filler = fill(disk)
            future = admin.delete_records([TopicPartition(TOPIC, 0, 10)])
            with pytest.raises(KafkaException) as refused:
                next(iter(future.values())).result(10)
            assert refused.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
            assert [offset for offset, _ in read_all(broker.bootstrap)] == list(range(20))
            # nor does a topic the metadata cannot record drop the connection
            created = admin.create_topics([NewTopic("later", 1, 1)])["later"]
            with pytest.raises(KafkaException) as refused:
                created.result(10)
            assert refused.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR

            free(filler, 256 * 1024)
            future = admin.delete_records([TopicPartition(TOPIC, 0, 10)])
            assert next(iter(future.values())).result(10).low_watermark == 10
            assert broker.stop() == 0, broker.log()
            broker.start()  # the new start was recorded, not only held in memory
            assert [offset for offset, _ in read_all(broker.bootstrap)] == list(range(10, 20))
            assert "Traceback" not in broker.log()
        finally:
            if broker is not None:
                broker.kill()


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root", pytrace=False)


def test_a_high_watermark_checkpoint_the_disk_refuses_is_a_warning_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Broker(BrokerConfig(node_id=1, data_dir=tmp_path / "data"))
    broker.open(9092)
    try:
        asyncio.run(broker.create_topic("t", 1, 1, {}))
        broker.partitions[("t", 0)].append_client_batch(
            encode_batch([Record(0, 1_700_000_000_000, None, b"v", [])]), 1)

        def disk_full(directory: Path, high_watermarks: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as patched:
            patched.setattr(broker_module, "write_checkpoint", disk_full)
            broker._checkpoint_high_watermarks()  # no traceback from the timer
        assert "high watermark checkpoint not written: [Errno 28]" in caplog.text
        broker._checkpoint_high_watermarks()  # retried, not taken as written
        assert read_checkpoint(broker.data_dir) == {("t", 0): 1}
    finally:
        broker.close()
