"""Interrupted runs (SIGKILL at some point after they started writing) resume without
duplicates, and never leave a manifest that names a half-written file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.backup.conftest import (
    Rec,
    assert_same_records,
    create_topic,
    read_all,
)
from tests.cli.conftest import Kcli
from tests.support.broker import kcli_command

PER_PARTITION = 4000


def fill(bootstrap: str, topic: str, per_partition: int, size: int) -> str:
    create_topic(bootstrap, topic, 3)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0, "linger.ms": 20})
    for i in range(3 * per_partition):
        producer.produce(topic, value=os.urandom(size) + b"%d" % i, key=b"k%d" % i,
                         partition=i % 3, headers=[("n", b"%d" % i)] if i % 5 else None)
    assert producer.flush(30) == 0
    return topic


@pytest.fixture
def big_topic(bootstrap: str, topic_name: str) -> str:
    return fill(bootstrap, topic_name, PER_PARTITION, 200)


def kill_when(args: list[str], env: dict[str, str], ready: object, what: str,
              timeout: float = 60) -> None:
    """Start kcli, SIGKILL it as soon as ``ready()`` is true; fail if it finished first."""
    process = subprocess.Popen(kcli_command(*args), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not ready():  # type: ignore[operator]
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"kcli finished ({process.returncode}) before {what}: {err}")
            assert time.monotonic() < deadline, f"never saw {what}"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
        if process.stderr:
            process.stderr.close()


def kill_restore(args: list[str], env: dict[str, str], bootstrap: str, target: str,
                 partitions: int) -> int:
    """Run a restore, SIGKILL it once 1000 records are in ``target``; returns how many
    records the target holds once what was in flight has landed (or not)."""
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "w", "log_level": 0})

    def written() -> int:
        total = 0
        for p in range(partitions):
            try:
                total += watcher.get_watermark_offsets(TopicPartition(target, p), 1)[1]
            except KafkaException:  # not created yet
                return 0
        return total

    # A producer may queue the whole archive at once, and the socket deliver all of it
    # after the kill; on a busy machine the kill then interrupts nothing. A small queue
    # keeps most records unsent until acknowledged space frees up.
    bounded = [*args, "-X", "queue.buffering.max.kbytes=256"]
    try:
        kill_when(bounded, env, lambda: written() > 1000, "1000 restored records")
        time.sleep(0.2)  # in flight when killed: landed or not, the rerun must cope
        return written()
    finally:
        watcher.close()


def durable_segments(archive: Path) -> int:
    try:
        checkpoint = orjson.loads((archive / "checkpoint.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0
    return sum(len(p["segments"]) for t in checkpoint["topics"] for p in t["partitions"])


def test_killed_backup_resumes_without_duplicates(kcli: Kcli, bootstrap: str, big_topic: str,
                                                  tmp_path: Path, cli_env: dict[str, str]
                                                  ) -> None:
    archive = tmp_path / "archive"
    args = ["-b", bootstrap, "backup", big_topic, "--to", str(archive),
            "--segment-size", "16KB", "--codec", "deflate"]
    kill_when(args, cli_env, lambda: durable_segments(archive) >= 6, "6 durable segments")
    assert not (archive / "manifest.json").exists()
    kcli("backup", "ls", str(archive)).fails(1, "unfinished backup")
    # a different command must not silently take over the unfinished run
    kcli("backup", big_topic, "other", "--to", str(archive)).fails(2, "unfinished backup run")
    done = kcli(*args[2:]).ok()
    assert "resuming run 1" in done.err
    kcli("backup", "verify", str(archive)).ok()
    assert not (archive / "checkpoint.json").exists()
    assert not list(archive.rglob("*.tmp"))

    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    offsets = []
    import fastavro

    for partition in manifest["topics"][0]["partitions"]:
        seen = []
        for segment in partition["segments"]:
            with open(archive / segment["path"], "rb") as f:
                seen.extend(r["offset"] for r in fastavro.reader(f))
        assert seen == list(range(PER_PARTITION)), "every record exactly once, in order"
        offsets.append(len(seen))
    assert offsets == [PER_PARTITION] * 3

    target = f"{big_topic}-r"
    kcli("restore", str(archive), "--topic", f"{big_topic}={target}").ok()
    assert_same_records(read_all(bootstrap, big_topic), read_all(bootstrap, target))


def test_killed_restore_resumes_without_duplicates(kcli: Kcli, bootstrap: str, topic_name: str,
                                                   tmp_path: Path, cli_env: dict[str, str]
                                                   ) -> None:
    per_partition = 10_000
    big_topic = fill(bootstrap, topic_name, per_partition, 1000)
    archive = tmp_path / "archive"
    kcli("backup", big_topic, "--to", str(archive), "--segment-size", "1MB").ok()
    target = f"{big_topic}-r"
    args = ["-b", bootstrap, "restore", str(archive), "--topic", f"{big_topic}={target}"]
    before = kill_restore(args, cli_env, bootstrap, target, 3)
    assert before < 3 * per_partition
    done = orjson.loads(kcli(*args[2:], "-o", "json").ok().out)
    topic = done["topics"][0]
    assert topic["action"] == "resume"
    # no checkpoint was due before the kill: every record found in the target after the
    # first checkpoint was matched against the archive, the rest copied
    assert topic["already_there"] == before
    assert topic["copied"] == 3 * per_partition - before
    source: list[Rec] = read_all(bootstrap, big_topic)
    assert_same_records(source, read_all(bootstrap, target))


def test_killed_repartitioning_restore_resumes(kcli: Kcli, bootstrap: str, topic_name: str,
                                               tmp_path: Path, cli_env: dict[str, str]
                                               ) -> None:
    from kcli.backup.partitioner import partition_for
    from tests.backup.conftest import create_topic

    per_partition = 10_000
    source = fill(bootstrap, topic_name, per_partition, 1000)
    archive = tmp_path / "archive"
    kcli("backup", source, "--to", str(archive)).ok()
    target = f"{source}-five"
    create_topic(bootstrap, target, 5)
    args = ["-b", bootstrap, "restore", str(archive), "--topic", f"{source}={target}",
            "--repartition"]
    before = kill_restore(args, cli_env, bootstrap, target, 5)
    assert before < 3 * per_partition
    done = orjson.loads(kcli(*args[2:], "-o", "json").ok().out)
    assert done["topics"][0]["already_there"] == before
    records = read_all(bootstrap, target)
    assert len(records) == 3 * per_partition
    assert len({r.value for r in records}) == 3 * per_partition  # no duplicates
    assert all(r.partition == partition_for(r.key or b"", 5) for r in records)


def test_killed_incremental_run_keeps_the_last_manifest(kcli: Kcli, bootstrap: str,
                                                        big_topic: str, tmp_path: Path,
                                                        cli_env: dict[str, str]) -> None:
    import hashlib

    import fastavro

    archive = tmp_path / "archive"
    options = ["--to", str(archive), "--segment-size", "16KB", "--codec", "deflate"]
    kcli("backup", big_topic, *options).ok()
    args = ["-b", bootstrap, "backup", "--incremental", *options]  # the archive's topics
    first = (archive / "manifest.json").read_bytes()
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0, "linger.ms": 20})
    for i in range(3 * PER_PARTITION):
        producer.produce(big_topic, value=os.urandom(200), key=b"later %d" % i,
                         partition=i % 3)
    assert producer.flush(30) == 0

    kill_when(args, cli_env, lambda: durable_segments(archive) >= 6, "6 durable segments")
    # the committed archive is still exactly run 1, whole and restorable
    assert hashlib.sha256((archive / "manifest.json").read_bytes()).digest() == \
        hashlib.sha256(first).digest()
    listing = orjson.loads(kcli("backup", "ls", str(archive), "-o", "json").ok().out)
    assert (listing["runs"], listing["records"], listing["unfinished_run"]) == (
        1, 3 * PER_PARTITION, True)
    kcli("backup", "verify", str(archive)).ok()
    plan = orjson.loads(kcli("restore", str(archive), "--topic", f"{big_topic}=new",
                             "--dry-run", "-o", "json").ok().out)
    assert plan["topics"][0]["to_copy"] == 3 * PER_PARTITION

    done = kcli(*args[2:]).ok()
    assert "resuming run 2" in done.err
    verify = orjson.loads(kcli("backup", "verify", str(archive), "-o", "json").ok().out)
    assert verify["warnings"] == []
    assert not (archive / "checkpoint.json").exists()
    assert not list(archive.rglob("*.tmp"))
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    assert [r["run"] for r in manifest["runs"]] == [1, 2]
    for partition in manifest["topics"][0]["partitions"]:
        seen = []
        for segment in partition["segments"]:
            with open(archive / segment["path"], "rb") as f:
                seen.extend(r["offset"] for r in fastavro.reader(f))
        assert seen == list(range(2 * PER_PARTITION)), "every record exactly once, in order"
