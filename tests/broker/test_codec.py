"""Request header and body decoding: round trips, traps, and hostile bytes."""

from __future__ import annotations

import contextlib
import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.serial import entity_writer

from kcli.broker.protocol.codec import (
    SPLICE_BYTES,
    MalformedRequest,
    RequestHeader,
    UnsupportedVersion,
    decode_request,
    encode_response,
    encode_response_buffers,
    parse_header,
)
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS, ApiKey


def request_frame(api_key: int, version: int, correlation_id: int, client_id: str | None,
                  body: object) -> bytes:
    schema = load_request_schema(api_key, version)
    out = io.BytesIO()
    out.write(struct.pack(">hhi", api_key, version, correlation_id))
    if client_id is None:
        out.write(struct.pack(">h", -1))
    else:
        raw = client_id.encode()
        out.write(struct.pack(">h", len(raw)) + raw)
    if schema.__flexible__:
        out.write(b"\0")  # empty tagged fields of request header v2
    entity_writer(type(body))(out, body)
    return out.getvalue()


@given(correlation_id=st.integers(-(2**31), 2**31 - 1),
       client_id=st.none() | st.text(max_size=40),
       names=st.lists(st.text(min_size=1, max_size=20), max_size=5))
def test_metadata_request_round_trip(correlation_id: int, client_id: str | None,
                                     names: list[str]) -> None:
    body = MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=n) for n in names),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    header, request = decode_request(request_frame(3, 12, correlation_id, client_id, body))
    assert (header.api_key, header.api_version, header.correlation_id) == (3, 12, correlation_id)
    assert header.client_id == client_id
    assert header.flexible
    assert request == body


def test_flexible_header_keeps_int16_client_id() -> None:
    body = ApiVersionsRequest(client_software_name="kcli", client_software_version="1")
    frame = request_frame(18, 3, 7, "client-x", body)
    header, offset = parse_header(frame)
    assert header.client_id == "client-x"
    assert offset == 8 + 2 + len("client-x") + 1


def test_unknown_version_is_reported_with_its_header() -> None:
    frame = struct.pack(">hhih", ApiKey.API_VERSIONS, 99, 5, -1)
    with pytest.raises(UnsupportedVersion) as info:
        parse_header(frame)
    assert info.value.header.correlation_id == 5


def test_api_versions_response_uses_header_v0() -> None:
    from kcli.broker.handlers.base import response_module
    from kcli.broker.handlers.metadata import api_versions_body
    from kcli.broker.protocol.codec import response_type

    module = response_module(18, 3)
    body = api_versions_body(response_type(18, 3), module.ApiVersion, 0)
    data = encode_response(RequestHeader(18, 3, 42, None, True), body)
    assert struct.unpack(">ii", data[:8])[1] == 42
    assert data[8:10] == b"\0\0"  # error code follows the correlation id directly


@settings(max_examples=400)
@given(api_key=st.sampled_from(sorted(SUPPORTED_VERSIONS)), data=st.data())
def test_garbage_bodies_only_raise_protocol_errors(api_key: int, data: st.DataObject) -> None:
    low, high = SUPPORTED_VERSIONS[api_key]
    version = data.draw(st.integers(low, high))
    garbage = data.draw(st.binary(max_size=200))
    frame = struct.pack(">hhih", api_key, version, 1, -1) + garbage
    with contextlib.suppress(MalformedRequest, UnsupportedVersion):
        decode_request(frame)


@given(st.binary(max_size=64))
def test_garbage_frames_only_raise_protocol_errors(frame: bytes) -> None:
    with contextlib.suppress(MalformedRequest, UnsupportedVersion):
        decode_request(frame)


@settings(max_examples=100)
@given(sizes=st.lists(st.one_of(st.none(), st.integers(0, 3 * SPLICE_BYTES)), max_size=6),
       version=st.sampled_from([4, 12]), correlation_id=st.integers(-(2**31), 2**31 - 1))
def test_a_response_in_buffers_is_the_frame_and_keeps_records_uncopied(
        sizes: list[int | None], version: int, correlation_id: int) -> None:
    """The buffers a Fetch response is written as join to exactly the frame kio writes,
    and records of SPLICE_BYTES or more are in them as the very objects read."""
    from kcli.broker.handlers.base import make, response_module

    module = response_module(ApiKey.FETCH, version)
    records = [None if size is None else bytes([size % 251]) * size for size in sizes]
    partitions = tuple(
        make(module.PartitionData, partition_index=i, error_code=0, high_watermark=i,
             last_stable_offset=i, log_start_offset=0, aborted_transactions=(), records=data)
        for i, data in enumerate(records))
    body = make(module.FetchResponse, throttle_time=0, error_code=0, session_id=0, responses=(
        make(module.FetchableTopicResponse, topic="t", partitions=partitions),))
    header = RequestHeader(ApiKey.FETCH, version, correlation_id, None, version >= 12)
    buffers = encode_response_buffers(header, body)

    expected = io.BytesIO()
    expected.write(struct.pack(">i", correlation_id))
    if version >= 12:
        expected.write(b"\0")
    entity_writer(type(body))(expected, body)
    frame = expected.getvalue()
    assert b"".join(buffers) == struct.pack(">i", len(frame)) + frame
    for data in records:
        if data is not None and len(data) >= SPLICE_BYTES:
            assert any(buffer is data for buffer in buffers)
