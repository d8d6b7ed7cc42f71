"""Versions Kafka 3.9 serves below kio's range, translated to the lowest one kio has.

kio is generated for Kafka 4.x, which dropped the oldest versions (KIP-896); tools
pinned to them (Sarama's defaults, Burrow, kafka-go) are in everyday use. Each old
version here differs from a version kio covers only by a few fields, so instead of a
second codec for every handler, the request body is rewritten into that version's
bytes before kio decodes it, and the response kio encodes is rewritten back:

    old request bytes -> dict -> target request bytes -> kio -> handler
    handler -> kio -> target response bytes -> dict -> old response bytes

All of these versions are non-flexible: plain big-endian fields, int16-length strings,
int32-count arrays. The field layouts follow Kafka 3.9's message schemas
(clients/src/main/resources/common/message/*.json).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcli.broker.log import message_set
from kcli.broker.log.errors import CorruptBatch

Field = tuple[str, Any]
"""(name, type): a type is a primitive name (int8/16/32/64, bool, string, nstring,
bytes, nbytes), ("array", element) or ("narray", element)
(an array that may be null), where an element is a primitive name or a tuple of Fields."""
Schema = tuple[Field, ...]
Doc = dict[str, Any]

_FIXED = {"int8": struct.Struct(">b"), "int16": struct.Struct(">h"),
          "int32": struct.Struct(">i"), "int64": struct.Struct(">q"),
          "bool": struct.Struct(">?")}


class LegacyError(ValueError):
    """The bytes do not hold the schema (truncated, counts beyond the frame...)."""


def read(schema: Schema, data: bytes | memoryview, pos: int = 0) -> tuple[Doc, int]:
    """Decode ``schema`` from ``data`` at ``pos``; returns the values and the end."""
    doc: Doc = {}
    for name, kind in schema:
        doc[name], pos = _read_value(kind, data, pos)
    return doc, pos


def _read_value(kind: Any, data: bytes | memoryview, pos: int) -> tuple[Any, int]:
    if isinstance(kind, tuple) and kind and isinstance(kind[0], tuple):
        return read(kind, data, pos)
    if isinstance(kind, tuple):
        array, element = kind
        count, pos = _read_value("int32", data, pos)
        if count < 0:
            if array == "narray":
                return None, pos
            raise LegacyError("negative array length")
        if count > len(data) - pos:  # every element takes at least a byte
            raise LegacyError(f"array of {count} runs past the frame")
        items = []
        for _ in range(count):
            item, pos = _read_value(element, data, pos)
            items.append(item)
        return items, pos
    fixed = _FIXED.get(kind)
    if fixed is not None:
        if pos + fixed.size > len(data):
            raise LegacyError(f"truncated {kind}")
        return fixed.unpack_from(data, pos)[0], pos + fixed.size
    if kind in ("bytes", "nbytes"):
        size, pos = _read_value("int32", data, pos)
        if size < 0:
            if kind == "nbytes":
                return None, pos
            raise LegacyError("null bytes where they are required")
        if pos + size > len(data):
            raise LegacyError("bytes run past the frame")
        return bytes(data[pos:pos + size]), pos + size
    if kind in ("string", "nstring"):
        size, pos = _read_value("int16", data, pos)
        if size < 0:
            if kind == "nstring":
                return None, pos
            raise LegacyError("null string where one is required")
        if pos + size > len(data):
            raise LegacyError("string runs past the frame")
        try:
            return bytes(data[pos:pos + size]).decode("utf-8"), pos + size
        except UnicodeDecodeError:
            raise LegacyError("string is not UTF-8") from None
    raise AssertionError(f"unknown field type {kind!r}")


def write(schema: Schema, doc: Doc, out: bytearray) -> None:
    """Encode ``doc`` as ``schema`` onto ``out``."""
    for name, kind in schema:
        _write_value(kind, doc[name], out)


def _write_value(kind: Any, value: Any, out: bytearray) -> None:
    if isinstance(kind, tuple) and kind and isinstance(kind[0], tuple):
        write(kind, value, out)
    elif isinstance(kind, tuple):
        if value is None:
            out += _FIXED["int32"].pack(-1)
            return
        out += _FIXED["int32"].pack(len(value))
        for item in value:
            _write_value(kind[1], item, out)
    elif kind in _FIXED:
        out += _FIXED[kind].pack(value)
    elif kind in ("bytes", "nbytes"):
        if value is None:
            out += _FIXED["int32"].pack(-1)
        else:
            out += _FIXED["int32"].pack(len(value))
            out += value
    elif value is None:
        out += _FIXED["int16"].pack(-1)
    else:
        raw = value.encode("utf-8")
        out += _FIXED["int16"].pack(len(raw))
        out += raw


def encode(schema: Schema, doc: Doc) -> bytes:
    """``doc`` as ``schema``'s bytes."""
    out = bytearray()
    write(schema, doc, out)
    return bytes(out)


def decode(schema: Schema, data: bytes | memoryview) -> Doc:
    """The whole of ``data`` as ``schema``; trailing bytes are an error."""
    doc, end = read(schema, data)
    if end != len(data):
        raise LegacyError(f"{len(data) - end} bytes after the body")
    return doc


def _identity(doc: Doc) -> Doc:
    return doc


@dataclass(frozen=True)
class Translation:
    """One old version of an API and how it maps onto ``target``."""

    api_key: int
    version: int
    target: int
    old_request: Schema
    new_request: Schema
    new_response: Schema
    old_response: Schema
    upgrade: Callable[[Doc], Doc] = _identity
    """The old request's values -> the target request's."""
    downgrade: Callable[[Doc], Doc] = _identity
    """The target response's values -> the old response's."""

    def request_body(self, body: bytes | memoryview) -> bytes:
        """The old request body rewritten as the target version's."""
        return encode(self.new_request, self.upgrade(decode(self.old_request, body)))

    def response_body(self, body: bytes) -> bytes:
        """The target version's response body rewritten as the old version's."""
        return encode(self.old_response, self.downgrade(decode(self.new_response, body)))


def _map_partitions(doc: Doc, key: str, change: Callable[[Doc], Doc],
                    partitions: str = "partitions") -> Doc:
    """``doc`` with ``change`` applied to every partition of every topic under ``key``."""
    return {**doc, key: [{**topic, partitions: [change(p) for p in topic[partitions]]}
                         for topic in doc[key]]}


# ------------------------------------------------------------------ ListOffsets (2)

_LIST_OFFSETS_V0_REQ: Schema = (
    ("replica_id", "int32"),
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("timestamp", "int64"),
        ("max_num_offsets", "int32"))))))))
_LIST_OFFSETS_V1_REQ: Schema = (
    ("replica_id", "int32"),
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("timestamp", "int64"))))))))
_LIST_OFFSETS_V1_RESP: Schema = (
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("error_code", "int16"), ("timestamp", "int64"),
        ("offset", "int64"))))))),)
_LIST_OFFSETS_V0_RESP: Schema = (
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("error_code", "int16"),
        ("old_style_offsets", ("array", "int64")))))))),)


def _old_style_offsets(partition: Doc) -> Doc:
    # v0 answers a list of offsets (segment starts, newest first, for "latest"); every
    # reader of it takes the first, which is the offset v1 answers
    offset = partition["offset"]
    return {"partition_index": partition["partition_index"],
            "error_code": partition["error_code"],
            "old_style_offsets": [offset] if offset >= 0 else []}


# ----------------------------------------------------------------- OffsetCommit (8)

_COMMIT_TOPICS_V0: Field = ("topics", ("array", (("name", "string"), ("partitions", ("array", (
    ("partition_index", "int32"), ("committed_offset", "int64"),
    ("committed_metadata", "nstring")))))))
_OFFSET_COMMIT_V0_REQ: Schema = (("group_id", "string"), _COMMIT_TOPICS_V0)
_OFFSET_COMMIT_V1_REQ: Schema = (
    ("group_id", "string"), ("generation_id", "int32"), ("member_id", "string"),
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("committed_offset", "int64"),
        ("commit_timestamp", "int64"), ("committed_metadata", "nstring"))))))))
_OFFSET_COMMIT_V2_REQ: Schema = (
    ("group_id", "string"), ("generation_id", "int32"), ("member_id", "string"),
    ("retention_time_ms", "int64"), _COMMIT_TOPICS_V0)
_OFFSET_COMMIT_RESP: Schema = (
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("error_code", "int16"))))))),)


def _commit_v0_to_v2(doc: Doc) -> Doc:
    # v0 has no generation: a commit outside any generation, as an admin tool's
    return {**doc, "generation_id": -1, "member_id": "", "retention_time_ms": -1}


def _commit_v1_to_v2(doc: Doc) -> Doc:
    def drop_timestamp(p: Doc) -> Doc:
        return {k: v for k, v in p.items() if k != "commit_timestamp"}

    return {**_map_partitions(doc, "topics", drop_timestamp), "retention_time_ms": -1}


# ------------------------------------------------------------------ OffsetFetch (9)

_OFFSET_FETCH_REQ: Schema = (
    ("group_id", "string"),
    ("topics", ("array", (("name", "string"), ("partition_indexes", ("array", "int32"))))))
_OFFSET_FETCH_RESP: Schema = (
    ("topics", ("array", (("name", "string"), ("partitions", ("array", (
        ("partition_index", "int32"), ("committed_offset", "int64"),
        ("metadata", "nstring"), ("error_code", "int16"))))))),)

# -------------------------------------------------------------- DescribeConfigs (32)

_DESCRIBE_CONFIGS_V0_REQ: Schema = (
    ("resources", ("array", (("resource_type", "int8"), ("resource_name", "string"),
                             ("configuration_keys", ("narray", "string"))))),)
_DESCRIBE_CONFIGS_V1_REQ: Schema = (*_DESCRIBE_CONFIGS_V0_REQ, ("include_synonyms", "bool"))


def _describe_configs_resp(entry: Schema) -> Schema:
    return (("throttle_time_ms", "int32"),
            ("results", ("array", (("error_code", "int16"), ("error_message", "nstring"),
                                   ("resource_type", "int8"), ("resource_name", "string"),
                                   ("configs", ("array", entry))))))


_DESCRIBE_CONFIGS_V1_RESP = _describe_configs_resp((
    ("name", "string"), ("value", "nstring"), ("read_only", "bool"),
    ("config_source", "int8"), ("is_sensitive", "bool"),
    ("synonyms", ("array", (("name", "string"), ("value", "nstring"), ("source", "int8"))))))
_DESCRIBE_CONFIGS_V0_RESP = _describe_configs_resp((
    ("name", "string"), ("value", "nstring"), ("read_only", "bool"),
    ("is_default", "bool"), ("is_sensitive", "bool")))
DEFAULT_CONFIG_SOURCE = 5


def _configs_v1_to_v0(doc: Doc) -> Doc:
    def entry(config: Doc) -> Doc:
        return {"name": config["name"], "value": config["value"],
                "read_only": config["read_only"],
                "is_default": config["config_source"] == DEFAULT_CONFIG_SOURCE,
                "is_sensitive": config["is_sensitive"]}

    return {**doc, "results": [{**result, "configs": [entry(c) for c in result["configs"]]}
                               for result in doc["results"]]}


# ---------------------------------------------------------------- CreateTopics (19)

_CREATE_TOPICS_V0_REQ: Schema = (
    ("topics", ("array", (
        ("name", "string"), ("num_partitions", "int32"), ("replication_factor", "int16"),
        ("assignments", ("array", (("partition_index", "int32"),
                                   ("broker_ids", ("array", "int32"))))),
        ("configs", ("array", (("name", "string"), ("value", "nstring"))))))),
    ("timeout_ms", "int32"))
_CREATE_TOPICS_V1_REQ: Schema = (*_CREATE_TOPICS_V0_REQ, ("validate_only", "bool"))
_CREATE_TOPICS_V2_RESP: Schema = (
    ("throttle_time_ms", "int32"),
    ("topics", ("array", (("name", "string"), ("error_code", "int16"),
                          ("error_message", "nstring")))))
_CREATE_TOPICS_V1_RESP: Schema = (_CREATE_TOPICS_V2_RESP[1],)
_CREATE_TOPICS_V0_RESP: Schema = (
    ("topics", ("array", (("name", "string"), ("error_code", "int16")))),)


def _without_throttle(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "throttle_time_ms"}


def _create_v2_to_v0(doc: Doc) -> Doc:
    return {"topics": [{"name": t["name"], "error_code": t["error_code"]}
                       for t in doc["topics"]]}


# ---------------------------------------------------------------- DeleteTopics (20)

_DELETE_TOPICS_REQ: Schema = (("topic_names", ("array", "string")), ("timeout_ms", "int32"))
_DELETE_TOPICS_V1_RESP: Schema = (
    ("throttle_time_ms", "int32"),
    ("responses", ("array", (("name", "string"), ("error_code", "int16")))))
_DELETE_TOPICS_V0_RESP: Schema = (_DELETE_TOPICS_V1_RESP[1],)

# ------------------------------------------------------- OffsetForLeaderEpoch (23)

_EPOCH_V0_REQ: Schema = (
    ("topics", ("array", (("topic", "string"), ("partitions", ("array", (
        ("partition", "int32"), ("leader_epoch", "int32"))))))),)
_EPOCH_V2_REQ: Schema = (
    ("topics", ("array", (("topic", "string"), ("partitions", ("array", (
        ("partition", "int32"), ("current_leader_epoch", "int32"),
        ("leader_epoch", "int32"))))))),)
_EPOCH_V1_RESP_TOPICS: Field = (
    "topics", ("array", (("topic", "string"), ("partitions", ("array", (
        ("error_code", "int16"), ("partition", "int32"), ("leader_epoch", "int32"),
        ("end_offset", "int64")))))))
_EPOCH_V2_RESP: Schema = (("throttle_time_ms", "int32"), _EPOCH_V1_RESP_TOPICS)
_EPOCH_V1_RESP: Schema = (_EPOCH_V1_RESP_TOPICS,)
_EPOCH_V0_RESP: Schema = (
    ("topics", ("array", (("topic", "string"), ("partitions", ("array", (
        ("error_code", "int16"), ("partition", "int32"), ("end_offset", "int64"))))))),)


def _epoch_v0_to_v2(doc: Doc) -> Doc:
    # an old client does not know the leader's epoch: -1 skips the fencing check
    return _map_partitions(doc, "topics", lambda p: {**p, "current_leader_epoch": -1})


def _epoch_v2_to_v0(doc: Doc) -> Doc:
    return _map_partitions(_without_throttle(doc), "topics", lambda p: {
        k: v for k, v in p.items() if k != "leader_epoch"})


# ------------------------------------------------------------ DescribeLogDirs (35)

_LOG_DIRS_REQ: Schema = (
    ("topics", ("narray", (("topic", "string"), ("partitions", ("array", "int32"))))),)
_LOG_DIR_PARTITION: Schema = (
    ("partition_index", "int32"), ("partition_size", "int64"), ("offset_lag", "int64"),
    ("is_future_key", "bool"))
_LOG_DIR_TOPIC: Schema = (("name", "string"), ("partitions", ("array", _LOG_DIR_PARTITION)))
_LOG_DIR_RESULT: Schema = (("error_code", "int16"), ("log_dir", "string"),
                           ("topics", ("array", _LOG_DIR_TOPIC)))
_LOG_DIRS_RESP: Schema = (("throttle_time_ms", "int32"), ("results", ("array", _LOG_DIR_RESULT)))

# --------------------------------------------------------------------- Produce (0)

def _produce_request(*, transactional: bool) -> Schema:
    head: Schema = (("transactional_id", "nstring"),) if transactional else ()
    return (*head, ("acks", "int16"), ("timeout_ms", "int32"),
            ("topic_data", ("array", (("name", "string"), ("partition_data", ("array", (
                ("index", "int32"), ("records", "nbytes"))))))))


def _produce_response(*, throttle: bool, append_time: bool) -> Schema:
    partition: Schema = (("index", "int32"), ("error_code", "int16"), ("base_offset", "int64"),
                         *((("log_append_time_ms", "int64"),) if append_time else ()))
    topics: Field = ("responses", ("array", (("name", "string"), ("partition_responses", (
        "array", partition)))))
    return (topics, ("throttle_time_ms", "int32")) if throttle else (topics,)


def _up_convert_records(partition: Doc) -> Doc:
    """A message set as a v2 batch; a set that cannot be read goes on as it is, for the
    batch validator to refuse as corrupt (CORRUPT_MESSAGE for that partition only)."""
    records = partition["records"]
    if records:
        with contextlib.suppress(CorruptBatch):
            records = message_set.up_convert(records)
    return {**partition, "records": records}


def _produce_upgrade(doc: Doc) -> Doc:
    return {"transactional_id": None,
            **_map_partitions(doc, "topic_data", _up_convert_records, "partition_data")}


def _produce_downgrade(version: int) -> Callable[[Doc], Doc]:
    def downgrade(doc: Doc) -> Doc:
        if version < 2:
            doc = _map_partitions(doc, "responses", lambda p: {
                k: v for k, v in p.items() if k != "log_append_time_ms"},
                "partition_responses")
        return _without_throttle(doc) if version == 0 else doc
    return downgrade


# ----------------------------------------------------------------------- Fetch (1)

def _fetch_request(version: int) -> Schema:
    limits: Schema = (("replica_id", "int32"), ("max_wait_ms", "int32"), ("min_bytes", "int32"),
                      *((("max_bytes", "int32"),) if version >= 3 else ()),
                      *((("isolation_level", "int8"),) if version >= 4 else ()))
    return (*limits, ("topics", ("array", (("topic", "string"), ("partitions", ("array", (
        ("partition", "int32"), ("fetch_offset", "int64"),
        ("partition_max_bytes", "int32"))))))))


def _fetch_response(version: int) -> Schema:
    txn: Schema = ((("last_stable_offset", "int64"), ("aborted_transactions", ("narray", (
        ("producer_id", "int64"), ("first_offset", "int64"))))) if version >= 4 else ())
    partition: Schema = (("partition_index", "int32"), ("error_code", "int16"),
                         ("high_watermark", "int64"), *txn, ("records", "nbytes"))
    topics: Field = ("responses", ("array", (("topic", "string"), ("partitions", (
        "array", partition)))))
    return (("throttle_time_ms", "int32"), topics) if version >= 1 else (topics,)


MAX_FETCH_BYTES = 2**31 - 1
"""What Kafka takes as a Fetch's max_bytes below v3, which has none."""


def _fetch_upgrade(doc: Doc) -> Doc:
    # read_uncommitted: below v4 there is no isolation, aborted records included
    return {"max_bytes": MAX_FETCH_BYTES, **doc, "isolation_level": 0}


def _fetch_downgrade(version: int) -> Callable[[Doc], Doc]:
    magic = 0 if version < 2 else 1  # as Kafka: v0-1 read magic 0, v2-3 magic 1

    def partition(p: Doc) -> Doc:
        # zstd data never gets here: the Fetch handler refuses it below v10, as Kafka
        records = p["records"]
        if records:
            try:
                records = message_set.down_convert(records, magic)
            except CorruptBatch:
                records = b""
        return {"partition_index": p["partition_index"], "error_code": p["error_code"],
                "high_watermark": p["high_watermark"], "records": records}

    def downgrade(doc: Doc) -> Doc:
        doc = _map_partitions(doc, "responses", partition)
        return _without_throttle(doc) if version == 0 else doc
    return downgrade


# ------------------------------------------ DescribeAcls, CreateAcls, DeleteAcls (29-31)
# v1 added the resource pattern type (KIP-290); a v0 client knows only LITERAL names.

_ACL_V0: Schema = (("principal", "string"), ("host", "string"), ("operation", "int8"),
                   ("permission_type", "int8"))
_ACL_FILTER_V0: Schema = (("principal_filter", "nstring"), ("host_filter", "nstring"),
                          ("operation", "int8"), ("permission_type", "int8"))
_LITERAL = 3
_DESCRIBE_ACLS_V0_REQ: Schema = (("resource_type_filter", "int8"),
                                 ("resource_name_filter", "nstring"), *_ACL_FILTER_V0)
_DESCRIBE_ACLS_V1_REQ: Schema = (*_DESCRIBE_ACLS_V0_REQ[:2], ("pattern_type_filter", "int8"),
                                 *_ACL_FILTER_V0)


def _describe_acls_resp(pattern: bool) -> Schema:
    resource: Schema = (("resource_type", "int8"), ("resource_name", "string"),
                        *((("pattern_type", "int8"),) if pattern else ()),
                        ("acls", ("array", _ACL_V0)))
    return (("throttle_time_ms", "int32"), ("error_code", "int16"),
            ("error_message", "nstring"), ("resources", ("array", resource)))


def _literal_resources(doc: Doc) -> Doc:
    return {**doc, "resources": [{k: v for k, v in r.items() if k != "pattern_type"}
                                 for r in doc["resources"] if r["pattern_type"] == _LITERAL]}


_CREATE_ACLS_V0_REQ: Schema = (("creations", ("array", (
    ("resource_type", "int8"), ("resource_name", "string"), *_ACL_V0))),)
_CREATE_ACLS_V1_REQ: Schema = (("creations", ("array", (
    ("resource_type", "int8"), ("resource_name", "string"),
    ("resource_pattern_type", "int8"), *_ACL_V0))),)
_CREATE_ACLS_RESP: Schema = (("throttle_time_ms", "int32"), ("results", ("array", (
    ("error_code", "int16"), ("error_message", "nstring")))))
_DELETE_ACLS_V0_REQ: Schema = (("filters", ("array", _DESCRIBE_ACLS_V0_REQ)),)
_DELETE_ACLS_V1_REQ: Schema = (("filters", ("array", _DESCRIBE_ACLS_V1_REQ)),)


def _delete_acls_resp(pattern: bool) -> Schema:
    matching: Schema = (("error_code", "int16"), ("error_message", "nstring"),
                        ("resource_type", "int8"), ("resource_name", "string"),
                        *((("pattern_type", "int8"),) if pattern else ()), *_ACL_V0)
    return (("throttle_time_ms", "int32"), ("filter_results", ("array", (
        ("error_code", "int16"), ("error_message", "nstring"),
        ("matching_acls", ("array", matching))))))


def _with_literal(key: str, field: str) -> Callable[[Doc], Doc]:
    def upgrade(doc: Doc) -> Doc:
        return {**doc, key: [{**item, field: _LITERAL} for item in doc[key]]}
    return upgrade


def _deleted_without_pattern(doc: Doc) -> Doc:
    return {**doc, "filter_results": [
        {**f, "matching_acls": [{k: v for k, v in m.items() if k != "pattern_type"}
                                for m in f["matching_acls"]]}
        for f in doc["filter_results"]]}


TRANSLATIONS: dict[tuple[int, int], Translation] = {
    (t.api_key, t.version): t for t in (
        Translation(2, 0, 1, _LIST_OFFSETS_V0_REQ, _LIST_OFFSETS_V1_REQ,
                    _LIST_OFFSETS_V1_RESP, _LIST_OFFSETS_V0_RESP,
                    upgrade=lambda d: _map_partitions(d, "topics", lambda p: {
                        "partition_index": p["partition_index"], "timestamp": p["timestamp"]}),
                    downgrade=lambda d: _map_partitions(d, "topics", _old_style_offsets)),
        Translation(8, 0, 2, _OFFSET_COMMIT_V0_REQ, _OFFSET_COMMIT_V2_REQ,
                    _OFFSET_COMMIT_RESP, _OFFSET_COMMIT_RESP, upgrade=_commit_v0_to_v2),
        Translation(8, 1, 2, _OFFSET_COMMIT_V1_REQ, _OFFSET_COMMIT_V2_REQ,
                    _OFFSET_COMMIT_RESP, _OFFSET_COMMIT_RESP, upgrade=_commit_v1_to_v2),
        Translation(9, 0, 1, _OFFSET_FETCH_REQ, _OFFSET_FETCH_REQ,
                    _OFFSET_FETCH_RESP, _OFFSET_FETCH_RESP),
        Translation(32, 0, 1, _DESCRIBE_CONFIGS_V0_REQ, _DESCRIBE_CONFIGS_V1_REQ,
                    _DESCRIBE_CONFIGS_V1_RESP, _DESCRIBE_CONFIGS_V0_RESP,
                    upgrade=lambda d: {**d, "include_synonyms": False},
                    downgrade=_configs_v1_to_v0),
        Translation(19, 0, 2, _CREATE_TOPICS_V0_REQ, _CREATE_TOPICS_V1_REQ,
                    _CREATE_TOPICS_V2_RESP, _CREATE_TOPICS_V0_RESP,
                    upgrade=lambda d: {**d, "validate_only": False},
                    downgrade=_create_v2_to_v0),
        Translation(19, 1, 2, _CREATE_TOPICS_V1_REQ, _CREATE_TOPICS_V1_REQ,
                    _CREATE_TOPICS_V2_RESP, _CREATE_TOPICS_V1_RESP,
                    downgrade=_without_throttle),
        Translation(20, 0, 1, _DELETE_TOPICS_REQ, _DELETE_TOPICS_REQ,
                    _DELETE_TOPICS_V1_RESP, _DELETE_TOPICS_V0_RESP,
                    downgrade=_without_throttle),
        Translation(23, 0, 2, _EPOCH_V0_REQ, _EPOCH_V2_REQ, _EPOCH_V2_RESP, _EPOCH_V0_RESP,
                    upgrade=_epoch_v0_to_v2, downgrade=_epoch_v2_to_v0),
        Translation(23, 1, 2, _EPOCH_V0_REQ, _EPOCH_V2_REQ, _EPOCH_V2_RESP, _EPOCH_V1_RESP,
                    upgrade=_epoch_v0_to_v2, downgrade=_without_throttle),
        Translation(35, 0, 1, _LOG_DIRS_REQ, _LOG_DIRS_REQ, _LOG_DIRS_RESP, _LOG_DIRS_RESP),
        Translation(29, 0, 1, _DESCRIBE_ACLS_V0_REQ, _DESCRIBE_ACLS_V1_REQ,
                    _describe_acls_resp(True), _describe_acls_resp(False),
                    upgrade=lambda d: {**d, "pattern_type_filter": _LITERAL},
                    downgrade=_literal_resources),
        Translation(30, 0, 1, _CREATE_ACLS_V0_REQ, _CREATE_ACLS_V1_REQ,
                    _CREATE_ACLS_RESP, _CREATE_ACLS_RESP,
                    upgrade=_with_literal("creations", "resource_pattern_type")),
        Translation(31, 0, 1, _DELETE_ACLS_V0_REQ, _DELETE_ACLS_V1_REQ,
                    _delete_acls_resp(True), _delete_acls_resp(False),
                    upgrade=_with_literal("filters", "pattern_type_filter"),
                    downgrade=_deleted_without_pattern),
        *(Translation(0, v, 3, _produce_request(transactional=False),
                      _produce_request(transactional=True),
                      _produce_response(throttle=True, append_time=True),
                      _produce_response(throttle=v >= 1, append_time=v >= 2),
                      upgrade=_produce_upgrade, downgrade=_produce_downgrade(v))
          for v in (0, 1, 2)),
        *(Translation(1, v, 4, _fetch_request(v), _fetch_request(4), _fetch_response(4),
                      _fetch_response(v), upgrade=_fetch_upgrade,
                      downgrade=_fetch_downgrade(v))
          for v in (0, 1, 2, 3)),
    )
}
"""Every old version served by translation, by (api key, version)."""


def translation(api_key: int, version: int) -> Translation | None:
    """How (api_key, version) is served through a newer version, if it is."""
    return TRANSLATIONS.get((api_key, version))


def lowest_version(api_key: int) -> int | None:
    """The oldest version of ``api_key`` served by translation, if any."""
    versions = [v for (key, v) in TRANSLATIONS if key == api_key]
    return min(versions) if versions else None
