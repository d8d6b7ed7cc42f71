"""The broker survives any bytes a client sends, and answers protocol edge cases as Kafka does."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest

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
    assert {k.api_key: (k.min_version, k.max_version) for k in response.api_keys} == (
        SUPPORTED_VERSIONS)


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


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_bodies_for_every_api(broker: BrokerProcess, data: st.DataObject) -> None:
    api_key = data.draw(st.sampled_from(sorted(SUPPORTED_VERSIONS)))
    low, high = SUPPORTED_VERSIONS[api_key]
    version = data.draw(st.integers(low, high))
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


def test_still_alive_after_fuzzing(bootstrap: str) -> None:
    assert_alive(bootstrap)
