"""Groups moving between the classic and the consumer protocol while members run
(KIP-848's online migration), driven in-process: classic members through JoinGroup,
SyncGroup and Heartbeat, consumer protocol members through heartbeats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.group.consumer_protocol import HeartbeatRequest
from kcli.broker.group.embedded import encode_assignment, parse_assignment
from kcli.broker.group.group import GroupState
from kcli.broker.group.models import OffsetCommitEntry
from tests.broker.groups.harness import Client, OffsetsHost, run_host, subscription
from tests.broker.groups.test_consumer_protocol import Member

TOPIC = "t"


class Classic:
    """A classic (eager) consumer: it gives up everything before it rejoins."""

    def __init__(self, host: OffsetsHost, group: str) -> None:
        self.client = Client(host.groups, group, protocols=(("range", subscription(TOPIC)),))
        self.owned: set[int] = set()

    async def join(self) -> Any:
        self.owned = set()
        return await self.client.join_fully()

    async def sync(self, assignments: dict[str, set[int]] | None = None) -> int:
        given = [(m, encode_assignment({TOPIC: frozenset(ps)}, 0))
                 for m, ps in (assignments or {}).items()]
        result = await asyncio.wait_for(self.client.sync(given), 5)
        if result.error == ErrorCode.none:
            self.owned = set(parse_assignment(result.assignment).get(TOPIC, frozenset()))
        return int(result.error)

    async def catch_up(self) -> None:
        """Heartbeat; rejoin and sync when told to rebalance."""
        if self.client.heartbeat() == ErrorCode.rebalance_in_progress:
            assert (await self.join()).error == ErrorCode.none
            assert await self.sync() == ErrorCode.none


async def classic_group(host: OffsetsHost, size: int) -> list[Classic]:
    """A stable classic group of ``size`` eager members; the leader splits 4 partitions."""
    members = [Classic(host, "g") for _ in range(size)]
    joins = [asyncio.ensure_future(m.join()) for m in members]
    await asyncio.sleep(0.05)
    results = [await asyncio.wait_for(j, 5) for j in joins]
    assert {r.error for r in results} == {ErrorCode.none}
    ids = [m.client.member_id for m in members]
    plan = {member_id: {p for p in range(4) if p % size == i} for i, member_id in enumerate(ids)}
    syncs = [m.sync(plan if r.members else None) for m, r in zip(members, results, strict=True)]
    assert await asyncio.gather(*syncs) == [ErrorCode.none] * size
    return members


def held_once(classics: list[Classic], modern: list[Member]) -> set[int]:
    seen: list[int] = [p for c in classics for p in c.owned]
    seen += [p for m in modern for p in m.partitions(TOPIC)]
    assert len(seen) == len(set(seen)), f"a partition held twice: {sorted(seen)}"
    return set(seen)


def test_upgrade_mixed_group_and_downgrade(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic(TOPIC, 4)
        classics = await classic_group(host, 2)
        generation = classics[0].client.generation
        modern = Member(host, "g", TOPIC)
        joined = await modern.beat()
        assert joined.error == ErrorCode.none
        assert joined.member_epoch == generation + 1
        described = host.groups.describe_consumer_groups(["g"])[0]
        assert described.state == "Reconciling"
        assert {m.member.member_id: m.member.member_epoch for m in described.members
                if m.member.classic} == {c.client.member_id: generation for c in classics}
        # the classic members are told to rebalance; the newcomer waits for what they free
        for _ in range(3):
            for c in classics:
                await c.catch_up()
                held_once(classics, [modern])
            await modern.beat()
            held_once(classics, [modern])
        assert held_once(classics, [modern]) == {0, 1, 2, 3}
        shares = sorted([*(len(c.owned) for c in classics), len(modern.partitions(TOPIC))])
        assert shares == [1, 1, 2]
        assert host.groups.describe_consumer_groups(["g"])[0].state == "Stable"
        assert all(c.client.heartbeat() == ErrorCode.none for c in classics)

        # a classic member commits in its generation, which is its member epoch
        first = classics[0].client

        async def commit(generation: int) -> int:
            (code,) = await host.groups.commit_offsets(
                group_id="g", generation_id=generation, member_id=first.member_id,
                group_instance_id=None, entries=[OffsetCommitEntry(TOPIC, 0, 1)],
                api_version=7)
            return code

        assert await commit(first.generation) == ErrorCode.none
        assert await commit(first.generation - 1) == ErrorCode.illegal_generation

        # the last consumer protocol member leaves: a classic group again, rebalancing
        await modern.beat(member_epoch=-1)
        group = host.groups.group("g")
        assert group is not None
        assert group.state is GroupState.PREPARING_REBALANCE
        assert host.groups.describe_consumer_groups(["g"])[0].error == (
            ErrorCode.group_id_not_found)
        rejoins = [asyncio.ensure_future(c.join()) for c in classics]
        results = [await asyncio.wait_for(j, 5) for j in rejoins]
        assert {r.error for r in results} == {ErrorCode.none}
        assert results[0].generation_id > generation

    run_host(tmp_path, test)


def test_classic_members_join_leave_and_are_checked(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic(TOPIC, 4)
        modern = Member(host, "g", TOPIC)
        await modern.beat()
        newcomer = Classic(host, "g")
        joined = await newcomer.join()
        assert (joined.error, joined.protocol_type, joined.protocol_name, joined.members) == (
            ErrorCode.none, "consumer", "range", ())
        assert joined.generation_id == 2  # the group epoch it joined in
        assert await newcomer.sync() == ErrorCode.none
        assert newcomer.owned == set()  # all still held by the modern member
        await modern.beat()  # it gives up half
        await modern.beat()
        await newcomer.catch_up()
        assert len(newcomer.owned) == 2
        assert held_once([newcomer], [modern]) == {0, 1, 2, 3}
        client = newcomer.client
        assert client.heartbeat(generation_id=client.generation + 5) == (
            ErrorCode.illegal_generation)
        assert client.heartbeat(member_id="nobody") == ErrorCode.unknown_member_id
        # a consumer protocol heartbeat from a classic member is not accepted
        wrong = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", client.member_id, client.generation, "c", "/h"))
        assert wrong.error == ErrorCode.unknown_member_id
        bad = Client(host.groups, "g", protocols=(("range", b"\x00"),))
        assert (await bad.join_fully()).error == ErrorCode.inconsistent_group_protocol
        # it leaves: the consumer protocol member takes everything back
        error, results = host.groups.leave_group(group_id="g",
                                                 members=[(client.member_id, None)])
        assert (error, results) == (ErrorCode.none, [(client.member_id, None, ErrorCode.none)])
        await modern.beat()
        assert modern.partitions(TOPIC) == {0, 1, 2, 3}

    run_host(tmp_path, test)


def test_the_migration_policy(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic(TOPIC, 4)
        await classic_group(host, 1)
        refused = await Member(host, "g", TOPIC).beat()
        assert refused.error == ErrorCode.group_id_not_found
        assert "does not allow upgrades" in (refused.message or "")

    run_host(tmp_path, test, {"group.consumer.migration.policy": "disabled"})
