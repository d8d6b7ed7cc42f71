"""Offset gaps (compaction, transaction markers, retention) and changed partition counts.

A real compacted topic is in test_compacted.py; the archive here is written by hand with
the archive primitives, to place gaps exactly: in the middle, at the start and at the end
of partitions, with commits inside each. Gaps of real transaction markers are in
test_transactions_backup.py."""

from __future__ import annotations

from pathlib import Path

import orjson
from confluent_kafka import Producer

from kcli.backup.archive import Archive, GroupOffset
from kcli.backup.partitioner import partition_for
from tests.backup.conftest import committed, create_topic, read_all
from tests.backup.fakes import FakeMessage, write_archive
from tests.cli.conftest import Kcli

P0 = [10, 11, 15, 16, 17, 30, 31, 40]


def gappy_archive(root: Path, topic: str) -> None:
    messages = {
        0: [FakeMessage(o, b"k%d" % o, b"v%d" % o, ts=1_700_000_000_000 + o) for o in P0],
        1: [],
        2: [FakeMessage(o, None, b"p2-%d" % o) for o in range(5)],
    }
    groups = [GroupOffset(name, topic, p, offset, f"meta {name}") for name, p, offset in [
        ("in-gap", 0, 12), ("exact", 0, 16), ("tail-gap", 0, 42), ("past", 0, 50),
        ("before", 0, 3), ("empty-partition", 1, 2), ("end", 2, 5), ("start", 2, 0)]]
    write_archive(root, topic, messages, {0: 45, 1: 5, 2: 5}, {0: 10, 1: 0, 2: 0}, groups)


def test_gaps_are_kept_and_commits_cross_them(kcli: Kcli, bootstrap: str, topic_name: str,
                                              tmp_path: Path) -> None:
    root = tmp_path / "gappy"
    gappy_archive(root, "gappy")
    kcli("backup", "verify", str(root)).ok()
    partition0 = Archive.open(root).manifest.topics[0].partitions[0]
    assert partition0.gaps == [(12, 15), (18, 30), (32, 40), (41, 45)]

    plan = orjson.loads(kcli("restore", str(root), "--topic", f"gappy={topic_name}",
                             "--groups", "--dry-run", "-o", "json").ok().out)
    done = kcli("restore", str(root), "--topic", f"gappy={topic_name}", "--groups",
                "-o", "json").ok()
    result = orjson.loads(done.out)
    records = read_all(bootstrap, topic_name)
    assert [r.offset for r in records if r.partition == 0] == list(range(len(P0)))
    assert [r.value for r in records if r.partition == 0] == [b"v%d" % o for o in P0]
    expected = {"in-gap": (0, 2), "exact": (0, 3), "tail-gap": (0, 8), "past": (0, 8),
                "before": (0, 0), "empty-partition": (1, 0), "end": (2, 5), "start": (2, 0)}
    for group, (partition, offset) in expected.items():
        assert committed(bootstrap, group, topic_name) == {partition: (offset, f"meta {group}")}
    rules = {c["group"]: c["rule"] for c in result["groups"]}
    assert rules == {"in-gap": 2, "exact": 2, "tail-gap": 3, "past": 3, "before": 4,
                     "empty-partition": 3, "end": 3, "start": 2}
    notes = {c["group"]: c["reason"] for c in result["groups"]}
    assert "7 records before the first copied offset 10" in notes["before"]
    assert [c["target_offset"] for c in plan["groups"]] == [c["target_offset"]
                                                            for c in result["groups"]]


def test_murmur2_matches_librdkafka(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 7)
    landed: dict[bytes, int] = {}

    def report(error: object, message: object) -> None:
        assert error is None
        landed[message.key()] = message.partition()  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                         "log_level": 0})
    keys = [b"", b"a", b"21", b"foobar", b"\xff\x00\xfe"] + [b"key-%d" % i for i in range(200)]
    for key in keys:
        producer.produce(topic_name, value=b"x", key=key, on_delivery=report)
    assert producer.flush(10) == 0
    assert {k: partition_for(k, 7) for k in keys} == landed


def test_repartition_by_key_hash(kcli: Kcli, bootstrap: str, topic_name: str,
                                 tmp_path: Path) -> None:
    source = topic_name
    create_topic(bootstrap, source, 3)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(90):
        key = None if i % 10 == 0 else b"user-%d" % (i % 17)
        producer.produce(source, value=b"%d" % i, key=key, partition=i % 3,
                         timestamp=1_700_000_000_000 + i)
    assert producer.flush(10) == 0
    from tests.backup.conftest import commit

    commit(bootstrap, "reader", {(source, p): (12, None) for p in range(3)})
    root = tmp_path / "a"
    kcli("backup", source, "--to", str(root)).ok()
    target = f"{source}-five"
    create_topic(bootstrap, target, 5)
    done = kcli("restore", str(root), "--topic", f"{source}={target}", "--repartition",
                "--groups", "-o", "json").ok()
    assert "translated by time" in done.err
    before = read_all(bootstrap, source)
    after = read_all(bootstrap, target)
    assert sorted(r.value or b"" for r in after) == sorted(r.value or b"" for r in before)
    for record in after:
        origin = next(r for r in before if r.value == record.value)
        expected = origin.partition % 5 if record.key is None else partition_for(record.key, 5)
        assert record.partition == expected
        assert (record.key, record.headers, record.timestamp) == (origin.key, origin.headers,
                                                                 origin.timestamp)
    for key in {r.key for r in before if r.key is not None}:  # per-key order is kept
        assert [r.value for r in after if r.key == key] == [
            r.value for r in sorted(before, key=lambda r: (r.partition, r.offset))
            if r.key == key]
    # rule 6, at-least-once: nothing the group had not read is behind its new position
    positions = committed(bootstrap, "reader", target)
    assert set(positions) == set(range(5))
    for record in after:
        origin = next(r for r in before if r.value == record.value)
        if origin.offset >= 12:
            assert record.offset >= positions[record.partition][0]
