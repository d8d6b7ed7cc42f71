"""The registry's state machine without a broker: every write is a list of `_schemas`
records, and replaying the records (as a restart does) rebuilds the same answers, even
after compaction keeps only the last record per key; bad records are skipped."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcli.registry.errors import RegistryError
from kcli.registry.service import Registry
from kcli.registry.state import Record, RegistryState

SUBJECTS = ["a-value", "b-value", "c-key"]


def body(fields: int, default: bool = True) -> dict[str, str]:
    doc = {"type": "record", "name": "R", "fields": [
        {"name": f"f{i}", "type": "int", **({"default": 0} if default else {})}
        for i in range(fields)]}
    return {"schema": json.dumps(doc)}


def answers(registry: Registry) -> object:
    state = registry.state
    return {
        "subjects": registry.subjects(deleted=True),
        "versions": {s: [(v.version, v.schema_id, v.deleted, v.schema.text)
                         for v in state.versions(s, deleted=True)] for s in state.subjects},
        "configs": dict(state.configs), "modes": dict(state.modes), "max_id": state.max_id,
    }


operation = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(SUBJECTS), st.integers(0, 4),
              st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(SUBJECTS), st.booleans()),
    st.tuples(st.just("delete_version"), st.sampled_from(SUBJECTS), st.integers(1, 4),
              st.booleans()),
    st.tuples(st.just("config"), st.sampled_from([*SUBJECTS, None]),
              st.sampled_from(["NONE", "BACKWARD", "FULL_TRANSITIVE", "bogus"])),
)


def run(registry: Registry, op: tuple[object, ...], log: list[Record]) -> None:
    kind = op[0]
    try:
        if kind == "register":
            plan = registry.register(str(op[1]), body(int(op[2]), bool(op[3])))  # type: ignore[call-overload]
        elif kind == "delete":
            plan = registry.delete_subject(str(op[1]), bool(op[2]))
        elif kind == "delete_version":
            plan = registry.delete_version(str(op[1]), str(op[2]), bool(op[3]))
        else:
            plan = registry.set_config(op[1] if op[1] is None else str(op[1]),
                                       {"compatibility": op[2]})
    except RegistryError:
        return  # refused: nothing written
    for key, value in plan.records:
        registry.state.apply(key, value)
        log.append((key, value))


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=25))
def test_replaying_the_records_rebuilds_the_same_registry(ops: list[tuple[object, ...]]) -> None:
    live = Registry(RegistryState())
    log: list[Record] = []
    for op in ops:
        run(live, op, log)
    replayed = Registry(RegistryState())
    for key, value in log:
        replayed.state.apply(key, value)
    assert answers(replayed) == answers(live)
    # compaction keeps the last record of each key, in the order of their last writes
    last: dict[bytes, tuple[int, bytes | None]] = {}
    for position, (key, value) in enumerate(log):
        last[key] = (position, value)
    compacted = Registry(RegistryState())
    for key, (_, value) in sorted(last.items(), key=lambda item: item[1][0]):
        compacted.state.apply(key, value)
    expected = answers(live)
    got = answers(compacted)
    assert got["versions"] == expected["versions"]  # type: ignore[index]
    assert got["configs"] == expected["configs"]  # type: ignore[index]


@pytest.mark.parametrize(("key", "value"), [
    (b"not json", b"{}"),
    (b'{"keytype":"SCHEMA","subject":"x","version":"one","magic":1}', b"{}"),
    (b'{"keytype":"SCHEMA","subject":"x","version":1,"magic":1}', b'{"id":"7"}'),
    (b'{"keytype":"SCHEMA","subject":"x","version":1,"magic":1}', b"\xff\xfe"),
    (b'["a list"]', None),
    (None, b"{}"),
    (b'{"keytype":"CONFIG","subject":7,"magic":0}', b'{"compatibilityLevel":"NONE"}'),
    (b'{"keytype":"WHATEVER","magic":0}', b'{"x":1}'),
])
def test_records_that_do_not_parse_are_skipped(key: bytes | None, value: bytes | None) -> None:
    registry = Registry(RegistryState())
    plan = registry.register("s-value", body(1))
    for record_key, record_value in plan.records:
        registry.state.apply(record_key, record_value)
    before = answers(registry)
    registry.state.apply(key, value)
    assert answers(registry) == before


def test_reads_confluents_delete_subject_record() -> None:
    """Confluent's registry soft-deletes a subject with one DELETE_SUBJECT record."""
    registry = Registry(RegistryState())
    for fields in (1, 2):
        for key, value in registry.register("s-value", body(fields)).records:
            registry.state.apply(key, value)
    registry.state.apply(
        orjson.dumps({"keytype": "DELETE_SUBJECT", "subject": "s-value", "magic": 0}),
        orjson.dumps({"subject": "s-value", "version": 2}))
    assert registry.subjects() == []
    assert registry.subjects(deleted=True) == ["s-value"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "name", "fields", "symbols", "items", "values", "size",
                         "default", "namespace", "aliases"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(schema=json_values, schema_type=st.sampled_from([None, "AVRO", "JSON", "PROTOBUF", 7]),
       references=st.one_of(st.none(), json_values))
def test_any_request_body_is_an_answer_or_a_registry_error(
        schema: object, schema_type: object, references: object) -> None:
    """Whatever JSON a client posts, the service answers or raises RegistryError: no
    other exception reaches the HTTP layer's generic 500."""
    registry = Registry(RegistryState())
    for body in ({"schema": orjson.dumps(schema).decode(), "schemaType": schema_type,
                  "references": references},
                 {"schema": schema}, schema):
        for call in (lambda b: registry.register("s-value", b),
                     lambda b: registry.lookup("s-value", b),
                     lambda b: registry.check("s-value", None, b),
                     lambda b: registry.set_config("s-value", b),
                     lambda b: registry.set_mode("s-value", b)):
            try:
                plan = call(body)
            except RegistryError:
                continue
            for key, value in getattr(plan, "records", []):
                registry.state.apply(key, value)
