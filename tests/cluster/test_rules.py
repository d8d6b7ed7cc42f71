"""The replication rules in process: elections, controlled shutdown, transactions, and a
partition's leader and follower bookkeeping."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.cluster.checkpoint import read_checkpoint, write_checkpoint
from kcli.broker.cluster.controller import (
    Controller,
    ControllerError,
    controlled_shutdown,
    elect_leaders,
)
from kcli.broker.cluster.coordination import BrokerIdInUse, ClusterDirectory
from kcli.broker.cluster.metadata import (
    BrokerInfo,
    ClusterMetadata,
    MetadataStore,
    PartitionState,
    TopicState,
)
from kcli.broker.configs import Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.log import Record, encode_batch
from kcli.broker.partition import Partition
from kcli.broker.topic_settings import TopicSettings


def cluster_of(*partitions: PartitionState, configs: dict[str, str] | None = None
               ) -> ClusterMetadata:
    metadata = ClusterMetadata(cluster_id="c")
    for node in (1, 2, 3):
        metadata.brokers[node] = BrokerInfo(node, "127.0.0.1", 9000 + node)
    metadata.topics["t"] = TopicState("t", uuid.uuid4(), list(partitions), configs or {})
    return metadata


def state(replicas: list[int], leader: int, isr: list[int], epoch: int = 0) -> PartitionState:
    return PartitionState(replicas=replicas, leader=leader, leader_epoch=epoch, isr=isr)


# ====================================================================== elections

def test_a_dead_leader_is_replaced_by_the_first_live_in_sync_replica() -> None:
    metadata = cluster_of(state([1, 2, 3], 1, [1, 3, 2], epoch=4))
    changes = elect_leaders(metadata, {2, 3}, Settings())
    p = metadata.topics["t"].partitions[0]
    assert (p.leader, p.leader_epoch, p.isr, p.partition_epoch) == (2, 5, [3, 2], 1)
    assert len(changes) == 1
    assert elect_leaders(metadata, {2, 3}, Settings()) == []  # settled


def test_dead_followers_leave_the_isr_but_the_last_member_stays() -> None:
    metadata = cluster_of(state([1, 2, 3], 1, [1, 2, 3]), state([2, 3], 2, [2]))
    elect_leaders(metadata, {1}, Settings())
    follower_dead, alone = metadata.topics["t"].partitions
    assert (follower_dead.leader, follower_dead.leader_epoch, follower_dead.isr) == (1, 0, [1])
    assert (alone.leader, alone.leader_epoch, alone.isr) == (-1, 1, [2])  # offline, ISR kept
    elect_leaders(metadata, {1, 2}, Settings())  # its last in-sync replica returns
    assert (alone.leader, alone.leader_epoch, alone.isr) == (2, 2, [2])


def test_no_unclean_election_unless_the_topic_allows_it() -> None:
    metadata = cluster_of(state([1, 2], 1, [1]))
    elect_leaders(metadata, {2}, Settings())
    assert metadata.topics["t"].partitions[0].leader == -1
    metadata.topics["t"].configs["unclean.leader.election.enable"] = "true"
    elect_leaders(metadata, {2}, Settings())
    p = metadata.topics["t"].partitions[0]
    assert (p.leader, p.isr) == (2, [2])


def test_a_dry_run_changes_nothing() -> None:
    metadata = cluster_of(state([1, 2, 3], 1, [1, 2, 3]))
    assert elect_leaders(metadata, {3}, Settings(), dry_run=True)
    assert metadata.topics["t"].partitions[0].leader == 1


def test_controlled_shutdown_hands_over_leadership_and_leaves_isrs() -> None:
    metadata = cluster_of(state([1, 2, 3], 1, [1, 2, 3]), state([2, 1], 2, [2, 1]),
                          state([1, 3], 1, [1]))
    controlled_shutdown(metadata, 1, {1, 2, 3})
    led, followed, alone = metadata.topics["t"].partitions
    assert (led.leader, led.leader_epoch, led.isr) == (2, 1, [2, 3])
    assert (followed.leader, followed.isr) == (2, [2])
    assert (alone.leader, alone.isr) == (1, [1])  # nobody in sync to take it


# ====================================================================== transactions

def test_brokers_share_metadata_through_transactions(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    one = Controller(store, Settings(), 1)
    two = Controller(MetadataStore(tmp_path), Settings(), 2)
    one.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    two.open(BrokerInfo(2, "h", 2), lambda _cluster_id: None)
    assert one.reload_if_changed()
    assert set(one.metadata.brokers) == {1, 2}
    assert one.metadata.cluster_id == two.metadata.cluster_id
    topic = one.create_topic("t", 1, 2, {})
    assert two.reload_if_changed()
    assert not two.reload_if_changed()  # nothing new
    assert two.metadata.topics["t"].topic_id == topic.topic_id
    # producer ids from either broker never collide
    ids = {one.allocate_producer_id(), two.allocate_producer_id()}
    assert len(ids) == 2


@pytest.mark.parametrize("name", ["nl\n", "a\n", ".", "..", "", "x" * 250, "bad name",
                                  "caf\u00e9", "tab\t"])
def test_topic_names_follow_kafkas_rule(tmp_path: Path, name: str) -> None:
    controller = Controller(MetadataStore(tmp_path), Settings(), 1)
    controller.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    controller.create_topic("x" * 249, 1, 1, {})  # the longest legal name
    with pytest.raises(ControllerError) as refused:
        controller.create_topic(name, 1, 1, {})
    assert refused.value.error_code == ErrorCode.invalid_topic_exception
    assert "\n" not in refused.value.message  # one line, whatever the name
    assert list(controller.metadata.topics) == ["x" * 249]


def test_names_differing_only_by_dot_and_underscore_collide(tmp_path: Path) -> None:
    controller = Controller(MetadataStore(tmp_path), Settings(), 1)
    controller.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    controller.create_topic("orders.v1_x", 1, 1, {})
    for name in ("orders_v1_x", "orders.v1.x", "orders_v1.x"):
        with pytest.raises(ControllerError, match="collides with existing topic") as refused:
            controller.create_topic(name, 1, 1, {})
        assert refused.value.error_code == ErrorCode.invalid_topic_exception
    with pytest.raises(ControllerError) as again:
        controller.create_topic("orders.v1_x", 1, 1, {})
    assert again.value.error_code == ErrorCode.topic_already_exists
    with pytest.raises(ControllerError, match="collides"):  # an internal name, even unborn
        controller.create_topic("__consumer.offsets", 1, 1, {})
    controller.create_topic("__consumer_offsets", 1, 1, {}, internal=True)
    controller.create_topic("orders-v1-x", 1, 1, {})  # '-' is no collision char


def test_isr_changes_are_checked_against_epochs_and_liveness(tmp_path: Path) -> None:
    live = {1, 2}
    one = Controller(MetadataStore(tmp_path), Settings(), 1, lambda ids: set(ids) & live)
    one.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    for node in (2, 3):
        Controller(MetadataStore(tmp_path), Settings(), node).open(
            BrokerInfo(node, "h", node), lambda _cluster_id: None)
    one.reload_if_changed()
    one.create_topic("t", -1, -1, {}, [[1, 2, 3]])
    p = one.metadata.topics["t"].partitions[0]
    assert (p.leader, p.isr) == (1, [1, 2])  # 3 is not live
    changed = one.alter_isr("t", 0, 0, 0, [1])
    assert (changed.isr, changed.partition_epoch) == ([1], 1)
    with pytest.raises(ControllerError) as stale:
        one.alter_isr("t", 0, 0, 0, [1, 2])
    assert stale.value.error_code == ErrorCode.invalid_update_version
    with pytest.raises(ControllerError) as fenced:
        one.alter_isr("t", 0, 7, 1, [1, 2])
    assert fenced.value.error_code == ErrorCode.fenced_leader_epoch
    with pytest.raises(ControllerError) as dead:
        one.alter_isr("t", 0, 0, 1, [1, 3])
    assert dead.value.error_code == ErrorCode.ineligible_replica
    assert one.alter_isr("t", 0, 0, 1, [1, 2]).isr == [1, 2]


def test_a_broker_id_runs_once_and_its_lock_tells_liveness(tmp_path: Path) -> None:
    first, second = ClusterDirectory(tmp_path), ClusterDirectory(tmp_path)
    first.acquire_broker(1)
    with pytest.raises(BrokerIdInUse):
        second.acquire_broker(1, timeout=0.05)
    assert second.live_brokers([1, 2], me=3) == {1, 3}
    assert first.try_acquire_controller()
    assert not second.try_acquire_controller()
    first.close()
    assert second.live_brokers([1, 2], me=3) == {3}
    assert second.try_acquire_controller()
    second.close()


# ====================================================================== partitions

def settings() -> TopicSettings:
    return TopicSettings.resolve(Settings(), {})


def batch(*values: bytes, producer_id: int = -1, sequence: int = -1) -> bytes:
    return encode_batch([Record(i, 1_700_000_000_000, None, v, []) for i, v in enumerate(values)],
                        producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


def test_the_leader_high_watermark_is_the_smallest_end_over_the_isr(tmp_path: Path) -> None:
    p = Partition("t", 0, tmp_path / "t-0", state([1, 2, 3], 1, [1, 2, 3]), settings(), 1)
    result = p.append_client_batch(batch(b"a", b"b"), -1)
    assert (result.base_offset, result.last_offset) == (0, 1)
    assert p.high_watermark == 0  # the followers have not fetched yet
    assert not p.record_follower_fetch(2, 2)
    assert p.high_watermark == 0
    p.record_follower_fetch(3, 1)
    assert p.high_watermark == 1
    p.record_follower_fetch(3, 2)
    assert p.high_watermark == 2
    p.update_state(state([1, 2, 3], 1, [1, 2]))  # 3 left the ISR
    p.append_client_batch(batch(b"c"), -1)
    p.record_follower_fetch(2, 3)
    assert p.high_watermark == 3
    assert p.record_follower_fetch(3, 3)  # caught up: may rejoin the ISR
    assert p.lagging_replicas(0) == []  # every in-sync follower is at the log end
    p.append_client_batch(batch(b"d"), -1)
    assert p.lagging_replicas(60_000) == []
    assert p.lagging_replicas(0) == [2]
    p.close()


def test_a_follower_keeps_producer_state_so_a_new_leader_dedups(tmp_path: Path) -> None:
    leader = Partition("t", 0, tmp_path / "a", state([1, 2], 1, [1, 2]), settings(), 1)
    follower = Partition("t", 0, tmp_path / "b", state([1, 2], 1, [1, 2]), settings(), 2)
    first = batch(b"x", producer_id=7, sequence=0)
    leader.append_client_batch(first, -1)
    data = leader.log.read(0, 1 << 20)
    assert follower.append_replicated(data) == 1
    assert follower.last_fetched_epoch == 0
    follower.follow_leader(1, 0)
    assert follower.high_watermark == 1
    follower.update_state(state([1, 2], 2, [2], epoch=1))  # it leads now
    retry = follower.append_client_batch(first, -1)
    assert (retry.error_code, retry.base_offset) == (0, 0)  # the original offsets
    assert follower.log.log_end_offset == 1
    leader.close()
    follower.close()


def test_a_follower_truncates_where_it_diverges(tmp_path: Path) -> None:
    p = Partition("t", 0, tmp_path / "t-0", state([1, 2], 1, [1, 2]), settings(), 1)
    p.append_client_batch(batch(b"a"), 1)
    p.update_state(state([1, 2], 1, [1, 2], epoch=1))
    p.append_client_batch(batch(b"phantom", producer_id=3, sequence=0), 1)
    assert p.last_fetched_epoch == 1
    p.update_state(state([1, 2], 2, [2], epoch=2))  # now a follower of 2
    assert p.log.end_offset_for_epoch(0) == (0, 1)
    p.truncate_to(1)
    assert (p.log.log_end_offset, p.last_fetched_epoch) == (1, 0)
    assert 3 not in p.producers.entries
    p.truncate_fully_and_start_at(10)
    assert (p.log.log_start_offset, p.log.log_end_offset, p.high_watermark) == (10, 10, 10)
    p.close()


def test_high_watermarks_are_checkpointed_as_kafka_does(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {("t", 1): 5, ("a.b", 0): 7})
    assert (tmp_path / "replication-offset-checkpoint").read_text() == "0\n2\na.b 0 7\nt 1 5\n"
    assert read_checkpoint(tmp_path) == {("t", 1): 5, ("a.b", 0): 7}
    (tmp_path / "replication-offset-checkpoint").write_text("0\n3\nt 1 5\n")
    assert read_checkpoint(tmp_path) == {}  # garbled: ignored
    p = Partition("t", 0, tmp_path / "t-0", state([1, 2], 2, [2, 1]), settings(), 1)
    p.append_replicated(encode_batch([Record(0, 1, None, b"v", [])] * 1))
    p.close()
    again = Partition("t", 0, tmp_path / "t-0", state([1, 2], 2, [2, 1]), settings(), 1, 0)
    assert (again.high_watermark, again.log.log_end_offset) == (0, 1)
    again.update_state(state([1, 2], 1, [1], epoch=1))  # leads alone: all of it is committed
    assert again.high_watermark == 1
    again.close()


def test_a_read_checks_the_leader_epoch_the_asker_knows(tmp_path: Path) -> None:
    p = Partition("t", 0, tmp_path / "t-0", state([1], 1, [1], epoch=3), settings(), 1)
    p.append_client_batch(batch(b"a"), 1)
    assert p.read(0, 1 << 20, current_leader_epoch=2).error_code == ErrorCode.fenced_leader_epoch
    assert p.read(0, 1 << 20, current_leader_epoch=4).error_code == ErrorCode.unknown_leader_epoch
    fenced = p.read(0, 1 << 20, current_leader_epoch=2)
    assert (fenced.records, fenced.leader) == (b"", (1, 3))
    ok = p.read(0, 1 << 20, current_leader_epoch=3)
    assert (ok.error_code, ok.high_watermark, ok.log_start_offset) == (0, 1, 0)
    assert ok.records
    assert ok.aborted_transactions is None
    assert p.read(0, 1 << 20, isolation_level=1).aborted_transactions == ()
    assert p.read(5, 1 << 20).error_code == ErrorCode.offset_out_of_range
    p.update_state(state([1, 2], 2, [1, 2], epoch=4))
    assert p.read(0, 1 << 20).error_code == ErrorCode.not_leader_or_follower
    p.close()


def test_a_read_keeps_a_batch_over_its_limit_only_when_it_is_the_first(tmp_path: Path) -> None:
    p = Partition("t", 0, tmp_path / "t-0", state([1], 1, [1]), settings(), 1)
    p.append_client_batch(batch(b"x" * 1000), 1)
    assert len(p.read(0, 10).records) > 10  # min_one_message: the first partition's batch
    assert p.read(0, 10, min_one_message=False).records == b""
    assert p.read(0, 0, min_one_message=False).error_code == 0
    p.close()


def test_a_consumer_reads_to_the_high_watermark_a_follower_to_the_log_end(tmp_path: Path) -> None:
    changes: list[tuple[list[int], str]] = []
    p = Partition("t", 0, tmp_path / "t-0", state([1, 2], 1, [1]), settings(), 1,
                  request_isr_change=lambda _p, isr, why: changes.append((isr, why)))
    p.append_client_batch(batch(b"a"), 1)
    assert p.high_watermark == 1  # 2 is out of the ISR
    p.update_state(state([1, 2], 1, [1, 2]))
    p.append_client_batch(batch(b"b"), 1)
    assert p.high_watermark == 1  # 2 is in the ISR and has not fetched
    consumer = p.read(1, 1 << 20)
    assert (consumer.records, consumer.high_watermark) == (b"", 1)
    follower = p.read(1, 1 << 20, replica_id=2, record_fetch=False)
    assert follower.records
    assert follower.high_watermark == 1
    noted = p.read(2, 1 << 20, replica_id=2)
    assert noted.high_watermark == 2  # its fetch at 2 moved the high watermark
    assert changes == []  # in the ISR already
    p.update_state(state([1, 2], 1, [1]))
    p.read(2, 1 << 20, replica_id=2)  # out of the ISR and caught up: asks to rejoin
    assert changes == [([1, 2], "2 caught up")]
    p.close()


def test_a_follower_that_diverged_is_told_where(tmp_path: Path) -> None:
    p = Partition("t", 0, tmp_path / "t-0", state([1, 2], 1, [1], epoch=0), settings(), 1)
    p.append_client_batch(batch(b"a", b"b"), 1)
    p.update_state(state([1, 2], 1, [1], epoch=2))
    p.append_client_batch(batch(b"c"), 1)
    # the follower's last batch is of epoch 1, which this leader never had: epoch 0 ends at 2
    result = p.read(3, 1 << 20, last_fetched_epoch=1, replica_id=2)
    assert (result.diverging, result.records) == ((0, 2), b"")
    p.close()


def test_a_producer_id_transaction_applies_the_metadata_it_adopted(tmp_path: Path) -> None:
    """The transaction reads the freshest metadata file, so the next poll sees nothing
    new: whatever it adopted (a topic another broker created) must be applied there."""

    async def main() -> None:
        first, second = (
            Broker(BrokerConfig(node_id=i, data_dir=tmp_path / f"b{i}",
                                cluster_dir=tmp_path / "cluster"))
            for i in (1, 2))
        first.open(9092)
        second.open(9093)
        try:
            await first.create_topic("t", -1, -1, {}, [[1, 2], [2, 1]])
            assert second.partition("t", 0) is None  # it has not polled yet
            second.allocate_producer_id()
            second.refresh_metadata()  # nothing new to the poll: the file is as adopted
            assert second.partition("t", 0) is not None
            assert second.partition("t", 1) is not None
        finally:
            second.close()
            first.close()

    asyncio.run(main())


def test_max_broker_partitions_refuses_what_would_pass_it(tmp_path: Path) -> None:
    controller = Controller(MetadataStore(tmp_path), Settings({"max.broker.partitions": "5"}), 1)
    controller.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    controller.create_topic("a", 3, 1, {})
    with pytest.raises(ControllerError, match=r"broker 1 would host 6 partitions, over "
                                              r"max.broker.partitions 5") as refused:
        controller.create_topic("b", 3, 1, {})
    assert refused.value.error_code == ErrorCode.policy_violation
    controller.create_topic("b", 2, 1, {})  # exactly at the limit
    with pytest.raises(ControllerError) as grown:
        controller.create_partitions("a", 4)
    assert grown.value.error_code == ErrorCode.policy_violation
    assert sorted(controller.metadata.topics) == ["a", "b"]
    assert len(controller.metadata.topics["a"].partitions) == 3


def test_by_default_the_open_file_limit_sets_max_broker_partitions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (20_000, 20_000))
    controller = Controller(MetadataStore(tmp_path), Settings(), 1)
    controller.open(BrokerInfo(1, "h", 1), lambda _cluster_id: None)
    # the case that exhausted the descriptors: 10,000 partitions under a 20,000 fd limit;
    # the logs' half less 64 for files opened for a moment
    with pytest.raises(ControllerError, match=r"over max\.broker\.partitions 9936") as refused:
        controller.create_topic("huge", 10_000, 1, {})
    assert refused.value.error_code == ErrorCode.policy_violation
    controller.create_topic("large", 9_936, 1, {}, validate_only=True)
