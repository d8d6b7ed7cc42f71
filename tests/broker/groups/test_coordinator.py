"""The classic group state machine, driven in-process as clients would drive it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from kcli.broker.broker import Broker
from kcli.broker.cluster.controller import ControllerError
from kcli.broker.errors import ErrorCode
from kcli.broker.group.coordinator import OFFSETS_TOPIC
from kcli.broker.group.group import GroupState
from kcli.broker.group.models import OffsetCommitEntry
from tests.broker.groups.harness import (
    Client,
    OffsetsHost,
    run_broker,
    run_host,
    settle,
    subscription,
    until,
)


async def stable_group(host: OffsetsHost, group: str, *clients: Client) -> None:
    """Join ``clients`` one after another into a stable group (the first leads)."""
    coordinator = host.groups
    first = clients[0]
    assert (await first.join_fully()).error == ErrorCode.none
    assert (await asyncio.wait_for(first.sync([(first.member_id, b"a0")]), 5)).error == 0
    for client in clients[1:]:
        pending = client.join()
        await settle()
        if pending.done() and pending.result().error == ErrorCode.member_id_required:
            client.member_id = pending.result().member_id
            pending = client.join()
            await settle()
        everyone_else = [c for c in clients if c is not client and c.member_id]
        rejoins = [c.join() for c in everyone_else]
        results = [await asyncio.wait_for(f, 5) for f in [pending, *rejoins]]
        assert {r.error for r in results} == {ErrorCode.none}, results
        for c, r in zip([client, *everyone_else], results, strict=True):
            c.generation = r.generation_id
            c.member_id = r.member_id
        leader = next(c for c, r in zip([client, *everyone_else], results, strict=True)
                      if r.members)
        syncs = [c.sync() for c in clients if c is not leader and c.member_id]
        syncs.append(leader.sync([(c.member_id, c.member_id.encode()) for c in clients
                                  if c.member_id]))
        for sync in syncs:
            assert (await asyncio.wait_for(sync, 5)).error == ErrorCode.none
    group_state = coordinator.group(group)
    assert group_state is not None
    assert group_state.state is GroupState.STABLE


def test_member_id_required_then_join_sync_heartbeat(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        host.groups.ensure_offsets_topic()
        client = Client(host.groups, "g")
        first = await client.joined(client.join())
        assert first.error == ErrorCode.member_id_required
        assert first.member_id.startswith("client-")
        result = await client.joined(client.join())
        assert (result.error, result.generation_id, result.leader) == (0, 1, client.member_id)
        assert result.protocol_name == "range"
        assert [m.member_id for m in result.members] == [client.member_id]
        assert result.members[0].metadata == subscription("t")
        synced = await asyncio.wait_for(client.sync([(client.member_id, b"mine")]), 5)
        assert (synced.error, synced.assignment) == (0, b"mine")
        assert client.heartbeat() == ErrorCode.none
        assert client.heartbeat(generation_id=7) == ErrorCode.illegal_generation
        assert client.heartbeat(member_id="nobody") == ErrorCode.unknown_member_id

    run_host(tmp_path, test)


def test_a_new_member_rebalances_the_group_and_the_leader_assigns(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a, b = Client(host.groups, "g"), Client(host.groups, "g", version=0)
        await stable_group(host, "g", a)
        b_join = b.join()  # v0: added at once, no MEMBER_ID_REQUIRED
        await settle()
        assert not b_join.done()
        assert a.heartbeat() == ErrorCode.rebalance_in_progress
        assert (await asyncio.wait_for(a.sync(), 5)).error == ErrorCode.rebalance_in_progress
        a_result = await a.joined(a.join())
        b_result = await b.joined(b_join)
        assert a_result.generation_id == b_result.generation_id == 2
        assert a_result.leader == b_result.leader == a.member_id
        assert {m.member_id for m in a_result.members} == {a.member_id, b.member_id}
        assert b_result.members == ()
        assert a.heartbeat() == ErrorCode.none  # CompletingRebalance: heartbeats are fine
        b_sync = b.sync()
        await settle()
        assert not b_sync.done()  # followers wait for the leader's assignment
        a_sync = a.sync([(a.member_id, b"A"), (b.member_id, b"B")])
        assert (await asyncio.wait_for(b_sync, 5)).assignment == b"B"
        assert (await asyncio.wait_for(a_sync, 5)).assignment == b"A"
        described = host.groups.describe_groups(["g"], not_found_error=False)[0]
        assert (described.state, described.protocol_data) == ("Stable", "range")
        assert {m.assignment for m in described.members} == {b"A", b"B"}

    run_host(tmp_path, test)


def test_protocol_selection_by_votes_among_common_protocols(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        rr, rng = ("roundrobin", b"r"), ("range", b"g")
        clients = [Client(host.groups, "votes", version=0, protocols=p)
                   for p in ([rr, rng], [rr, rng], [rng, rr])]
        futures = [c.join() for c in clients]
        results = [await c.joined(f) for c, f in zip(clients, futures, strict=True)]
        assert {r.protocol_name for r in results} == {"roundrobin"}
        leader = next(r for r in results if r.members)
        assert {m.metadata for m in leader.members} == {b"r"}  # metadata of the chosen one
        only_range = [Client(host.groups, "common", version=0, protocols=p)
                      for p in ([rr, rng], [rng], [rr, rng])]
        futures = [c.join() for c in only_range]
        results = [await c.joined(f) for c, f in zip(only_range, futures, strict=True)]
        assert {r.protocol_name for r in results} == {"range"}

    run_host(tmp_path, test)


def test_join_errors(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g")
        await stable_group(host, "g", a)
        other = Client(host.groups, "g", protocols=(("roundrobin", b""),))
        assert (await other.joined(other.join())).error == ErrorCode.inconsistent_group_protocol
        wrong_type = Client(host.groups, "g")
        wrong_type.protocol_type = "connect"
        assert (await wrong_type.joined(wrong_type.join())).error == (
            ErrorCode.inconsistent_group_protocol)
        no_type = Client(host.groups, "fresh")
        no_type.protocol_type = ""
        assert (await no_type.joined(no_type.join())).error == ErrorCode.inconsistent_group_protocol
        short = Client(host.groups, "g", session_ms=5)
        assert (await short.joined(short.join())).error == ErrorCode.invalid_session_timeout
        long = Client(host.groups, "g", session_ms=1_800_001)
        assert (await long.joined(long.join())).error == ErrorCode.invalid_session_timeout
        stranger = Client(host.groups, "nowhere")
        stranger.member_id = "made-up"
        assert (await stranger.joined(stranger.join())).error == ErrorCode.unknown_member_id
        unnamed = Client(host.groups, "")
        assert (await unnamed.joined(unnamed.join())).error == ErrorCode.invalid_group_id
        huge = Client(host.groups, "x" * 40_000)  # flexible versions allow such strings
        assert (await huge.joined(huge.join())).error == ErrorCode.invalid_group_id
        long_instance = Client(host.groups, "g", instance_id="i" * 32_760)
        assert (await long_instance.joined(long_instance.join())).error == ErrorCode.invalid_request

    run_host(tmp_path, test)


def test_group_max_size(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a, b = Client(host.groups, "g"), Client(host.groups, "g")
        await stable_group(host, "g", a)
        assert (await b.joined(b.join())).error == ErrorCode.group_max_size_reached
        assert a.heartbeat() == ErrorCode.none  # the group is untouched

    run_host(tmp_path, test, {"group.max.size": "1"})


def test_static_member_rejoins_without_rebalance_and_fences_the_old_id(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", instance_id="a")
        b = Client(host.groups, "g", instance_id="b")
        await stable_group(host, "g", a, b)
        group = host.groups.group("g")
        assert group is not None
        generation, leader = group.generation_id, group.leader_id
        old_id = a.member_id
        assert old_id.startswith("a-")  # static member ids carry the instance id
        again = Client(host.groups, "g", instance_id="a")
        result = await again.joined(again.join())
        assert result.error == ErrorCode.none
        assert result.member_id != old_id
        assert result.generation_id == generation  # no rebalance
        assert group.state is GroupState.STABLE
        if leader == old_id:
            # before v9 the old leader id is named, so the new member does not assign
            assert result.leader == old_id
            assert result.members == ()
        synced = await asyncio.wait_for(again.sync(), 5)
        assert synced.assignment == old_id.encode()  # the old member's assignment
        assert a.heartbeat() == ErrorCode.fenced_instance_id
        assert b.heartbeat() == ErrorCode.none
        assert a.heartbeat(group_instance_id=None) == ErrorCode.unknown_member_id

    run_host(tmp_path, test)


def test_static_leader_rejoin_v9_skips_assignment(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", instance_id="a", version=9)
        await stable_group(host, "g", a)
        again = Client(host.groups, "g", instance_id="a", version=9)
        result = await again.joined(again.join())
        assert (result.error, result.skip_assignment, result.leader) == (0, True, result.member_id)
        assert [m.group_instance_id for m in result.members] == ["a"]

    run_host(tmp_path, test)


def test_static_member_with_other_protocols_rebalances(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", instance_id="a")
        await stable_group(host, "g", a)
        again = Client(host.groups, "g", instance_id="a",
                       protocols=(("roundrobin", b""), ("range", b"")))
        result = await again.joined(again.join())
        assert result.error == ErrorCode.none
        assert result.generation_id == 2
        assert result.protocol_name == "roundrobin"

    run_host(tmp_path, test)


def test_session_timeout_expels_a_silent_member(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", session_ms=300)
        b = Client(host.groups, "g", session_ms=60)
        await stable_group(host, "g", a, b)
        group = host.groups.group("g")
        assert group is not None

        async def keep_alive() -> None:
            while True:
                a.heartbeat()
                await asyncio.sleep(0.02)

        heartbeats = asyncio.create_task(keep_alive())
        await until(lambda: group.state is GroupState.PREPARING_REBALANCE)
        heartbeats.cancel()
        assert b.member_id not in group.members
        result = await a.joined(a.join())
        assert result.error == ErrorCode.none
        assert [m.member_id for m in result.members] == [a.member_id]
        assert b.heartbeat() == ErrorCode.unknown_member_id

    run_host(tmp_path, test)


def test_rebalance_timeout_drops_members_that_do_not_rejoin(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", rebalance_ms=100)
        b = Client(host.groups, "g", rebalance_ms=100)
        await stable_group(host, "g", a, b)
        a_join = a.join(protocols=(("range", subscription("t", "u")),))  # a forces a rebalance
        result = await a.joined(a_join)  # b never rejoins: done after the rebalance timeout
        assert result.error == ErrorCode.none
        assert [m.member_id for m in result.members] == [a.member_id]
        assert b.heartbeat() == ErrorCode.unknown_member_id

    run_host(tmp_path, test)


def test_pending_member_that_never_rejoins_is_forgotten(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g")
        await stable_group(host, "g", a)
        ghost = Client(host.groups, "g", session_ms=50)
        assert (await ghost.joined(ghost.join())).error == ErrorCode.member_id_required
        group = host.groups.group("g")
        assert group is not None
        assert group.is_pending_member(ghost.member_id)
        await until(lambda: not group.is_pending_member(ghost.member_id))
        assert a.heartbeat() == ErrorCode.none

    run_host(tmp_path, test)


def test_leave_group_batched_by_instance_id(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", instance_id="a")
        b = Client(host.groups, "g", instance_id="b")
        await stable_group(host, "g", a, b)
        error, results = host.groups.leave_group(
            group_id="g", members=[("", "a"), ("", "b"), ("", "c"), (b.member_id, "a")])
        assert error == ErrorCode.none
        assert [r[2] for r in results] == [0, 0, ErrorCode.unknown_member_id,
                                           ErrorCode.unknown_member_id]
        group = host.groups.group("g")
        assert group is not None
        assert group.state is GroupState.EMPTY
        assert host.groups.leave_group(group_id="nope", members=[("x", None)])[0] == (
            ErrorCode.unknown_member_id)

    run_host(tmp_path, test)


def test_leave_fences_a_stale_static_member(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a = Client(host.groups, "g", instance_id="a")
        await stable_group(host, "g", a)
        _error, results = host.groups.leave_group(group_id="g", members=[("other-id", "a")])
        assert results[0][2] == ErrorCode.fenced_instance_id

    run_host(tmp_path, test)


def test_offset_commit_rules(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 2)
        coordinator = host.groups

        async def commit(group: str, generation: int = -1, member: str = "",
                         version: int = 9, **entry: object) -> list[int]:
            fields = {"topic": "t", "partition": 0, "offset": 5, "metadata": "m"} | entry
            return await coordinator.commit_offsets(
                group_id=group, generation_id=generation, member_id=member,
                group_instance_id=None, entries=[OffsetCommitEntry(**fields)],  # type: ignore[arg-type]
                api_version=version)

        # without membership: creates an Empty group holding the offsets
        assert await commit("simple") == [0]
        assert coordinator.describe_groups(["simple"], not_found_error=True)[0].state == "Empty"
        error, fetched = coordinator.fetch_offsets("simple", [("t", [0, 1])])
        assert error == 0
        assert [(o.partition, o.offset, o.metadata) for o in fetched[0][1]] == [
            (0, 5, "m"), (1, -1, "")]
        assert await commit("simple", topic="nope") == [ErrorCode.unknown_topic_or_partition]
        assert await commit("simple", partition=2) == [ErrorCode.unknown_topic_or_partition]
        assert await commit("simple", metadata="x" * 4097) == [ErrorCode.offset_metadata_too_large]
        assert await commit("simple", metadata="x" * 4096) == [0]
        assert await commit("ghost", generation=3) == [ErrorCode.group_id_not_found]
        assert await commit("ghost", generation=3, version=8) == [ErrorCode.illegal_generation]

        a = Client(coordinator, "g")
        await stable_group(host, "g", a)
        assert await commit("g") == [ErrorCode.unknown_member_id]  # members exist
        assert await commit("g", a.generation + 1, a.member_id) == [ErrorCode.illegal_generation]
        assert await commit("g", a.generation, "stranger") == [ErrorCode.unknown_member_id]
        assert await commit("g", a.generation, a.member_id) == [0]
        b = Client(coordinator, "g", version=0)
        b_join = b.join()
        await settle()
        # PreparingRebalance: members of the current generation may still commit
        assert await commit("g", a.generation, a.member_id, offset=6) == [0]
        a_join = a.join()
        await b.joined(b_join)
        old = a.generation
        await a.joined(a_join)
        assert await commit("g", old, a.member_id) == [ErrorCode.illegal_generation]
        assert await commit("g", a.generation, a.member_id) == [ErrorCode.rebalance_in_progress]

    run_host(tmp_path, test)


def test_offset_delete_refuses_subscribed_topics(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        for name in ("t", "u"):
            await host.create_topic(name, 1)
        coordinator = host.groups
        a = Client(coordinator, "g")  # subscribes to "t"
        await stable_group(host, "g", a)
        entries = [OffsetCommitEntry("t", 0, 3), OffsetCommitEntry("u", 0, 4)]
        assert await coordinator.commit_offsets(
            group_id="g", generation_id=a.generation, member_id=a.member_id,
            group_instance_id=None, entries=entries) == [0, 0]
        error, results = await coordinator.delete_offsets("g", [("t", [0]), ("u", [0])])
        assert error == 0
        assert results == [("t", [(0, ErrorCode.group_subscribed_to_topic)]), ("u", [(0, 0)])]
        assert set(coordinator.committed("g")) == {("t", 0)}
        assert (await coordinator.delete_offsets("none", [("t", [0])]))[0] == (
            ErrorCode.group_id_not_found)

    run_host(tmp_path, test)


def test_delete_groups(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        coordinator = host.groups
        a = Client(coordinator, "busy")
        await stable_group(host, "busy", a)
        await coordinator.commit_offsets(group_id="idle", generation_id=-1, member_id="",
                                         group_instance_id=None,
                                         entries=[OffsetCommitEntry("t", 0, 1)])
        results = await coordinator.delete_groups(["busy", "idle", "unknown", None])
        assert results == [("busy", ErrorCode.non_empty_group), ("idle", 0),
                           ("unknown", ErrorCode.group_id_not_found),
                           (None, ErrorCode.invalid_group_id)]
        assert coordinator.committed("idle") == {}
        assert coordinator.describe_groups(["idle"], not_found_error=True)[0].error == (
            ErrorCode.group_id_not_found)
        assert coordinator.describe_groups(["idle"], not_found_error=False)[0].state == "Dead"

    run_host(tmp_path, test)


def test_list_groups_filters(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        coordinator = host.groups
        await stable_group(host, "active", Client(coordinator, "active"))
        await coordinator.commit_offsets(group_id="idle", generation_id=-1, member_id="",
                                         group_instance_id=None,
                                         entries=[OffsetCommitEntry("t", 0, 1)])

        def names(states: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> list[str]:
            error, listed = coordinator.list_groups(states, types)
            assert error == 0
            return [g.group_id for g in listed]

        assert names() == ["active", "idle"]
        assert names(("stable",)) == ["active"]
        assert names(("Empty", "STABLE")) == ["active", "idle"]
        assert names(types=("Classic",)) == ["active", "idle"]
        assert names(types=("consumer",)) == []

    run_host(tmp_path, test)


def test_groups_and_offsets_survive_a_restart(tmp_path: Path) -> None:
    state: dict[str, object] = {}

    async def before(host: OffsetsHost) -> None:
        await host.create_topic("t", 2)
        a = Client(host.groups, "g", instance_id="i-1", session_ms=100)
        await stable_group(host, "g", a)
        await host.groups.commit_offsets(
            group_id="g", generation_id=a.generation, member_id=a.member_id,
            group_instance_id="i-1",
            entries=[OffsetCommitEntry("t", 0, 10, 3, "résumé ✓"), OffsetCommitEntry("t", 1, 20)])
        await host.groups.commit_offsets(
            group_id="gone", generation_id=-1, member_id="", group_instance_id=None,
            entries=[OffsetCommitEntry("t", 0, 1)])
        assert (await host.groups.delete_groups(["gone"]))[0][1] == 0
        state.update(member=a.member_id, generation=a.generation)

    async def after(host: OffsetsHost) -> None:
        coordinator = host.groups
        group = coordinator.group("g")
        assert group is not None
        assert group.state is GroupState.STABLE
        assert group.generation_id == state["generation"]
        assert list(group.members) == [state["member"]]
        member = group.members[str(state["member"])]
        assert (member.group_instance_id, member.client_host) == ("i-1", "/127.0.0.1")
        assert member.assignment == b"a0"
        assert group.protocol_name == "range"
        assert group.protocol_type == "consumer"
        assert group.subscribed_topics == frozenset({"t"})
        committed = coordinator.committed("g")
        assert committed[("t", 0)].offset == 10
        assert committed[("t", 0)].metadata == "résumé ✓"
        assert committed[("t", 0)].leader_epoch == 3
        assert committed[("t", 1)].offset == 20
        assert coordinator.group("gone") is None
        assert coordinator.committed("gone") == {}
        # nobody heartbeats for the loaded member: its session expires
        await until(lambda: group.state is GroupState.EMPTY)

    run_host(tmp_path / "b", before)
    run_host(tmp_path / "b", after)


def test_garbage_in_the_offsets_log_is_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from kcli.broker.group.records import (
        OffsetCommitKey,
        OffsetCommitValue,
        encode_offset_commit_key,
        encode_offset_commit_value,
        partition_for_group,
    )
    from kcli.broker.log import Record

    async def write(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        topic = host.groups.ensure_offsets_topic()
        index = partition_for_group("g", len(topic.partitions))
        partition = host.partition(OFFSETS_TOPIC, index)
        assert partition is not None
        good = encode_offset_commit_key(OffsetCommitKey("g", "t", 0))
        partition.append_records([
            Record(0, 0, None, b"no key"),
            Record(0, 0, b"\x00", b"short key"),
            Record(0, 0, b"\x00\x01\x7f\xff", b"string past the end"),
            Record(0, 0, good, b"\x00\x03 not an offset"),
            Record(0, 0, good, encode_offset_commit_value(OffsetCommitValue(7, "ok", 1))),
            Record(0, 0, b"\x00\x02\x00\x01g", b"\x00\x03\x00\x08consumer"),  # truncated value
            Record(0, 0, b"\x00\x09whatever", b"a future record type"),
        ])
        # a batch whose bytes rot on disk: skipped by its CRC
        partition.append_records([Record(0, 0, good, encode_offset_commit_value(
            OffsetCommitValue(99, "rotten", 1)))])
        second = encode_offset_commit_key(OffsetCommitKey("g", "t", 1))
        partition.append_records(
            [Record(0, 0, second, encode_offset_commit_value(OffsetCommitValue(8, "", 1)))])
        state["index"] = index

    state: dict[str, int] = {}
    run_host(tmp_path / "b", write)
    segment = next((tmp_path / "b" / f"{OFFSETS_TOPIC}-{state['index']}").glob("*.log"))
    data = bytearray(segment.read_bytes())
    position = data.rfind(b"rotten")
    data[position:position + 6] = b"ROTTEN"
    segment.write_bytes(bytes(data))

    async def load(host: OffsetsHost) -> None:
        committed = host.groups.committed("g")
        assert {k: v.offset for k, v in committed.items()} == {("t", 0): 7, ("t", 1): 8}
        assert host.groups.describe_groups(["g"], not_found_error=True)[0].error == 0

    with caplog.at_level(logging.WARNING, logger="kcli.broker.group"):
        run_host(tmp_path / "b", load)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("skipping" in m for m in messages) >= 5, messages
    assert any("bad CRC" in m for m in messages), messages


def test_offsets_of_a_deleted_topic_are_removed(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        for name in ("t", "u"):
            await host.create_topic(name, 1)
        entries = [OffsetCommitEntry("t", 0, 1), OffsetCommitEntry("u", 0, 2)]
        await host.groups.commit_offsets(group_id="g", generation_id=-1, member_id="",
                                           group_instance_id=None, entries=entries)
        await host.delete_topic("t")
        assert set(host.groups.committed("g")) == {("u", 0)}

    run_host(tmp_path / "b", test)

    async def reloaded(host: OffsetsHost) -> None:
        assert set(host.groups.committed("g")) == {("u", 0)}

    run_host(tmp_path / "b", reloaded)


def test_offsets_expire_after_retention(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        coordinator = host.groups
        await coordinator.commit_offsets(group_id="old", generation_id=-1, member_id="",
                                         group_instance_id=None,
                                         entries=[OffsetCommitEntry("t", 0, 1)])
        a = Client(coordinator, "live")
        await stable_group(host, "live", a)
        await coordinator.commit_offsets(group_id="live", generation_id=a.generation,
                                         member_id=a.member_id, group_instance_id=None,
                                         entries=[OffsetCommitEntry("t", 0, 1)])
        later = int(time.time() * 1000) + 60_001
        assert coordinator.expire_offsets(later) == 2  # old: offset + group tombstone
        assert coordinator.group("old") is None
        assert set(coordinator.committed("live")) == {("t", 0)}  # subscribed: kept

    run_host(tmp_path, test, {"offsets.retention.minutes": "1"})


def test_losing_leadership_answers_not_coordinator_and_regaining_reloads(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        coordinator = host.groups
        a = Client(coordinator, "g")
        await stable_group(host, "g", a)
        b = Client(coordinator, "g", version=0)
        parked = b.join()
        await settle()
        topic = coordinator.ensure_offsets_topic()
        state = topic.partitions[coordinator.partition_for("g")]
        state.leader = 2
        host.apply_metadata()
        assert (await asyncio.wait_for(parked, 5)).error == ErrorCode.not_coordinator
        assert a.heartbeat() == ErrorCode.not_coordinator
        state.leader = 1
        host.apply_metadata()
        group = coordinator.group("g")
        assert group is not None
        assert group.state is GroupState.STABLE
        assert a.heartbeat() == ErrorCode.none

    run_host(tmp_path, test)


def test_a_large_partition_loads_in_the_background(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        coordinator = host.groups
        for i in range(50):
            await coordinator.commit_offsets(group_id="g", generation_id=-1, member_id="",
                                             group_instance_id=None,
                                             entries=[OffsetCommitEntry("t", 0, i)])
        coordinator.start()
        topic = coordinator.ensure_offsets_topic()
        state = topic.partitions[coordinator.partition_for("g")]
        state.leader = 2
        host.apply_metadata()
        state.leader = 1
        host.apply_metadata()
        assert coordinator.fetch_offsets("g", None)[0] == ErrorCode.coordinator_load_in_progress
        assert coordinator.list_groups()[0] == ErrorCode.coordinator_load_in_progress
        await until(lambda: coordinator.fetch_offsets("g", None)[0] == ErrorCode.none)
        assert coordinator.committed("g")[("t", 0)].offset == 49

    run_host(tmp_path, test, {"offsets.load.buffer.size": "200"})


def test_initial_rebalance_delay_gathers_the_first_members(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        a, b = Client(host.groups, "g", version=0), Client(host.groups, "g", version=0)
        a_join = a.join()
        await asyncio.sleep(0.05)
        assert not a_join.done()  # still waiting for more members
        b_join = b.join()  # a new member extends the delay (up to the rebalance timeout)
        first, second = await a.joined(a_join), await b.joined(b_join)
        assert first.generation_id == second.generation_id == 1
        assert len(first.members or second.members) == 2

    run_host(tmp_path, test, {"group.initial.rebalance.delay.ms": "200"})


# How the coordinator meets a whole broker: the topic is created on a Metadata request
# and the controller refuses to delete it.

def test_the_offsets_topic_is_internal_compacted_and_created_once(tmp_path: Path) -> None:
    async def test(broker: Broker) -> None:
        assert broker.topic(OFFSETS_TOPIC) is None
        topic = await broker.auto_create_topic(OFFSETS_TOPIC)  # a Metadata request naming it
        assert topic.internal
        assert len(topic.partitions) == 5
        assert topic.configs["cleanup.policy"] == "compact"
        assert broker.groups.ensure_offsets_topic() is topic
        assert len(broker.groups.committed("g")) == 0
        with pytest.raises(ControllerError, match="internal"):
            await broker.delete_topic(OFFSETS_TOPIC)

    run_broker(tmp_path, test, {"offsets.topic.num.partitions": "5"})


@pytest.mark.parametrize("hidden", [0, 1], ids=["seen-on-refresh", "already-exists"])
def test_first_group_use_on_a_coordinator_with_a_stale_view(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, hidden: int) -> None:
    """Broker 1 answers the first FindCoordinator of a new cluster: it creates the
    offsets topic and names broker 2, which has not seen the topic (nor the group's
    topic) yet. Broker 2 must look again, not answer from its stale view: the first
    commit succeeds and nothing logs "already exists"; so does a commit for a topic
    created through broker 1 a moment before. With ``already-exists``, its
    first look still misses the topic, so it tries to create it and must take "already
    exists" as "look again and use it"."""
    from kcli.broker.group.records import partition_for_group
    from tests.broker.groups.harness import FAST, SharedMetadata

    settings = {**FAST, "offsets.topic.num.partitions": "4"}

    async def main() -> None:
        shared = SharedMetadata([1, 2])
        x = OffsetsHost(tmp_path / "1", settings, node_id=1, shared=shared)
        y = OffsetsHost(tmp_path / "2", settings, node_id=2, shared=shared)
        try:
            group = next(g for g in (f"g{i}" for i in range(100))
                         if partition_for_group(g, 4) % 2 == 1)  # led by node 2
            await x.create_topic("t", 1)
            assert x.groups.find_coordinator(group).node_id == 2
            assert y.topic(OFFSETS_TOPIC) is None  # stale until it looks again
            shared.hidden_refreshes = hidden
            codes = await y.groups.commit_offsets(
                group_id=group, generation_id=-1, member_id="", group_instance_id=None,
                entries=[OffsetCommitEntry("t", 0, 7)])
            assert codes == [ErrorCode.none]
            assert y.groups.committed(group)[("t", 0)].offset == 7
            assert y.groups.find_coordinator(group).node_id == 2
            await x.create_topic("t2", 1)  # y has not seen this one either
            codes = await y.groups.commit_offsets(
                group_id=group, generation_id=-1, member_id="", group_instance_id=None,
                entries=[OffsetCommitEntry("t2", 0, 3)])
            assert codes == [ErrorCode.none]
        finally:
            x.close()
            y.close()

    with caplog.at_level(logging.INFO, logger="kcli.broker"):
        asyncio.run(main())
    assert "already exists" not in caplog.text
