"""Consumer groups across brokers: the coordinator of a group is not the broker a
client first asks."""

from __future__ import annotations

import sys
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from kio.index import load_request_schema

from kcli.broker.group.records import partition_for_group
from kcli.broker.handlers.base import make
from kcli.broker.protocol.versions import ApiKey
from tests.cluster.conftest import MakeCluster
from tests.support.wire import WireClient

OFFSETS_PARTITIONS = 6  # FAST_SETTINGS' offsets.topic.num.partitions


def one_group_per_offsets_partition(prefix: str) -> list[str]:
    """Group ids whose offsets partitions are all different (so their coordinators
    are every broker, whichever leads what)."""
    groups: dict[int, str] = {}
    i = 0
    while len(groups) < OFFSETS_PARTITIONS:
        group = f"{prefix}-{i}"
        groups.setdefault(partition_for_group(group, OFFSETS_PARTITIONS), group)
        i += 1
    return [groups[p] for p in sorted(groups)]


def commit_first(bootstrap: str, group: str, topic: str, errors: list[str]) -> None:
    """The group's first use: a consumer commits an offset, once, without retrying."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "log_level": 0})
    try:
        result = consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        failed = [tp for tp in result or () if tp.error is not None]
        if failed:
            errors.append(f"{group}: {failed[0].error}")
    except KafkaException as error:
        errors.append(f"{group}: {error}")
    finally:
        consumer.close()


def test_first_commits_in_a_fresh_cluster(make_cluster: MakeCluster) -> None:
    """Five fresh 3-broker clusters: groups used for the first time all at once through
    broker 1, whose FindCoordinator creates the offsets topic and names the others as
    coordinators of most groups before they have seen the topic (they poll the shared
    metadata every 100 ms). Every first commit succeeds, and no broker tries to create
    the topic again ("already exists")."""
    for round_ in range(5):
        cluster = make_cluster().start()
        cluster.create_topic("t", 1)
        errors: list[str] = []
        threads = [threading.Thread(target=commit_first,
                                    args=(cluster.node(1).bootstrap, group, "t", errors))
                   for group in one_group_per_offsets_partition(f"g{round_}")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        leaders = {p["leader"] for p in
                   cluster.metadata_file()["topics"]["__consumer_offsets"]["partitions"]}
        assert leaders == {1, 2, 3}
        assert errors == [], f"round {round_}: {errors}"
        assert "already exists" not in cluster.logs(), f"round {round_}"
        cluster.stop()


def request(api: ApiKey, version: int, nested: str | None = None, **values: Any) -> Any:
    """A request (or one of its ``nested`` classes) of ``version``."""
    cls = load_request_schema(api, version)
    if nested is not None:
        cls = getattr(sys.modules[cls.__module__], nested)
    return make(cls, **values)


def test_first_commit_right_after_find_coordinator(make_cluster: MakeCluster) -> None:
    """The race without a client's connection setup in between: connections to every
    broker are open before the first FindCoordinator of a fresh cluster (through broker
    1, for one group per offsets partition: it creates the topic and names every broker
    as some group's coordinator), and each group's first OffsetCommit goes to its
    coordinator at once, long before the next metadata poll of the others. Each commit
    succeeds, and no broker tries to create the offsets topic again."""
    for round_ in range(5):
        cluster = make_cluster().start()
        cluster.create_topic("t", 1)
        groups = one_group_per_offsets_partition(f"w{round_}")
        wires = {n: WireClient(node.bootstrap) for n, node in cluster.nodes.items()}
        try:
            found = wires[1].request(10, 4, request(ApiKey.FIND_COORDINATOR, 4, key_type=0,
                                                    coordinator_keys=tuple(groups)))
            coordinators = {c.key: (int(c.error_code), c.node_id) for c in found.coordinators}
            assert {e for e, _ in coordinators.values()} == {0}, coordinators
            assert {n for _, n in coordinators.values()} == {1, 2, 3}
            codes = {}
            for group in groups:
                partition = request(ApiKey.OFFSET_COMMIT, 8, "OffsetCommitRequestPartition",
                                    partition_index=0, committed_offset=5,
                                    committed_leader_epoch=-1, committed_metadata=None)
                topic = request(ApiKey.OFFSET_COMMIT, 8, "OffsetCommitRequestTopic",
                                name="t", partitions=(partition,))
                answer = wires[coordinators[group][1]].request(8, 8, request(
                    ApiKey.OFFSET_COMMIT, 8, group_id=group, generation_id_or_member_epoch=-1,
                    member_id="", group_instance_id=None, retention_time=-1,
                    topics=(topic,)))
                codes[group] = int(answer.topics[0].partitions[0].error_code)
        finally:
            for wire in wires.values():
                wire.close()
        assert set(codes.values()) == {0}, f"round {round_}: {codes}"
        assert "already exists" not in cluster.logs(), f"round {round_}"
        cluster.stop()


def test_a_consumer_protocol_group_survives_its_coordinators_crash(
        make_cluster: MakeCluster) -> None:
    """KIP-848 members keep their group when its coordinator dies: the group (its epoch
    record, replicated) moves to the new leader of its offsets partition, the members
    rejoin there and split the partitions again."""
    from confluent_kafka import ConsumerGroupType

    from tests.broker.groups.conftest import GroupConsumer
    from tests.cluster.harness import wait_for

    cluster = make_cluster(3, {"group.consumer.heartbeat.interval.ms": "300"}).start()
    cluster.create_topic("events", partitions=4, replication=3)
    members = [GroupConsumer(cluster.bootstrap, "kip848", "events",
                             **{"group.protocol": "consumer"}) for _ in range(2)]
    try:
        def split() -> bool:
            owned = [m.partitions() for m in members]
            return sorted(p for o in owned for p in o) == [0, 1, 2, 3] and all(
                len(o) == 2 for o in owned)

        wait_for(split, 30, "an even split")
        admin = cluster.admin()
        before = admin.describe_consumer_groups(["kip848"])["kip848"].result(10)
        coordinator = before.coordinator.id
        cluster.node(coordinator).kill()
        live = ",".join(n.bootstrap for n in cluster.nodes.values() if n.running)
        wait_for(lambda: not split(), 30, "the members to notice")
        wait_for(split, 60, "the members split again on the new coordinator")
        admin = AdminClient({"bootstrap.servers": live})
        after = admin.describe_consumer_groups(["kip848"])["kip848"].result(30)
        assert after.coordinator.id != coordinator
        assert after.type == ConsumerGroupType.CONSUMER
    finally:
        for member in members:
            member.close()
