"""Transactions with confluent-kafka (librdkafka) against the session broker: commit
and abort, read_committed against read_uncommitted, fencing, offsets sent to a
transaction, the last stable offset, and kcat reading committed data."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import kcli_env


def txn_producer(bootstrap: str, transactional_id: str | None = None, **extra: object
                 ) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": transactional_id or f"txn-{uuid.uuid4().hex[:8]}",
                         **extra})
    producer.init_transactions(10)
    return producer


def create(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def read(bootstrap: str, topic: str, isolation: str, partitions: int = 1,
         ) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record a consumer at ``isolation`` gets to the end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen: list[tuple[int, bytes | None]] = []
        ended: set[int] = set()
        for _ in range(200):
            for message in consumer.consume(100, 0.2):
                if message.error() is None:
                    seen.append((message.offset(), message.value()))
                elif message.error().code() == -191:  # _PARTITION_EOF
                    ended.add(message.partition())
                else:
                    raise KafkaException(message.error())
            if len(ended) == partitions:
                return seen
        raise AssertionError(f"no end of {topic} at {isolation}: {seen}")
    finally:
        consumer.close()


def log_end(bootstrap: str, topic: str, partitions: int) -> int:
    """The sum of a topic's high watermarks: records and markers, committed or not."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


@pytest.fixture
def topic(bootstrap: str, topic_name: str) -> str:
    create(bootstrap, topic_name)
    return topic_name


def test_commit_and_abort(bootstrap: str, topic: str) -> None:
    producer = txn_producer(bootstrap)
    producer.begin_transaction()
    for value in (b"c1", b"c2"):
        producer.produce(topic, value)
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"a1")
    producer.flush(10)
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"c3")
    producer.commit_transaction(10)

    committed = read(bootstrap, topic, "read_committed")
    assert [v for _, v in committed] == [b"c1", b"c2", b"c3"]
    everything = read(bootstrap, topic, "read_uncommitted")
    assert [v for _, v in everything] == [b"c1", b"c2", b"a1", b"c3"]
    # each marker takes an offset: c1 c2 COMMIT a1 ABORT c3 COMMIT
    assert [o for o, _ in everything] == [0, 1, 3, 5]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "isolation.level": "read_committed"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), 10) == (0, 7)
    finally:
        consumer.close()


def test_open_transaction_holds_the_last_stable_offset(bootstrap: str, topic: str) -> None:
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, b"before")
    plain.flush(10)
    producer = txn_producer(bootstrap)
    producer.begin_transaction()
    producer.produce(topic, b"open")
    producer.flush(10)
    plain.produce(topic, b"after")
    plain.flush(10)
    # read_committed stops where the open transaction begins; read_uncommitted does not
    assert [v for _, v in read(bootstrap, topic, "read_committed")] == [b"before"]
    assert [v for _, v in read(bootstrap, topic, "read_uncommitted")] == [
        b"before", b"open", b"after"]
    for isolation, latest in (("read_committed", 1), ("read_uncommitted", 3)):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                             "isolation.level": isolation})
        try:
            assert consumer.get_watermark_offsets(TopicPartition(topic, 0), 10)[1] == latest
        finally:
            consumer.close()
    producer.commit_transaction(10)
    assert [v for _, v in read(bootstrap, topic, "read_committed")] == [
        b"before", b"open", b"after"]


def test_a_second_instance_fences_the_first(bootstrap: str, topic: str) -> None:
    transactional_id = f"fence-{uuid.uuid4().hex[:8]}"
    first = txn_producer(bootstrap, transactional_id)
    first.begin_transaction()
    first.produce(topic, b"zombie")
    first.flush(10)
    second = txn_producer(bootstrap, transactional_id)  # aborts the first's transaction
    second.begin_transaction()
    second.produce(topic, b"live")
    second.commit_transaction(10)

    def late_commit() -> None:
        first.produce(topic, b"late")
        first.commit_transaction(10)

    with pytest.raises(KafkaException) as raised:
        late_commit()
    error = raised.value.args[0]
    assert error.fatal() or error.txn_requires_abort(), error
    assert [v for _, v in read(bootstrap, topic, "read_committed")] == [b"live"]
    assert b"zombie" in [v for _, v in read(bootstrap, topic, "read_uncommitted")]


def test_offsets_sent_to_a_transaction(bootstrap: str, topic_name: str) -> None:
    source, sink, group = f"{topic_name}-in", f"{topic_name}-out", f"g-{topic_name}"
    create(bootstrap, source)
    create(bootstrap, sink)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(source, str(i).encode())
    plain.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    producer = txn_producer(bootstrap)
    try:
        consumer.subscribe([source])
        taken: list[bytes] = []
        while len(taken) < 4:
            taken += [m.value() for m in consumer.consume(4 - len(taken), 5)
                      if m.error() is None]
        producer.begin_transaction()
        for value in taken:
            producer.produce(sink, value + b"!")
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, 4)], consumer.consumer_group_metadata(), 10)
        producer.abort_transaction(10)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset < 0
        producer.begin_transaction()
        for value in taken:
            producer.produce(sink, value + b"!")
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, 4)], consumer.consumer_group_metadata(), 10)
        producer.commit_transaction(10)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset == 4
    finally:
        consumer.close()
    assert [v for _, v in read(bootstrap, sink, "read_committed")] == [
        b"0!", b"1!", b"2!", b"3!"]


def test_kcat_reads_committed(bootstrap: str, topic: str, kcat: str) -> None:
    producer = txn_producer(bootstrap)
    producer.begin_transaction()
    producer.produce(topic, b"kept")
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"dropped")
    producer.flush(10)
    producer.abort_transaction(10)
    out = {}
    for isolation in ("read_committed", "read_uncommitted"):
        out[isolation] = subprocess.run(
            [kcat, "-C", "-b", bootstrap, "-t", topic, "-e", "-q",
             "-X", f"isolation.level={isolation}"],
            capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert out == {"read_committed": ["kept"], "read_uncommitted": ["kept", "dropped"]}


FAST_TIMEOUTS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"}


def test_a_transaction_past_its_timeout_is_aborted(make_broker: object, topic_name: str
                                                   ) -> None:
    broker = make_broker("timeouts", settings=FAST_TIMEOUTS).start()  # type: ignore[operator]
    create(broker.bootstrap, topic_name)
    producer = txn_producer(broker.bootstrap, **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic_name, b"abandoned")
    producer.flush(10)
    deadline = time.monotonic() + 15
    while True:  # the coordinator aborts it: the last stable offset moves past the marker
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                             "isolation.level": "read_committed"})
        try:
            latest = consumer.get_watermark_offsets(TopicPartition(topic_name, 0), 10)[1]
        finally:
            consumer.close()
        if latest == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert latest == 2
    assert read(broker.bootstrap, topic_name, "read_committed") == []
    with pytest.raises(KafkaException):
        producer.commit_transaction(10)  # fenced by the abort's epoch bump
    assert "past its transaction.timeout.ms" in broker.log()


def test_transactions_survive_a_restart(make_broker: object, topic_name: str) -> None:
    broker = make_broker("restart").start()  # type: ignore[operator]
    create(broker.bootstrap, topic_name)
    transactional_id = f"restart-{uuid.uuid4().hex[:8]}"
    producer = txn_producer(broker.bootstrap, transactional_id)
    producer.begin_transaction()
    producer.produce(topic_name, b"aborted")
    producer.flush(10)
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topic_name, b"open")
    producer.flush(10)
    producer = None  # type: ignore[assignment]
    for stop in ("stop", "kill"):  # a clean stop keeps a snapshot; a kill rebuilds from the log
        getattr(broker, stop)()
        broker.start()
        assert read(broker.bootstrap, topic_name, "read_committed") == []
        assert [v for _, v in read(broker.bootstrap, topic_name, "read_uncommitted")] == [
            b"aborted", b"open"]
    index = list((broker.data_dir).glob(f"{topic_name}-0/*.txnindex"))
    assert len(index) == 1
    assert index[0].stat().st_size == 34
    # the same id, restarted: the open transaction is aborted, the new one commits
    producer = txn_producer(broker.bootstrap, transactional_id)
    producer.begin_transaction()
    producer.produce(topic_name, b"after")
    producer.commit_transaction(10)
    assert [v for _, v in read(broker.bootstrap, topic_name, "read_committed")] == [b"after"]


def test_consume_transform_produce_killed_and_restarted_is_exactly_once(
        bootstrap: str, topic_name: str) -> None:
    """An EOS application (tests/broker/txn/ctp_app.py) SIGKILLed mid-transaction and
    restarted, again and again: each input record is in the output exactly once."""
    source, sink, group = f"{topic_name}-in", f"{topic_name}-out", f"ctp-{topic_name}"
    create(bootstrap, source, 2)
    create(bootstrap, sink, 2)
    plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    count = 6_000  # 120 transactions of at least 10 ms: kills land mid-run
    for i in range(count):
        plain.produce(source, b"value-%05d" % i, key=b"%d" % i, partition=i % 2)
    assert plain.flush(10) == 0
    command = [sys.executable, "-m", "tests.broker.txn.ctp_app", bootstrap, source, sink,
               group]
    chance = random.Random()
    killed = 0
    for _ in range(3):
        before = log_end(bootstrap, sink, 2)
        process = subprocess.Popen(command, env=kcli_env(), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while log_end(bootstrap, sink, 2) == before and process.poll() is None:
            assert time.monotonic() < deadline, "the application wrote nothing"
            time.sleep(0.02)
        time.sleep(chance.uniform(0, 0.1))
        if process.poll() is None:
            killed += 1
        process.send_signal(signal.SIGKILL)
        _out, err = process.communicate(timeout=10)
        assert process.returncode in (0, -signal.SIGKILL), err
    assert killed >= 2
    final = subprocess.run(command, env=kcli_env(), capture_output=True, timeout=120,
                           check=False)
    assert final.returncode == 0, final.stderr
    output = sorted(v for _, v in read(bootstrap, sink, "read_committed", 2))
    assert output == sorted(b"VALUE-%05d" % i for i in range(count))
    assert len(read(bootstrap, sink, "read_uncommitted", 2)) >= count
