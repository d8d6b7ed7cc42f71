"""Every advertised version of every group API, on the wire, with the answers Kafka gives."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from kcli.broker.handlers.base import make
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS, ApiKey
from tests.broker.groups.conftest import create_topic
from tests.broker.groups.harness import subscription
from tests.support.wire import WireClient

NONE, MEMBER_ID_REQUIRED, INCONSISTENT_GROUP_PROTOCOL = 0, 79, 23


def versions(api: ApiKey) -> range:
    low, high = SUPPORTED_VERSIONS[api]
    return range(low, high + 1)


def body(api: ApiKey, version: int, nested: str | None = None, **values: Any) -> Any:
    """A request (or one of its ``nested`` classes) of ``version``, from the fields it has."""
    cls = load_request_schema(api, version)
    if nested is not None:
        cls = getattr(sys.modules[cls.__module__], nested)
    return make(cls, **values)


@pytest.fixture
def client(gbootstrap: str) -> Iterator[WireClient]:
    with WireClient(gbootstrap) as wire:
        yield wire


def test_group_apis_are_advertised() -> None:
    for api in (ApiKey.FIND_COORDINATOR, ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP, ApiKey.HEARTBEAT,
                ApiKey.LEAVE_GROUP, ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_FETCH,
                ApiKey.OFFSET_DELETE, ApiKey.DESCRIBE_GROUPS, ApiKey.LIST_GROUPS,
                ApiKey.DELETE_GROUPS):
        assert api in SUPPORTED_VERSIONS
    # KIP-848: librdkafka 2.10+ sends only ConsumerGroupHeartbeat v1
    assert SUPPORTED_VERSIONS[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 1)
    assert SUPPORTED_VERSIONS[ApiKey.CONSUMER_GROUP_DESCRIBE] == (0, 1)


def test_find_coordinator_every_version(client: WireClient, gbootstrap: str,
                                        group_id: str) -> None:
    port = int(gbootstrap.rsplit(":", 1)[1])
    for version in versions(ApiKey.FIND_COORDINATOR):
        if version >= 4:
            request = body(ApiKey.FIND_COORDINATOR, version, key_type=0,
                           coordinator_keys=(group_id, f"{group_id}-2"))
            response = client.request(10, version, request)
            assert [(c.key, c.node_id, c.port, int(c.error_code))
                    for c in response.coordinators] == [
                (group_id, 1, port, NONE), (f"{group_id}-2", 1, port, NONE)]
        else:
            request = body(ApiKey.FIND_COORDINATOR, version, key=group_id, key_type=0)
            response = client.request(10, version, request)
            assert (int(response.error_code), response.node_id, response.port) == (0, 1, port)
    transactional = client.request(10, 3, body(ApiKey.FIND_COORDINATOR, 3, key="tx", key_type=1))
    assert (int(transactional.error_code), transactional.port) == (0, port)  # its coordinator
    share = client.request(10, 6, body(ApiKey.FIND_COORDINATOR, 6, key_type=2,
                                       coordinator_keys=("g:t:0",)))
    assert int(share.coordinators[0].error_code) == 42  # INVALID_REQUEST: no share groups


def join(client: WireClient, version: int, group: str, member_id: str = "",
         protocol: str = "range", **extra: Any) -> Any:
    protocols = (body(ApiKey.JOIN_GROUP, version, "JoinGroupRequestProtocol",
                      name=protocol, metadata=subscription("t")),)
    request = body(ApiKey.JOIN_GROUP, version, group_id=group, session_timeout=10_000,
                   rebalance_timeout=10_000, member_id=member_id, group_instance_id=None,
                   protocol_type="consumer", protocols=protocols, reason="test", **extra)
    return client.request(11, version, request)


def test_membership_apis_every_version(client: WireClient, group_id: str) -> None:
    for version in versions(ApiKey.JOIN_GROUP):
        group = f"{group_id}-{version}"
        response = join(client, version, group)
        if version >= 4:
            assert int(response.error_code) == MEMBER_ID_REQUIRED
            assert response.member_id.startswith("wire-")  # <client id>-<uuid>
            response = join(client, version, group, response.member_id)
        assert int(response.error_code) == NONE
        member = response.member_id
        assert (response.generation_id, response.leader, response.protocol_name) == (
            1, member, "range")
        assert [m.member_id for m in response.members] == [member]
        if version >= 7:
            assert response.protocol_type == "consumer"

        sync_version = min(version, SUPPORTED_VERSIONS[ApiKey.SYNC_GROUP][1])
        assignment = body(ApiKey.SYNC_GROUP, sync_version, "SyncGroupRequestAssignment",
                          member_id=member, assignment=b"assigned")
        sync = client.request(14, sync_version, body(
            ApiKey.SYNC_GROUP, sync_version, group_id=group, generation_id=1, member_id=member,
            group_instance_id=None, protocol_type="consumer", protocol_name="range",
            assignments=(assignment,)))
        assert (int(sync.error_code), sync.assignment) == (NONE, b"assigned")

        heartbeat_version = min(version, SUPPORTED_VERSIONS[ApiKey.HEARTBEAT][1])
        beat = client.request(12, heartbeat_version, body(
            ApiKey.HEARTBEAT, heartbeat_version, group_id=group, generation_id=1,
            member_id=member, group_instance_id=None))
        assert int(beat.error_code) == NONE

        leave_version = min(version, SUPPORTED_VERSIONS[ApiKey.LEAVE_GROUP][1])
        if leave_version >= 3:
            identity = body(ApiKey.LEAVE_GROUP, leave_version, "MemberIdentity",
                            member_id=member, group_instance_id=None, reason="done")
            left = client.request(13, leave_version, body(
                ApiKey.LEAVE_GROUP, leave_version, group_id=group, members=(identity,)))
            assert [int(m.error_code) for m in left.members] == [NONE]
        else:
            left = client.request(13, leave_version, body(
                ApiKey.LEAVE_GROUP, leave_version, group_id=group, member_id=member))
        assert int(left.error_code) == NONE


def test_sync_group_v5_checks_the_protocol(client: WireClient, group_id: str) -> None:
    first = join(client, 5, group_id)
    joined = join(client, 5, group_id, first.member_id)
    sync = client.request(14, 5, body(
        ApiKey.SYNC_GROUP, 5, group_id=group_id, generation_id=joined.generation_id,
        member_id=joined.member_id, group_instance_id=None, protocol_type="consumer",
        protocol_name="roundrobin", assignments=()))
    assert int(sync.error_code) == INCONSISTENT_GROUP_PROTOCOL


def test_offset_commit_and_fetch_every_version(client: WireClient, gbootstrap: str,
                                               group_id: str, topic_name: str) -> None:
    create_topic(gbootstrap, topic_name, 2)
    metadata = client.request(3, 12, make(
        MetadataRequest, topics=(make(MetadataRequestTopic, topic_id=None, name=topic_name),),
        allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    topic_uuid = metadata.topics[0].topic_id
    for version in versions(ApiKey.OFFSET_COMMIT):
        group = f"{group_id}-{version}"
        partition = body(ApiKey.OFFSET_COMMIT, version, "OffsetCommitRequestPartition",
                         partition_index=1, committed_offset=version * 10,
                         committed_leader_epoch=0, committed_metadata=f"v{version}")
        topic = body(ApiKey.OFFSET_COMMIT, version, "OffsetCommitRequestTopic",
                     name=topic_name, topic_id=topic_uuid, partitions=(partition,))
        request = body(ApiKey.OFFSET_COMMIT, version, group_id=group,
                       generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                       retention_time=-1, topics=(topic,))
        response = client.request(8, version, request)
        assert [int(p.error_code) for p in response.topics[0].partitions] == [NONE]
        for fetch_version in versions(ApiKey.OFFSET_FETCH):
            found = fetch(client, fetch_version, group, topic_name, topic_uuid)
            assert found == {1: (version * 10, f"v{version}")}, (version, fetch_version)
    stranger = body(ApiKey.OFFSET_COMMIT, 10, "OffsetCommitRequestTopic",
                    topic_id=uuid.uuid4(), partitions=(body(
                        ApiKey.OFFSET_COMMIT, 10, "OffsetCommitRequestPartition",
                        partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                        committed_metadata=None),))
    response = client.request(8, 10, body(
        ApiKey.OFFSET_COMMIT, 10, group_id=group_id, generation_id_or_member_epoch=-1,
        member_id="", group_instance_id=None, topics=(stranger,)))
    assert int(response.topics[0].partitions[0].error_code) == 100  # UNKNOWN_TOPIC_ID


def fetch(client: WireClient, version: int, group: str, topic: str, topic_id: Any
          ) -> dict[int, tuple[int, str | None]]:
    """Committed offsets of partitions 0 and 1 (only committed ones), and again via the
    all-topics form where the version has it: both must agree."""
    results = []
    for everything in ((False, True) if version >= 2 else (False,)):
        wanted = None if everything else (body(
            ApiKey.OFFSET_FETCH, version,
            "OffsetFetchRequestTopics" if version >= 8 else "OffsetFetchRequestTopic",
            name=topic, topic_id=topic_id, partition_indexes=(0, 1)),)
        if version >= 8:
            entry = body(ApiKey.OFFSET_FETCH, version, "OffsetFetchRequestGroup",
                         group_id=group, member_id=None, member_epoch=-1, topics=wanted)
            response = client.request(9, version, body(ApiKey.OFFSET_FETCH, version,
                                                       groups=(entry,), require_stable=True))
            [answer] = response.groups
        else:
            answer = client.request(9, version, body(ApiKey.OFFSET_FETCH, version, group_id=group,
                                                     topics=wanted, require_stable=False))
        if version >= 2:
            assert int(answer.error_code) == NONE
        results.append({p.partition_index: (p.committed_offset, p.metadata)
                        for t in answer.topics for p in t.partitions if p.committed_offset >= 0})
    assert all(r == results[0] for r in results)
    return results[0]


def test_offset_fetch_v8_batches_groups(client: WireClient, gbootstrap: str, group_id: str,
                                        topic_name: str) -> None:
    create_topic(gbootstrap, topic_name, 1)
    for n in range(2):
        partition = body(ApiKey.OFFSET_COMMIT, 9, "OffsetCommitRequestPartition",
                         partition_index=0, committed_offset=n + 1, committed_leader_epoch=-1,
                         committed_metadata=None)
        client.request(8, 9, body(
            ApiKey.OFFSET_COMMIT, 9, group_id=f"{group_id}-{n}", generation_id_or_member_epoch=-1,
            member_id="", group_instance_id=None, topics=(body(
                ApiKey.OFFSET_COMMIT, 9, "OffsetCommitRequestTopic", name=topic_name,
                partitions=(partition,)),)))
    groups = tuple(body(ApiKey.OFFSET_FETCH, 8, "OffsetFetchRequestGroup", group_id=g, topics=None)
                   for g in (f"{group_id}-0", f"{group_id}-1", f"{group_id}-none"))
    response = client.request(9, 8, body(ApiKey.OFFSET_FETCH, 8, groups=groups,
                                         require_stable=False))
    assert [[p.committed_offset for t in g.topics for p in t.partitions]
            for g in response.groups] == [[1], [2], []]


def test_describe_list_delete_every_version(client: WireClient, group_id: str) -> None:
    first = join(client, 5, group_id)
    joined = join(client, 5, group_id, first.member_id)
    for version in versions(ApiKey.DESCRIBE_GROUPS):
        response = client.request(15, version, body(
            ApiKey.DESCRIBE_GROUPS, version, groups=(group_id, f"{group_id}-none"),
            include_authorized_operations=True))
        known, unknown = response.groups
        assert (int(known.error_code), known.group_state, known.protocol_type) == (
            0, "CompletingRebalance", "consumer")
        assert [m.member_id for m in known.members] == [joined.member_id]
        assert known.members[0].client_id == "wire"
        assert known.members[0].client_host == "/127.0.0.1"
        assert unknown.group_state == "Dead"
        assert int(unknown.error_code) == (69 if version >= 6 else 0)
        if version >= 3:
            assert known.authorized_operations == (1 << 3) | (1 << 6) | (1 << 8)
    for version in versions(ApiKey.LIST_GROUPS):
        response = client.request(16, version, body(
            ApiKey.LIST_GROUPS, version, states_filter=("completingrebalance",),
            types_filter=("classic",)))
        listed = {g.group_id: g for g in response.groups}
        assert listed[group_id].protocol_type == "consumer"
        if version >= 4:
            assert listed[group_id].group_state == "CompletingRebalance"
        if version >= 5:
            assert listed[group_id].group_type == "classic"
    for version in versions(ApiKey.DELETE_GROUPS):
        response = client.request(42, version, body(
            ApiKey.DELETE_GROUPS, version, groups_names=(group_id, f"{group_id}-none")))
        assert [int(r.error_code) for r in response.results] == [68, 69]
