"""`kcli group ...` and `consume -g` against the session broker (needs its group
coordinator); committed offsets are checked with confluent-kafka's AdminClient."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from tests.cli.conftest import Kcli, golden


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def loaded(kcli: Kcli, topic: str) -> str:
    """The topic with 4 records on each of its 3 partitions."""
    lines = b"".join(orjson.dumps({"value": f"v{i}", "partition": i % 3}) + b"\n"
                     for i in range(12))
    kcli("produce", topic, "-f", "json", input=lines).ok()
    return topic


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset for tp in future.result().topic_partitions
            if tp.offset >= 0}


@pytest.fixture
def member(bootstrap: str, loaded: str, group: str) -> Iterator[Consumer]:
    """An active member of the group (a confluent-kafka consumer holding partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "client.id": "the-member"})
    consumer.subscribe([loaded])
    deadline = time.monotonic() + 15
    while not consumer.assignment():
        assert time.monotonic() < deadline, "no assignment"
        consumer.poll(0.1)
    yield consumer
    consumer.close()


def test_consume_in_a_group_commits_and_resumes(kcli: Kcli, loaded: str, group: str,
                                                bootstrap: str) -> None:
    first = kcli("consume", loaded, "-g", group, "-n", "5").ok().text.split()
    assert len(first) == 5
    offsets = committed(bootstrap, group)
    assert sum(offsets.values()) == 5
    rest = kcli("consume", loaded, "-g", group).ok().text.split()
    assert sorted(first + rest) == sorted(f"v{i}" for i in range(12))
    assert committed(bootstrap, group) == {(loaded, p): 4 for p in range(3)}
    assert kcli("consume", loaded, "-g", group).ok().text == ""
    again = kcli("consume", loaded, "-g", group, "--from", "-1").ok().text.split()
    assert sorted(again) == ["v10", "v11", "v9"]


def test_list_describe_lag(kcli: Kcli, loaded: str, group: str) -> None:
    kcli("consume", loaded, "-g", group, "-P", "0", "-n", "1").ok()
    kcli("consume", loaded, "-g", group, "-P", "1").ok()
    names = {loaded: "TOPIC", group: "GROUP"}

    listed = [g for g in orjson.loads(kcli("group", "list").ok().out) if g["group"] == group]
    # only assigned partitions committed (no JoinGroup): Kafka calls that a simple group
    assert listed == [{"group": group, "state": "Empty", "members": 0, "lag": 3, "max_lag": 3,
                       "protocol_type": "simple", "topics": [loaded]}]
    table = kcli("group", "list", "-o", "table").ok().text
    assert any(line.split()[:5] == [group, "Empty", "0", "3", "3"] for line in table.splitlines())

    detail = orjson.loads(kcli("group", "describe", group).ok().out)
    assert (detail["state"], detail["lag"], detail["members"]) == ("Empty", 3, [])
    assert [(p["partition"], p["committed"], p["end"], p["lag"]) for p in detail["partitions"]] \
        == [(0, 1, 4, 3), (1, 4, 4, 0)]
    described = kcli("group", "describe", group, "-o", "table").ok().text
    golden("group-describe.table.txt", _mask_coordinator(described), names)

    lag = orjson.loads(kcli("group", "lag", group, "-o", "json").ok().out)
    assert lag == [
        {"group": group, "topic": loaded, "partition": 0, "committed": 1, "end": 4, "lag": 3,
         "member": None},
        {"group": group, "topic": loaded, "partition": 1, "committed": 4, "end": 4, "lag": 0,
         "member": None},
    ]
    everything = kcli("group", "lag", "-o", "jsonl").ok().text.splitlines()
    assert sum(orjson.loads(line)["group"] == group for line in everything) == 2
    golden("group-lag.table.txt", kcli("group", "lag", group, "-o", "table").ok().text, names)


def _mask_coordinator(text: str) -> str:
    return "\n".join("coordinator  N" if line.startswith("coordinator") else line
                     for line in text.splitlines()) + "\n"


def test_active_member_shows_and_blocks_reset_and_delete(kcli: Kcli, member: Consumer,
                                                        loaded: str, group: str) -> None:
    detail = orjson.loads(kcli("group", "describe", group).ok().out)
    assert detail["state"] == "Stable"
    assert [m["client_id"] for m in detail["members"]] == ["the-member"]
    assigned = {(a["topic"], a["partition"]) for a in detail["members"][0]["assignments"]}
    assert assigned == {(loaded, p) for p in range(3)}
    kcli("group", "reset", group, "-t", loaded, "--to", "earliest", "--execute").fails(
        1, r"stop its consumers")
    kcli("group", "delete", group).fails(1, r"(?i)not empty|non.?empty|active")


def test_reset_plans_then_executes(kcli: Kcli, loaded: str, group: str,
                                   bootstrap: str) -> None:
    kcli("consume", loaded, "-g", group).ok()
    assert committed(bootstrap, group) == {(loaded, p): 4 for p in range(3)}

    plan = orjson.loads(kcli("group", "reset", group, "--to", "earliest").ok().out)
    assert plan["executed"] is False
    assert [(p["partition"], p["current"], p["target"]) for p in plan["partitions"]] == [
        (0, 4, 0), (1, 4, 0), (2, 4, 0)]
    assert committed(bootstrap, group) == {(loaded, p): 4 for p in range(3)}  # unchanged

    def reset(*args: str) -> dict[tuple[str, int], int]:
        kcli("group", "reset", group, "-t", loaded, *args, "--execute").ok()
        return committed(bootstrap, group)

    assert reset("--to", "earliest") == {(loaded, p): 0 for p in range(3)}
    assert reset("--to", "shift:2") == {(loaded, p): 2 for p in range(3)}
    assert reset("--to", "shift:-5") == {(loaded, p): 0 for p in range(3)}  # clamped
    assert reset("--to", "3") == {(loaded, p): 3 for p in range(3)}
    assert reset("--to", "latest") == {(loaded, p): 4 for p in range(3)}
    assert reset("--to", "2000-01-01T00:00:00Z") == {(loaded, p): 0 for p in range(3)}
    kcli("group", "reset", group, "--to", "sideways").fails(2, r"--to: bad offset")
    kcli("group", "reset", group, "-t", "no-such-topic-r", "--to", "earliest").fails(
        4, r"does not exist")


def test_delete_and_not_found(kcli: Kcli, loaded: str, group: str, bootstrap: str) -> None:
    kcli("group", "describe", "no-such-group-x").fails(4, r"group 'no-such-group-x' does not")
    kcli("group", "lag", "no-such-group-x").fails(4, r"does not exist")
    kcli("consume", loaded, "-g", group, "-n", "2").ok()
    done = kcli("group", "delete", group).ok()
    assert done.err.strip() == f"deleted group {group}"
    assert committed(bootstrap, group) == {}
    kcli("group", "describe", group).fails(4, r"does not exist")
    kcli("group", "delete", group).fails(4, r"does not exist")
