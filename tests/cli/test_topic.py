"""`kcli topic ...` against the session broker, checked with confluent-kafka's admin."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.cli.conftest import Kcli, golden


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def test_create_describe_list_in_every_format(kcli: Kcli, topic_name: str) -> None:
    created = kcli("topic", "create", topic_name, "-P", "2", "-r", "1",
                   "-c", "retention.ms=3600000", "-c", "cleanup.policy=delete").ok()
    assert created.err.strip() == f"created topic {topic_name}"
    kcli("produce", topic_name, "-P", "0", input=b"a\nb\nc\n").ok()
    kcli("produce", topic_name, "-P", "1", input=b"d\n").ok()

    names = {topic_name: "TOPIC"}
    golden("topic-describe.table.txt",
           kcli("topic", "describe", topic_name, "-o", "table").ok().text, names)
    as_json = kcli("topic", "describe", topic_name).ok()  # piped: json by default
    golden("topic-describe.json.txt", as_json.text, names)
    detail = orjson.loads(as_json.out)
    assert detail["records"] == 4
    assert detail["configs"] == {"cleanup.policy": "delete", "retention.ms": "3600000"}
    golden("topic-describe.jsonl.txt",
           kcli("topic", "describe", topic_name, "-o", "jsonl").ok().text, names)

    listed = orjson.loads(kcli("topic", "list").ok().out)
    mine = [t for t in listed if t["name"] == topic_name]
    assert mine == [{"name": topic_name, "partitions": 2, "replication": 1, "records": 4,
                     "size": mine[0]["size"], "internal": False}]
    assert mine[0]["size"] > 0  # from DescribeLogDirs
    lines = kcli("topic", "list", "-o", "jsonl").ok().text.splitlines()
    assert any(orjson.loads(line)["name"] == topic_name for line in lines)
    table = kcli("topic", "list", "-o", "table").ok().text
    assert table.splitlines()[0].split() == ["NAME", "PARTITIONS", "REPLICATION", "RECORDS",
                                             "SIZE"]
    assert any(line.split()[:4] == [topic_name, "2", "1", "4"] for line in table.splitlines())


def test_create_existing_and_if_not_exists(kcli: Kcli, topic: str) -> None:
    kcli("topic", "create", topic).fails(1, r"already exists")
    done = kcli("topic", "create", topic, "--if-not-exists").ok()
    assert "already exists" in done.err


def test_create_bad_input(kcli: Kcli, topic_name: str) -> None:
    kcli("topic", "create", topic_name, "-c", "retention.ms").fails(2, r"-c expects key=value")
    kcli("topic", "create", topic_name, "-c", "no.such.config=1").fails(2, r"no.such.config")
    kcli("topic", "create", topic_name, "-r", "3").fails(2, r"[Rr]eplication")
    kcli("topic", "create", topic_name, "-P", "0").fails(2, r"-P")


@pytest.mark.parametrize("name", ["nl\n", ".", "..", "x" * 250], ids=repr)
def test_create_refuses_invalid_names(kcli: Kcli, name: str) -> None:
    kcli("topic", "create", name).fails(2, r"topic name")


def test_create_refuses_a_name_colliding_by_dot_and_underscore(kcli: Kcli, topic_name: str
                                                               ) -> None:
    kcli("topic", "create", f"{topic_name}.a").ok()
    kcli("topic", "create", f"{topic_name}_a").fails(
        2, rf"collides with existing topic '{topic_name}\.a'")


def test_alter_and_revert(kcli: Kcli, topic: str, admin: AdminClient) -> None:
    kcli("topic", "alter", topic, "-c", "retention.ms=1234", "-c", "segment.ms=999999").ok()
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["retention.ms"].value == "1234"
    kcli("topic", "alter", topic, "--delete", "retention.ms").ok()
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["retention.ms"].is_default
    assert configs["segment.ms"].value == "999999"
    kcli("topic", "alter", topic).fails(2, r"nothing to change")
    kcli("topic", "alter", "no-such-topic-x", "-c", "a=b").fails(4, r"does not exist")


def test_add_partitions(kcli: Kcli, topic: str, admin: AdminClient) -> None:
    done = kcli("topic", "add-partitions", topic, "2").ok()
    assert done.err.strip() == f"topic {topic}: 3 -> 5 partitions"
    assert len(admin.list_topics(topic).topics[topic].partitions) == 5
    kcli("topic", "add-partitions", topic, "0").fails(2, r"positive")


def test_delete_records_by_offset(kcli: Kcli, topic: str) -> None:
    kcli("produce", topic, "-P", "1", input=b"".join(b"%d\n" % i for i in range(10))).ok()
    done = kcli("topic", "delete-records", topic, "--before", "4", "-P", "1").ok()
    assert orjson.loads(done.out) == [{"partition": 1, "before": 4, "low": 4}]
    values = kcli("consume", topic, "-P", "1").ok().text.split()
    assert values == [str(i) for i in range(4, 10)]
    kcli("topic", "delete-records", topic, "--before", "99", "-P", "1").fails(2, r"beyond the end")
    kcli("topic", "delete-records", topic, "--before", "soon").fails(2, r"bad offset 'soon'")


def test_delete_records_by_time(kcli: Kcli, topic: str) -> None:
    lines = b"".join(orjson.dumps({"value": str(i), "partition": 0,
                                   "timestamp": 1_700_000_000_000 + i * 1000}) + b"\n"
                     for i in range(6))
    kcli("produce", topic, "-f", "json", input=lines).ok()
    done = kcli("topic", "delete-records", topic, "--before", "2023-11-14T22:13:23Z",
                "-P", "0").ok()
    assert orjson.loads(done.out) == [{"partition": 0, "before": 3, "low": 3}]


def test_delete_with_globs_and_confirmation(kcli: Kcli, topic_name: str,
                                            admin: AdminClient) -> None:
    for suffix in ("a", "b"):
        kcli("topic", "create", f"{topic_name}-{suffix}", "-P", "1").ok()
    kcli("topic", "delete", f"{topic_name}-*").fails(2, r"pass --yes")
    kcli("topic", "delete", f"{topic_name}-zz*", "--yes").fails(4, r"no topic matches")
    kcli("topic", "delete", f"{topic_name}-a", "missing-topic-q", "--yes").fails(
        4, r"'missing-topic-q' does not exist")
    done = kcli("topic", "delete", f"{topic_name}-*", "--yes").ok()
    assert sorted(done.err.split("\n")[:2]) == [f"deleted topic {topic_name}-a",
                                                f"deleted topic {topic_name}-b"]
    remaining = admin.list_topics().topics
    assert f"{topic_name}-a" not in remaining
    assert f"{topic_name}-b" not in remaining


def test_unknown_topic_is_not_found(kcli: Kcli) -> None:
    kcli("topic", "describe", "no-such-topic-y").fails(4, r"topic 'no-such-topic-y' does not exist")
