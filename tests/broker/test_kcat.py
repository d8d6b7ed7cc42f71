"""kcat (librdkafka 2.x C client) against the embedded broker."""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka.admin import AdminClient, NewTopic


def run_kcat(kcat: str, *args: str, stdin: bytes | None = None, timeout: float = 30) -> bytes:
    result = subprocess.run([kcat, *args], input=stdin, capture_output=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=configs)])
    futures[name].result(10)


def test_metadata_lists_broker_and_topic(kcat: str, bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 3)
    listing = json.loads(run_kcat(kcat, "-b", bootstrap, "-L", "-J"))
    assert [b["id"] for b in listing["brokers"]] == [1]
    topic = next(t for t in listing["topics"] if t["topic"] == topic_name)
    assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == 1 for p in topic["partitions"])


def test_produce_with_keys_and_headers_then_consume_exactly(kcat: str, bootstrap: str,
                                                            topic_name: str) -> None:
    create_topic(bootstrap, topic_name)
    lines = [f"key-{i}:value {i} with ünïcode".encode() for i in range(500)]
    run_kcat(kcat, "-b", bootstrap, "-P", "-t", topic_name, "-K", ":", "-H", "source=kcat",
             "-H", "dup=1", "-H", "dup=2", stdin=b"\n".join(lines) + b"\n")
    out = run_kcat(kcat, "-b", bootstrap, "-C", "-t", topic_name, "-o", "beginning", "-e", "-J")
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["key"], r["payload"]) for r in records] == [
        tuple(line.decode().split(":", 1)) for line in lines
    ]
    assert [r["offset"] for r in records] == list(range(500))
    assert records[0]["headers"] == ["source", "kcat", "dup", "1", "dup", "2"]


def test_offsets_by_timestamp(kcat: str, bootstrap: str, topic_name: str) -> None:
    from confluent_kafka import Producer

    create_topic(bootstrap, topic_name)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    base = int(time.time() * 1000) - 100_000
    for i in range(10):
        producer.produce(topic_name, value=str(i).encode(), timestamp=base + i * 1000)
        producer.flush(10)  # one batch per record, so the lookup must go inside the log
    for i, expected in ((0, 0), (3, 3), (3.5, 4), (9, 9)):
        out = run_kcat(kcat, "-b", bootstrap, "-Q", "-t", f"{topic_name}:0:{int(base + i * 1000)}")
        assert out.decode().split()[-1] == str(expected), out
    # after the last record: no offset (-1), as Kafka answers
    out = run_kcat(kcat, "-b", bootstrap, "-Q", "-t", f"{topic_name}:0:{base + 60_000}")
    assert out.decode().split()[-1] == "-1"
