"""The old versions served by translation: the layouts it rewrites into are exactly
kio's (the same bytes both ways), and bad bytes are protocol errors, never crashes."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from kcli.broker.protocol import legacy
from kcli.broker.protocol.codec import MalformedRequest, decode_request, supported_api_keys
from kcli.broker.protocol.legacy import TRANSLATIONS, LegacyError, Schema

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "int8": st.integers(-128, 127), "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-1, 2**40),  # kio reads *_ms fields into timedeltas
    "bool": st.booleans(), "string": st.text(max_size=8),
    "nstring": st.none() | st.text(max_size=8),
    "nbytes": st.none() | st.binary(max_size=16),  # records: random, so left as they are
}


_ENUMS: dict[str, st.SearchStrategy[Any]] = {
    # fields kio reads into enums: only values Kafka defines
    "error_code": st.sampled_from([0, 3, 6, 37, 41]),
    "resource_type": st.sampled_from([2, 4]),
    "config_source": st.sampled_from([1, 4, 5]),
    "source": st.sampled_from([1, 4, 5]),
}


def docs(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    """Values for every field of ``schema``."""
    return st.fixed_dictionaries({
        name: _ENUMS[name] if name in _ENUMS else _values(kind) for name, kind in schema})


def _values(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, tuple) and kind and isinstance(kind[0], tuple):
        return docs(kind)
    if isinstance(kind, tuple):
        items = st.lists(_values(kind[1]), max_size=3)
        return st.none() | items if kind[0] == "narray" else items
    return _PRIMITIVES[kind]


class _Out:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _kio_round_trip(kio_schema: Any, data: bytes) -> bytes:
    """kio decodes ``data`` whole and encodes it back."""
    value, size = entity_reader(kio_schema)(memoryview(data), 0)
    assert size == len(data)
    out = _Out()
    entity_writer(kio_schema)(out, value)
    return bytes(out.data)


@pytest.mark.parametrize("key", sorted(TRANSLATIONS), ids=lambda k: f"api{k[0]}v{k[1]}")
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_target_layouts_are_kios(key: tuple[int, int], data: st.DataObject) -> None:
    old = TRANSLATIONS[key]
    assert not load_request_schema(old.api_key, old.target).__flexible__
    request = legacy.encode(old.new_request, data.draw(docs(old.new_request)))
    assert _kio_round_trip(load_request_schema(old.api_key, old.target), request) == request
    response = legacy.encode(old.new_response, data.draw(docs(old.new_response)))
    assert _kio_round_trip(load_response_schema(old.api_key, old.target), response) == response


@pytest.mark.parametrize("key", sorted(TRANSLATIONS), ids=lambda k: f"api{k[0]}v{k[1]}")
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_translations_keep_what_both_versions_have(key: tuple[int, int],
                                                   data: st.DataObject) -> None:
    """Old request -> target -> decodes; target response -> old -> decodes."""
    old = TRANSLATIONS[key]
    body = legacy.encode(old.old_request, data.draw(docs(old.old_request)))
    upgraded = legacy.decode(old.new_request, old.request_body(body))
    original = legacy.decode(old.old_request, body)
    for name in set(original) & set(upgraded):
        if not isinstance(original[name], list):
            assert upgraded[name] == original[name]
    response = legacy.encode(old.new_response, data.draw(docs(old.new_response)))
    legacy.decode(old.old_response, old.response_body(response))


def _frame(api_key: int, version: int, body: bytes) -> memoryview:
    return memoryview(struct.pack(">hhih", api_key, version, 7, 4) + b"test" + body)


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=64))
def test_garbage_old_bodies_are_malformed_requests(body: bytes) -> None:
    for api_key, version in TRANSLATIONS:
        with contextlib.suppress(MalformedRequest):
            decode_request(_frame(api_key, version, body))


def test_huge_counts_are_refused_before_reading() -> None:
    with pytest.raises(LegacyError, match="runs past the frame"):
        legacy.decode(TRANSLATIONS[(20, 0)].old_request, struct.pack(">i", 2**30))
    with pytest.raises(MalformedRequest, match="api 20 v0"):
        decode_request(_frame(20, 0, struct.pack(">i", 2**30)))


def test_old_versions_are_decoded_as_their_target() -> None:
    body = legacy.encode(TRANSLATIONS[(2, 0)].old_request, {
        "replica_id": -1, "topics": [{"name": "t", "partitions": [
            {"partition_index": 0, "timestamp": -1, "max_num_offsets": 1}]}]})
    header, request = decode_request(_frame(2, 0, body))
    assert (header.api_version, header.wire_version) == (1, 0)
    assert request.topics[0].partitions[0].timestamp == -1


# Kafka 3.9's ranges (clients/src/main/resources/common/message/*.json at 3.9) for every
# API this broker implements; ../shared/reference/protocol-breadth.md section 1.
KAFKA_39 = {
    0: (0, 11), 1: (0, 17), 2: (0, 9), 3: (0, 12), 8: (0, 9), 9: (0, 9), 10: (0, 4),
    11: (0, 9), 12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 5), 16: (0, 5), 17: (0, 1),
    18: (0, 4), 19: (0, 7), 20: (0, 6), 21: (0, 2), 22: (0, 5), 23: (0, 4), 24: (0, 5),
    25: (0, 4), 26: (0, 4), 27: (0, 1), 28: (0, 4), 29: (0, 3), 30: (0, 3), 31: (0, 3),
    32: (0, 4), 33: (0, 2), 35: (0, 4), 36: (0, 2), 37: (0, 3), 42: (0, 2), 43: (0, 2),
    44: (0, 1), 45: (0, 0), 46: (0, 0), 47: (0, 0), 50: (0, 0), 51: (0, 0), 60: (0, 1),
    61: (0, 0), 65: (0, 0), 66: (0, 1), 68: (0, 0), 69: (0, 0),
}
# WriteTxnMarkers v0 is sent only by brokers older than Kafka 2.8 (never by a client);
# a local cluster's brokers are all ours and send v1.
BROKER_ONLY = {(27, 0)}


def test_api_versions_cover_every_version_kafka_39_serves() -> None:
    served = {key: (low, high) for key, low, high in supported_api_keys()}
    # a newly served API belongs in KAFKA_39 with 3.9's range (or a note that 3.9 has none)
    assert set(served) == set(KAFKA_39), set(served) ^ set(KAFKA_39)
    for api_key, (low, high) in KAFKA_39.items():
        missing = [v for v in range(low, high + 1) if (api_key, v) not in BROKER_ONLY
                   and not served[api_key][0] <= v <= served[api_key][1]]
        assert not missing, f"api {api_key}: versions {missing} are not served"
