"""`migrate --exactly-once`, killed with SIGKILL at random points and rerun: the
target's committed records are the source's, each exactly once, in order, per
partition; what the killed runs sent after their last commit is aborted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.backup.conftest import create_topic
from tests.cli.conftest import Kcli
from tests.support.broker import kcli_command

PARTITIONS = 3
RECORDS = 100_000
KILLS = 4


def read(bootstrap: str, topic: str, isolation: str) -> dict[int, list[tuple[bytes, bytes]]]:
    """(key, value) of every record per partition, as a consumer at ``isolation`` sees it."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-check",
                         "isolation.level": isolation, "enable.partition.eof": True,
                         "enable.auto.commit": False, "log_level": 0})
    out: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        ended: set[int] = set()
        deadline = time.monotonic() + 60
        while len(ended) < PARTITIONS:
            assert time.monotonic() < deadline, f"{topic} did not end"
            for m in consumer.consume(10_000, 0.2):
                error = m.error()
                if error is None:
                    out[m.partition()].append((m.key(), m.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(m.partition())
        return out
    finally:
        consumer.close()


def written(bootstrap: str, topic: str) -> int:
    """Offsets the target's partitions hold, records and markers, committed or not."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-marks",
                         "log_level": 0})
    try:
        if topic not in consumer.list_topics(timeout=10).topics:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                   for p in range(PARTITIONS))
    finally:
        consumer.close()


def test_killed_at_random_points_copies_each_record_exactly_once(
        kcli: Kcli, bootstrap: str, topic_name: str, cli_env: dict[str, str]) -> None:
    source, target = topic_name, f"{topic_name}-eos"
    create_topic(bootstrap, source, PARTITIONS)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 0})
    for i in range(RECORDS):
        producer.produce(source, b"v-%07d-" % i + b"x" * 100, key=b"k-%d" % i,
                         partition=i % PARTITIONS)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    seed = int.from_bytes(os.urandom(4), "big")
    chance = random.Random(seed)
    command = kcli_command("-b", bootstrap, "migrate", source, "--to", bootstrap,
                           "--rename", f"{source}={target}", "--exactly-once", "-q")
    killed_running = 0
    for _ in range(KILLS):
        before = written(bootstrap, target)
        process = subprocess.Popen(command, env=cli_env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while written(bootstrap, target) == before and process.poll() is None:
            assert time.monotonic() < deadline, "the run wrote nothing"
            time.sleep(0.02)
        time.sleep(chance.uniform(0, 0.08))  # somewhere in the copy, in or between commits
        if process.poll() is None:
            killed_running += 1
        process.send_signal(signal.SIGKILL)
        _out, err = process.communicate(timeout=10)
        assert process.returncode in (0, -signal.SIGKILL), err
    assert killed_running >= 3, f"the runs ended before the kills (seed {seed})"

    done = kcli("migrate", source, "--to", bootstrap, "--rename", f"{source}={target}",
                "--exactly-once", "-o", "json").ok()
    status = orjson.loads(done.out)["topics"][0]
    assert status["total"] == RECORDS, (seed, status)

    expected = read(bootstrap, source, "read_committed")
    assert read(bootstrap, target, "read_committed") == expected, f"seed {seed}"
    everything = read(bootstrap, target, "read_uncommitted")
    assert sum(map(len, everything.values())) >= RECORDS
    print(f"seed {seed}: {killed_running} runs killed mid-copy; the target holds "
          f"{sum(map(len, everything.values())) - RECORDS} aborted records")
    # a plain rerun finds the copy complete and writes nothing
    again = orjson.loads(kcli("migrate", source, "--to", bootstrap, "--rename",
                              f"{source}={target}", "--exactly-once", "-o", "json"
                              ).ok().out)["topics"][0]
    assert (again["copied"], again["total"]) == (0, RECORDS)
    assert read(bootstrap, target, "read_committed") == expected
