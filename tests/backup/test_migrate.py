"""Migrate between two local brokers: fidelity, group offsets, resumed runs (stopped and
killed), --follow with a clean stop on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.backup.conftest import (
    RichTopic,
    assert_groups_point_at_same_records,
    assert_same_records,
    commit,
    read_all,
    topic_configs,
    watermarks,
)
from tests.backup.test_resume import fill, kill_when
from tests.cli.conftest import Kcli
from tests.support.broker import BrokerProcess, kcli_command


@pytest.fixture
def target(make_broker: Callable[..., BrokerProcess]) -> str:
    return make_broker("target").start().bootstrap


def test_migrate_with_groups_then_resume(kcli: Kcli, run_kcli: Kcli, bootstrap: str,
                                         target: str, rich_topic: RichTopic) -> None:
    name = rich_topic.name
    renamed = f"{name}-moved"
    plan = orjson.loads(kcli("migrate", name, "--to", target, "--rename", f"{name}={renamed}",
                             "--groups", "--dry-run", "-o", "json").ok().out)
    assert plan["topics"][0]["to_copy"] == 176
    planned = {(c["group"], c["partition"]): c["target_offset"] for c in plan["groups"]}
    listed = orjson.loads(kcli("-b", target, "topic", "list", "-o", "json").ok().out)
    assert renamed not in {t["name"] for t in listed}
    done = orjson.loads(kcli("migrate", name, "--to", target, "--rename", f"{name}={renamed}",
                             "--groups", "-o", "json").ok().out)
    assert done["topics"][0]["copied"] == 176
    assert planned == {(c["group"], c["partition"]): c["target_offset"] for c in done["groups"]}
    source = read_all(bootstrap, name)
    copied = read_all(target, renamed)
    assert_same_records(source, copied)
    assert topic_configs(target, renamed)["message.timestamp.type"] == "LogAppendTime"
    assert_groups_point_at_same_records(bootstrap, rich_topic, target, renamed, source, copied)

    # more records and a group moving on; a second run copies only what is new
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(25):
        producer.produce(name, value=b"later %d" % i, key=b"%d" % i, partition=i % 3)
    assert producer.flush(10) == 0
    moved = {(name, p): (40 + p, "moved on") for p in range(3)}
    commit(bootstrap, f"{name}-mid", moved)
    rich_topic.groups[f"{name}-mid"] = moved
    # this time the two clusters are named by profiles (no -b at all)
    run_kcli("profile", "add", "src", "-b", bootstrap).ok()
    run_kcli("profile", "add", "dst", "-b", target).ok()
    again = orjson.loads(run_kcli("migrate", name, "--from", "src", "--to", "dst", "--rename",
                                  f"{name}={renamed}", "--groups", "-o", "json").ok().out)
    topic = again["topics"][0]
    assert (topic["resumed"], topic["copied"], topic["already_there"]) == (True, 25, 0)
    assert topic["lag"] == 0
    source = read_all(bootstrap, name)
    copied = read_all(target, renamed)
    assert_same_records(source, copied)
    assert_groups_point_at_same_records(bootstrap, rich_topic, target, renamed, source, copied)
    # the checkpoints live in the target
    listed = orjson.loads(kcli("-b", target, "topic", "list", "--internal", "-o",
                               "json").ok().out)
    assert "__kcli_checkpoints" in {t["name"] for t in listed}


def test_killed_migration_resumes(kcli: Kcli, bootstrap: str, target: str, topic_name: str,
                                  cli_env: dict[str, str]) -> None:
    per_partition = 10_000
    fill(bootstrap, topic_name, per_partition, 1000)
    args = ["-b", bootstrap, "migrate", topic_name, "--to", target]

    def some() -> bool:
        try:
            return sum(h for _l, h in watermarks(target, topic_name).values()) > 1000
        except Exception:
            return False

    kill_when(args, cli_env, some, "1000 migrated records")
    done = orjson.loads(kcli(*args[2:], "-o", "json").ok().out)
    topic = done["topics"][0]
    assert topic["resumed"]
    # what reached the target after its last checkpoint was recognised, not written again
    assert topic["already_there"] > 0
    assert topic["copied"] + topic["already_there"] <= 3 * per_partition
    assert topic["total"] == 3 * per_partition
    assert_same_records(read_all(bootstrap, topic_name), read_all(target, topic_name))


def test_follow_until_sigint(bootstrap: str, target: str, topic_name: str,
                             cli_env: dict[str, str], tmp_path: Path) -> None:
    fill(bootstrap, topic_name, 100, 50)
    process = subprocess.Popen(
        kcli_command("-b", bootstrap, "migrate", topic_name, "--to", target, "--follow",
                     "--groups", "-o", "json"),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if sum(h for _l, h in watermarks(target, topic_name).values()) >= count:
                    return
            except Exception:
                pass
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        pytest.fail(f"the target never reached {count} records")

    try:
        wait_for(300)
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
        for i in range(50):
            producer.produce(topic_name, value=b"live %d" % i, partition=i % 3)
        assert producer.flush(10) == 0
        wait_for(350)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    result = orjson.loads(out)
    assert result["interrupted"] is True
    assert result["topics"][0]["total"] == 350
    assert result["topics"][0]["lag"] == 0
    assert_same_records(read_all(bootstrap, topic_name), read_all(target, topic_name))
