"""The consumer group protocol (KIP-848) driven in-process, heartbeat by heartbeat, as a
client would drive it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.group.consumer_protocol import HeartbeatAnswer, HeartbeatRequest
from kcli.broker.group.models import OffsetCommitEntry
from tests.broker.groups.harness import Client, OffsetsHost, run_host, subscription, until


class Member:
    """One consumer protocol member: what it owns and its epoch, as the client keeps them."""

    def __init__(self, host: OffsetsHost, group: str, *topics: str, regex: str | None = None,
                 assignor: str | None = None, instance_id: str | None = None) -> None:
        self.host = host
        self.group = group
        self.topics = topics
        self.regex = regex
        self.assignor = assignor
        self.instance_id = instance_id
        self.member_id = str(uuid.uuid4())
        self.epoch = 0
        self.owned: list[tuple[uuid.UUID, list[int]]] = []

    async def beat(self, **changes: Any) -> HeartbeatAnswer:
        """A heartbeat; a new assignment is taken at once (revocations too)."""
        joining = self.epoch == 0
        fields: dict[str, Any] = {
            "group_id": self.group, "member_id": self.member_id, "member_epoch": self.epoch,
            "client_id": "c", "client_host": "/127.0.0.1", "instance_id": self.instance_id,
            "rebalance_timeout_ms": 30_000 if joining else -1,
            "subscribed_topic_names": (self.topics or None) if joining else None,
            "subscribed_topic_regex": self.regex if joining else None,
            "server_assignor": self.assignor if joining else None,
            "owned": self.owned,
        }
        fields.update(changes)
        answer = await self.host.groups.consumer_heartbeat(HeartbeatRequest(**fields))
        if answer.error == ErrorCode.none:
            self.epoch = answer.member_epoch
            if answer.assignment is not None:
                self.owned = answer.assignment
        return answer

    def partitions(self, topic: str) -> set[int]:
        topic_id = self.host.topics[topic].topic_id
        return {p for tid, ps in self.owned for p in ps if tid == topic_id}


def run(tmp_path: Path, test: Any, **settings: str) -> None:
    run_host(tmp_path, test, settings)


def test_two_members_split_then_one_leaves(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 4)
        a = Member(host, "g", "t")
        first = await a.beat()
        assert (first.error, first.member_epoch) == (ErrorCode.none, 1)
        assert a.partitions("t") == {0, 1, 2, 3}
        assert first.heartbeat_interval_ms == 5000

        b = Member(host, "g", "t")
        joined = await b.beat()
        # everything is still a's: b waits at the new epoch with nothing
        assert (joined.member_epoch, b.partitions("t")) == (2, set())
        revoke = await a.beat()
        assert revoke.member_epoch == 1  # a keeps its epoch until it has let go
        kept = a.partitions("t")
        assert len(kept) == 2
        assert (await a.beat()).member_epoch == 2  # a reports it let go: the new epoch
        assert (await a.beat()).assignment is None  # nothing changed: no assignment sent
        await b.beat()
        assert b.partitions("t") == {0, 1, 2, 3} - kept
        described = host.groups.describe_consumer_groups(["g"])[0]
        assert (described.state, described.group_epoch, described.assignment_epoch,
                described.assignor) == ("Stable", 2, 2, "uniform")

        left = await b.beat(member_epoch=-1)
        assert (left.error, left.member_epoch) == (ErrorCode.none, -1)
        await a.beat()
        assert (a.epoch, a.partitions("t")) == (3, {0, 1, 2, 3})

    run(tmp_path, test)


def test_epoch_fencing_and_lost_responses(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 2)
        a = Member(host, "g", "t")
        await a.beat()
        ahead = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", a.member_id, 7, "c", "/h", owned=a.owned))
        assert ahead.error == ErrorCode.fenced_member_epoch
        b = Member(host, "g", "t")
        await b.beat()
        await a.beat()  # revoke one
        await a.beat()  # epoch 2 now, its previous epoch 1
        # the answer that moved it to epoch 2 was lost: epoch 1 with a subset is accepted
        again = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", a.member_id, 1, "c", "/h", owned=a.owned))
        assert (again.error, again.member_epoch) == (ErrorCode.none, 2)
        # an older epoch, or owning more than it has, is fenced
        stale = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", a.member_id, 1, "c", "/h", owned=[(host.topics["t"].topic_id, [0, 1])]))
        assert stale.error == ErrorCode.fenced_member_epoch
        unknown = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", "nobody", 3, "c", "/h"))
        assert unknown.error == ErrorCode.unknown_member_id
        # a fenced member rejoins with epoch 0 under its id and starts afresh
        a.epoch, a.owned = 0, []
        rejoined = await a.beat()
        assert rejoined.error == ErrorCode.none
        assert rejoined.member_epoch > 2

    run(tmp_path, test)


def test_bad_heartbeats_are_refused_with_kafkas_errors(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)

        async def beat(**fields: Any) -> HeartbeatAnswer:
            base: dict[str, Any] = {"group_id": "g", "member_id": "m", "member_epoch": 0,
                                    "client_id": "c", "client_host": "/h",
                                    "rebalance_timeout_ms": 1000,
                                    "subscribed_topic_names": ("t",), "owned": []}
            return await host.groups.consumer_heartbeat(HeartbeatRequest(**{**base, **fields}))

        cases = [
            ({"group_id": ""}, ErrorCode.invalid_request, "GroupId can't be empty."),
            ({"rebalance_timeout_ms": -1}, ErrorCode.invalid_request,
             "RebalanceTimeoutMs must be provided in first request."),
            ({"owned": None}, ErrorCode.invalid_request,
             "TopicPartitions must be empty when (re-)joining."),
            ({"subscribed_topic_names": None}, ErrorCode.invalid_request, None),
            ({"member_epoch": -3}, ErrorCode.invalid_request, "MemberEpoch is invalid."),
            ({"member_epoch": 1, "member_id": ""}, ErrorCode.invalid_request,
             "MemberId can't be empty."),
            ({"server_assignor": "sticky"}, ErrorCode.unsupported_assignor, None),
            ({"subscribed_topic_names": None, "subscribed_topic_regex": "t("},
             ErrorCode.invalid_regular_expression, None),
            ({"member_epoch": 3}, ErrorCode.group_id_not_found, "Consumer group g not found."),
        ]
        for fields, error, message in cases:
            answer = await beat(**fields)
            assert answer.error == error, fields
            assert answer.message, fields
            if message is not None:
                assert answer.message == message
        assert host.groups.list_groups()[1] == []  # none of them made a group

    run(tmp_path, test)


def test_regex_subscription_and_new_partitions(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("orders-eu", 1)
        await host.create_topic("orders-us", 1)
        await host.create_topic("payments", 1)
        a = Member(host, "g", regex="orders-.*")
        await a.beat()
        assert (a.partitions("orders-eu"), a.partitions("orders-us"),
                a.partitions("payments")) == ({0}, {0}, set())
        host.topics["orders-eu"].partitions.append(host.topics["orders-eu"].partitions[0])
        await host.create_topic("orders-asia", 2)
        grown = await a.beat()
        assert grown.member_epoch == 2  # new partitions and a new topic bump the epoch
        assert (a.partitions("orders-eu"), a.partitions("orders-asia")) == ({0, 1}, {0, 1})

    run(tmp_path, test)


def test_range_assignor_and_sessions(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("x", 3)
        await host.create_topic("y", 3)
        members = [Member(host, "g", "x", "y", assignor="range") for _ in range(2)]
        members.sort(key=lambda m: m.member_id)
        for _ in range(4):
            for m in members:
                await m.beat()
        first, second = members
        # co-partitioned: the same partitions of x and y go to the same member
        assert first.partitions("x") == first.partitions("y") == {0, 1}
        assert second.partitions("x") == second.partitions("y") == {2}
        assert host.groups.describe_consumer_groups(["g"])[0].assignor == "range"
        # the second stops heartbeating: its session expires and the first takes all
        for _ in range(30):
            await first.beat()
            if first.partitions("x") == {0, 1, 2}:
                break
            await asyncio.sleep(0.05)
        assert first.partitions("x") == first.partitions("y") == {0, 1, 2}
        (remaining,) = host.groups.describe_consumer_groups(["g"])[0].members
        assert remaining.member.member_id == first.member_id

    run(tmp_path, test, **{"group.consumer.session.timeout.ms": "300"})


def test_offset_commits_check_the_member_epoch(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        a = Member(host, "g", "t")
        await a.beat()
        entry = [OffsetCommitEntry("t", 0, 5)]

        async def commit(member_id: str, epoch: int, version: int = 9) -> int:
            (code,) = await host.groups.commit_offsets(
                group_id="g", generation_id=epoch, member_id=member_id,
                group_instance_id=None, entries=entry, api_version=version)
            return code

        assert await commit(a.member_id, 1) == ErrorCode.none
        assert await commit(a.member_id, 0) == ErrorCode.stale_member_epoch
        assert await commit(a.member_id, 2) == ErrorCode.fenced_member_epoch
        assert await commit(a.member_id, 1, version=8) == ErrorCode.unsupported_version
        assert await commit("other", 1) == ErrorCode.unknown_member_id
        assert await commit("", -1) == ErrorCode.unknown_member_id  # not while it has members
        fetched = host.groups.fetch_offsets("g", [("t", [0])], a.member_id, 0)
        assert fetched[0] == ErrorCode.stale_member_epoch
        error, found = host.groups.fetch_offsets("g", [("t", [0])], a.member_id, 1)
        assert (error, found[0][1][0].offset) == (ErrorCode.none, 5)
        await a.beat(member_epoch=-1)
        assert await commit("", -1) == ErrorCode.none  # an empty group takes admin commits

    run(tmp_path, test)


def test_empty_groups_change_protocol_at_once(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        classic = Client(host.groups, "g", protocols=(("range", subscription("t")),))
        assert (await classic.join_fully()).error == ErrorCode.none
        host.groups.leave_group(group_id="g", members=[(classic.member_id, None)])
        a = Member(host, "g", "t")
        assert (await a.beat()).error == ErrorCode.none  # the empty classic group converts
        listed = host.groups.list_groups(types=["consumer"])[1]
        assert [(g.group_id, g.group_type, g.state) for g in listed] == [
            ("g", "consumer", "Stable")]
        assert host.groups.list_groups(types=["classic"])[1] == []
        assert (await host.groups.delete_groups(["g"])) == [("g", ErrorCode.non_empty_group)]
        await a.beat(member_epoch=-1)
        newcomer = Client(host.groups, "g")
        assert (await newcomer.join_fully()).error == ErrorCode.none  # empty: back to classic
        assert host.groups.list_groups(types=["consumer"])[1] == []
        assert host.groups.describe_consumer_groups(["g"])[0].error == (
            ErrorCode.group_id_not_found)

    run(tmp_path, test)


def test_the_group_and_its_epoch_survive_a_reload(tmp_path: Path) -> None:
    member_id = ""

    async def first(host: OffsetsHost) -> None:
        nonlocal member_id
        await host.create_topic("t", 1)
        a = Member(host, "g", "t")
        await a.beat()
        member_id = a.member_id
        (code,) = await host.groups.commit_offsets(
            group_id="g", generation_id=1, member_id=a.member_id, group_instance_id=None,
            entries=[OffsetCommitEntry("t", 0, 9)], api_version=9)
        assert code == ErrorCode.none

    async def second(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        await until(lambda: not host.groups.list_groups()[0])
        described = host.groups.describe_consumer_groups(["g"])[0]
        assert (described.error, described.state, described.group_epoch) == (
            ErrorCode.none, "Empty", 1)
        # members are not stored: the old member is told to rejoin
        lost = await host.groups.consumer_heartbeat(HeartbeatRequest(
            "g", member_id, 1, "c", "/h"))
        assert lost.error == ErrorCode.unknown_member_id
        again = Member(host, "g", "t")
        again.member_id = member_id
        assert (await again.beat()).member_epoch == 2
        assert host.groups.fetch_offsets("g", [("t", [0])])[1][0][1][0].offset == 9

    run(tmp_path, first)
    run(tmp_path, second)


def test_empty_consumer_groups_are_deleted_with_their_offsets(tmp_path: Path) -> None:
    async def test(host: OffsetsHost) -> None:
        await host.create_topic("t", 1)
        a = Member(host, "g", "t")
        await a.beat()
        await host.groups.commit_offsets(
            group_id="g", generation_id=1, member_id=a.member_id, group_instance_id=None,
            entries=[OffsetCommitEntry("t", 0, 3)], api_version=9)
        await a.beat(member_epoch=-1)
        assert await host.groups.delete_groups(["g"]) == [("g", ErrorCode.none)]
        assert host.groups.list_groups()[1] == []
        assert host.groups.committed("g") == {}

    run(tmp_path, test)
