"""Backup, then restore under a new name: record for record the same, group offsets on
the same records; restoring again changes nothing; verify, ls, dry run, incremental."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.backup.conftest import (
    RichTopic,
    assert_groups_point_at_same_records,
    assert_same_records,
    read_all,
    topic_configs,
    watermarks,
)
from tests.cli.conftest import Kcli


def test_round_trip(kcli: Kcli, bootstrap: str, rich_topic: RichTopic, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    source = read_all(bootstrap, rich_topic.name)
    assert {r.ts_type for r in source} == {1, 2}

    done = kcli("backup", rich_topic.name, "--to", str(archive), "-o", "json").ok()
    summary = orjson.loads(done.out)
    assert summary["records"] == len(source) == 3 * 60 - 4
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    partition0 = manifest["topics"][0]["partitions"][0]
    assert (partition0["start_offset"], partition0["first_offset"]) == (4, 4)
    assert partition0["log_append_time_records"] == 30
    topics = orjson.loads((archive / "cluster/topics.json").read_bytes())["topics"]
    assert topics[0]["configs"] == {"message.timestamp.type": "LogAppendTime"}
    assert topics[0]["partitions"] == 3

    verify = orjson.loads(kcli("backup", "verify", str(archive), "-o", "json").ok().out)
    assert (verify["ok"], verify["records"]) == (True, len(source))
    listing = orjson.loads(kcli("backup", "ls", str(archive), "-o", "json").ok().out)
    assert listing["groups"] == 3
    assert listing["codec"] == "zstd"  # the name --codec takes
    assert [p["records"] for p in listing["topics"][0]["offsets"]] == [56, 60, 60]

    target = f"{rich_topic.name}-restored"
    plan = kcli("restore", str(archive), "--topic", f"{rich_topic.name}={target}", "--groups",
                "--dry-run", "-o", "json").ok()
    planned = orjson.loads(plan.out)
    assert planned["topics"][0]["action"] == "create"
    assert target not in (kcli("topic", "list", "-o", "json").ok().text)

    restored = kcli("restore", str(archive), "--topic", f"{rich_topic.name}={target}",
                    "--groups", "-o", "json").ok()
    result = orjson.loads(restored.out)
    assert result["topics"][0]["copied"] == len(source)
    assert "LogAppendTime" in restored.err  # the warning: that type cannot be restored
    copied = read_all(bootstrap, target)
    assert_same_records(source, copied)
    assert {r.ts_type for r in copied} == {1}
    assert next(r.offset for r in copied if r.partition == 0) == 0
    # the deferred config is applied once the records are in
    assert topic_configs(bootstrap, target)["message.timestamp.type"] == "LogAppendTime"
    assert_groups_point_at_same_records(bootstrap, rich_topic, bootstrap, target, source,
                                        copied)
    # the dry run predicted the offsets the real run committed
    predicted = {(c["group"], c["partition"]): c["target_offset"] for c in planned["groups"]}
    actual = {(c["group"], c["partition"]): c["target_offset"] for c in result["groups"]}
    assert predicted == actual

    again = orjson.loads(kcli("restore", str(archive), "--topic",
                              f"{rich_topic.name}={target}", "--groups", "-o", "json").ok().out)
    assert again["topics"][0]["action"] == "done"
    assert again["topics"][0]["copied"] == 0
    assert {c["action"] for c in again["groups"]} == {"unchanged"}
    assert watermarks(bootstrap, target) == {p: (0, len(rs)) for p, rs in
                                             enumerate([[r for r in copied if r.partition == p]
                                                        for p in range(3)])}


def test_incremental_and_until(kcli: Kcli, bootstrap: str, topic_name: str,
                               tmp_path: Path) -> None:
    from confluent_kafka import Producer

    from tests.backup.conftest import T0, create_topic

    create_topic(bootstrap, topic_name, 2)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})

    def produce(start: int, stop: int) -> None:
        for i in range(start, stop):
            producer.produce(topic_name, value=b"v%d" % i, key=b"k%d" % i, partition=i % 2,
                             timestamp=T0 + i * 1000)
        assert producer.flush(10) == 0

    produce(0, 40)
    archive = tmp_path / "a"
    until = "2023-11-14T22:13:40+00:00"  # T0 + 20 s
    kcli("backup", topic_name, "--to", str(archive), "--until", until).ok()
    listing = orjson.loads(kcli("backup", "ls", str(archive), "-o", "json").ok().out)
    assert listing["records"] == 20
    kcli("backup", topic_name, "--to", str(archive)).fails(2, "already holds a backup")
    produce(40, 50)
    kcli("backup", "--to", str(archive), "--incremental").ok()  # the archive's topics
    listing = orjson.loads(kcli("backup", "ls", str(archive), "-o", "json").ok().out)
    assert (listing["runs"], listing["records"]) == (2, 50)
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    assert manifest["runs"][1]["parent_sha256"] is not None
    assert (archive / "cluster/run-2/groups.avro").exists()
    kcli("backup", "verify", str(archive)).ok()

    target = f"{topic_name}-r"
    kcli("restore", str(archive), "--topic", f"{topic_name}={target}").ok()
    assert len(read_all(bootstrap, target)) == 50
    produce(50, 60)
    kcli("backup", "--to", str(archive), "--incremental").ok()
    again = orjson.loads(kcli("restore", str(archive), "--topic", f"{topic_name}={target}",
                              "-o", "json").ok().out)
    assert (again["topics"][0]["action"], again["topics"][0]["copied"]) == ("resume", 10)
    assert_same_records(read_all(bootstrap, topic_name), read_all(bootstrap, target))
    verify = orjson.loads(kcli("backup", "verify", str(archive), "-o", "json").ok().out)
    assert verify["warnings"] == []  # earlier runs' cluster files are part of the archive

    # the target deleted: its checkpoint no longer applies, everything is restored again
    kcli("topic", "delete", target, "--yes").ok()
    fresh = kcli("restore", str(archive), "--topic", f"{topic_name}={target}", "-o", "json").ok()
    assert orjson.loads(fresh.out)["topics"][0]["copied"] == 60
    assert "checkpoint" in fresh.err
    assert_same_records(read_all(bootstrap, topic_name), read_all(bootstrap, target))


def test_snappy_archive(kcli: Kcli, bootstrap: str, rich_topic: RichTopic,
                        tmp_path: Path) -> None:
    """--codec snappy writes Avro's standard snappy blocks: a generic Avro reader opens
    the segments, verify checks them and a restore copies every record."""
    import fastavro

    archive = tmp_path / "snappy"
    source = read_all(bootstrap, rich_topic.name)
    kcli("backup", rich_topic.name, "--to", str(archive), "--codec", "snappy").ok()
    segments = sorted((archive / "topics").rglob("*.avro"))
    assert segments
    total = 0
    for path in segments:
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            assert reader.codec == "snappy"
            total += sum(1 for _ in reader)
    assert total == len(source)
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    assert manifest["runs"][0]["codec"] == "snappy"
    verify = orjson.loads(kcli("backup", "verify", str(archive), "-o", "json").ok().out)
    assert (verify["ok"], verify["records"]) == (True, len(source))
    target = f"{rich_topic.name}-snappy"
    kcli("restore", str(archive), "--topic", f"{rich_topic.name}={target}").ok()
    copied = read_all(bootstrap, target)
    assert_same_records(source, copied)
