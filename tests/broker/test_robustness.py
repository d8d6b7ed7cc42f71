"""The broker survives any bytes a client sends, and answers protocol edge cases as Kafka does."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.describe_configs.v4.request import DescribeConfigsRequest, DescribeConfigsResource
from kio.schema.metadata.v12.request import MetadataRequest

from kcli.broker.errors import ErrorCode
from kcli.broker.protocol.codec import supported_api_keys
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient


def assert_alive(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        response = client.request(3, 12, MetadataRequest(
            topics=(), allow_auto_topic_creation=False, include_topic_authorized_operations=False))
        assert [b.node_id for b in response.brokers] == [1]


def test_api_versions_unknown_version_gets_v0_answer(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        client.send_raw(struct.pack(">hhih", 18, 77, 99, -1) + b"\x00" * 10)
        frame = client.recv_frame()
    correlation_id, error_code, count = struct.unpack_from(">ihi", frame, 0)
    assert (correlation_id, error_code) == (99, 35)
    entries = [struct.unpack_from(">hhh", frame, 10 + 6 * i) for i in range(count)]
    assert (18, 0, SUPPORTED_VERSIONS[18][1]) in entries
    assert len(frame) == 10 + 6 * count  # v0 body: no throttle time, no tagged fields


def test_api_versions_v3_lists_every_api(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        response = client.request(18, 3, ApiVersionsRequest(
            client_software_name="test", client_software_version="1"))
    assert {k.api_key: (k.min_version, k.max_version) for k in response.api_keys} == {
        key: (low, high) for key, low, high in supported_api_keys()}
    # kio's ranges, and below them the versions served by translation (Kafka 3.9's)
    assert all(supported_api_keys()[i][1] <= SUPPORTED_VERSIONS[key][0]
               for i, key in enumerate(sorted(SUPPORTED_VERSIONS)))


def test_unsupported_api_closes_connection(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        client.send_raw(struct.pack(">hhih", 3, 99, 1, -1))
        assert client.is_closed_by_peer()
    with WireClient(bootstrap) as client:
        client.send_raw(struct.pack(">hhih", 9999, 0, 1, -1))
        assert client.is_closed_by_peer()
    assert_alive(bootstrap)


def test_oversized_frame_closes_connection_without_allocating(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        client.sock.sendall(struct.pack(">i", 2**31 - 1) + b"\x00" * 100)
        assert client.is_closed_by_peer()
    with WireClient(bootstrap) as client:
        client.sock.sendall(struct.pack(">i", -5))
        assert client.is_closed_by_peer()
    assert_alive(bootstrap)


def test_half_a_frame_then_disconnect(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        client.sock.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
    assert_alive(bootstrap)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker of its own for the fuzzer: what random requests manage to create (groups,
    commits) stays out of the session broker that other tests list."""
    process = BrokerProcess(tmp_path_factory.mktemp("fuzzed") / "broker")
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker exited with {code}:\n{process.log()}"


@pytest.mark.broker  # its own broker: the lanes know the shared fixtures only
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_bodies_for_every_api(fuzzed: BrokerProcess, data: st.DataObject) -> None:
    broker = fuzzed
    api_key, low, high = data.draw(st.sampled_from(supported_api_keys()))
    version = data.draw(st.integers(low, high))  # the old, translated versions too
    body = data.draw(st.binary(max_size=300))
    tagged = data.draw(st.sampled_from([b"", b"\x00", b"\x7f"]))
    with WireClient(broker.bootstrap, timeout=5) as client:
        client.send_raw(struct.pack(">hhih", api_key, version, 7, 0) + tagged + body)
        try:
            frame = client.recv_frame()
        except (ConnectionError, TimeoutError, OSError):
            pass  # closing the connection is a valid answer to garbage
        else:
            assert struct.unpack_from(">i", frame, 0)[0] == 7
    assert broker.process is not None
    assert broker.process.poll() is None


@pytest.mark.broker
def test_still_alive_after_fuzzing(fuzzed: BrokerProcess) -> None:
    assert_alive(fuzzed.bootstrap)


def _legacy(api_key: int, version: int, body: bytes) -> bytes:
    return struct.pack(">hhih", api_key, version, 7, -1) + body


def _flexible(api_key: int, version: int, body: bytes) -> bytes:
    return struct.pack(">hhih", api_key, version, 7, -1) + b"\x00" + body


NULL_ARRAY, NULL_COMPACT = struct.pack(">i", -1), b"\x00"


NULL_FRAMES = {
    "DescribeConfigs-v1-resources": _legacy(32, 1, NULL_ARRAY + b"\x00"),
    "DescribeConfigs-v4-resources": _flexible(32, 4, NULL_COMPACT + b"\x00\x00\x00"),
    "ListOffsets-v1-topics": _legacy(2, 1, struct.pack(">i", -1) + NULL_ARRAY),
    "ListOffsets-v9-topics": _flexible(2, 9, struct.pack(">ib", -1, 0) + NULL_COMPACT + b"\x00"),
    "ListOffsets-v1-partitions": _legacy(
        2, 1, struct.pack(">iih", -1, 1, 1) + b"t" + NULL_ARRAY),
    "DeleteTopics-v1-names": _legacy(20, 1, NULL_ARRAY + struct.pack(">i", 1000)),
    "DeleteTopics-v1-a-null-name": _legacy(20, 1, struct.pack(">ihi", 1, -1, 1000)),
    "CreateTopics-v2-topics": _legacy(19, 2, NULL_ARRAY + struct.pack(">i", 1000) + b"\x00"),
    "AlterConfigs-v0-resources": _legacy(33, 0, NULL_ARRAY + b"\x00"),
    "IncrementalAlterConfigs-v1-resources": _flexible(44, 1, NULL_COMPACT + b"\x00\x00"),
    "DeleteRecords-v0-topics": _legacy(21, 0, NULL_ARRAY + struct.pack(">i", 1000)),
    "CreatePartitions-v0-topics": _legacy(37, 0, NULL_ARRAY + struct.pack(">i", 1000) + b"\x00"),
    "DescribeGroups-v0-groups": _legacy(15, 0, NULL_ARRAY),
    "DeleteGroups-v0-groups": _legacy(42, 0, NULL_ARRAY),
    "OffsetForLeaderEpoch-v2-topics": _legacy(23, 2, NULL_ARRAY),
    "Produce-v3-topic-data": _legacy(0, 3, struct.pack(">hhi", -1, 1, 1000) + NULL_ARRAY),
    "Fetch-v4-topics": _legacy(1, 4, struct.pack(">iiiib", -1, 100, 1, 1000, 0) + NULL_ARRAY),
}


@pytest.mark.parametrize("frame", list(NULL_FRAMES.values()), ids=list(NULL_FRAMES))
def test_null_for_a_non_nullable_array_closes_cleanly(broker: BrokerProcess, frame: bytes
                                                       ) -> None:
    """Kafka's readers refuse a null where the schema has no null: the connection is
    closed, with no traceback in the broker's log."""
    logged = len(broker.log_path.read_bytes())
    with WireClient(broker.bootstrap) as client:
        client.send_raw(frame)
        assert client.is_closed_by_peer()
    assert_alive(broker.bootstrap)
    tail = broker.log_path.read_bytes()[logged:].decode(errors="replace")
    assert "Traceback" not in tail, tail
    assert "non-nullable field" in tail, tail


def test_null_where_kafka_means_all(bootstrap: str, topic_name: str) -> None:
    """Nullable arrays keep their meaning: configuration_keys null is every key,
    Metadata topics null is every topic."""
    with WireClient(bootstrap) as client:
        client.request(19, 7, CreateTopicsRequest(
            topics=(CreatableTopic(name=topic_name, num_partitions=1, replication_factor=1,
                                   assignments=(), configs=()),),
            timeout=datetime.timedelta(seconds=10), validate_only=False))
        described = client.request(32, 4, DescribeConfigsRequest(
            resources=(DescribeConfigsResource(resource_type=2, resource_name=topic_name,
                                               configuration_keys=None),),
            include_synonyms=False, include_documentation=False))
        listed = client.request(3, 12, MetadataRequest(
            topics=None, allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
    assert described.results[0].error_code == ErrorCode.none
    assert "retention.ms" in {c.name for c in described.results[0].configs}
    assert topic_name in {t.name for t in listed.topics}


@pytest.mark.broker  # starts a broker process of its own
def test_a_broker_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    """Partitions keep files open and clients sockets: a broker started under a low soft
    limit (a shell's usual 1024) takes what the hard limit allows."""
    import resource
    import subprocess
    import sys

    from tests.support.broker import free_port, kcli_command, kcli_env

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
    lowered = [sys.executable, "-c",  # lower the soft limit, then become the broker
               "import os, resource, sys; "
               "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
               "os.execv(sys.argv[3], sys.argv[3:])", str(low), str(hard)]
    broker = kcli_command("broker", "run", "--node-id", "1", "--data-dir", str(tmp_path / "d"),
                          "--listen", f"127.0.0.1:{free_port()}")
    process = subprocess.Popen([*lowered, *broker], env=kcli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if b"ready, listening on" in line:
                break
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        row = next(r for r in limits.splitlines() if r.startswith("Max open files"))
        soft_now, hard_now = row.split()[3:5]
        assert soft_now == hard_now, row
    finally:
        process.terminate()
        process.wait(20)
        if process.stderr is not None:
            process.stderr.close()
