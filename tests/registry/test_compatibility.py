"""Avro compatibility levels on schema pairs whose answers come from the Avro
specification's resolution rules (the table in reference/schema-registry.md, taken from
Confluent's AvroCompatibilityTest and Karapace's tests)."""

from __future__ import annotations

import json

import pytest

from kcli.registry.errors import RegistryError
from kcli.registry.names import AVRO
from kcli.registry.schemas import Reference, Schema, canonical, incompatibilities


def _no_refs(ref: Reference) -> Schema:
    raise AssertionError(f"unexpected reference {ref}")


def schema(doc: object) -> Schema:
    return canonical(AVRO, json.dumps(doc), (), _no_refs)


def record(*fields: dict[str, object], name: str = "R", **extra: object) -> Schema:
    return schema({"type": "record", "name": name, "fields": list(fields), **extra})


A = {"name": "a", "type": "int"}
B_DEFAULT = {"name": "b", "type": "string", "default": ""}
B = {"name": "b", "type": "string"}
E2 = {"type": "enum", "name": "E", "symbols": ["X", "Y"]}
E3 = {"type": "enum", "name": "E", "symbols": ["X", "Y", "Z"]}

# (case, old, new, backward, forward)
PAIRS = [
    ("add field with default", record(A), record(A, B_DEFAULT), True, True),
    ("add field without default", record(A), record(A, B), False, True),
    ("drop field with default", record(A, B_DEFAULT), record(A), True, True),
    ("drop field without default", record(A, B), record(A), True, False),
    ("rename a field, aliasing the old name",
     record(A), record({"name": "c", "type": "int", "aliases": ["a"]}), True, False),
    ("int to long", schema("int"), schema("long"), True, False),
    ("long to double", schema("long"), schema("double"), True, False),
    ("float to int", schema("float"), schema("int"), False, True),
    ("string to bytes", schema("string"), schema("bytes"), True, True),
    ("int to string", schema("int"), schema("string"), False, False),
    ("string to a nullable string", schema("string"), schema(["null", "string"]), True, False),
    ("add a union branch", schema(["null", "int"]), schema(["null", "int", "string"]),
     True, False),
    ("remove a union branch", schema(["null", "int", "string"]), schema(["null", "int"]),
     False, True),
    ("enum adds a symbol", schema(E2), schema(E3), True, False),
    ("enum adds a symbol, the old one has a default", schema({**E2, "default": "X"}),
     schema(E3), True, True),
    ("enum drops a symbol", schema(E3), schema(E2), False, True),
    ("enum drops a symbol, the new one has a default", schema(E3),
     schema({**E2, "default": "X"}), True, True),
    ("rename the record without an alias", record(A), record(A, name="S"), False, False),
    ("fixed size 4 to 8", schema({"type": "fixed", "name": "F", "size": 4}),
     schema({"type": "fixed", "name": "F", "size": 8}), False, False),
]


@pytest.mark.parametrize(("case", "old", "new", "backward", "forward"), PAIRS,
                         ids=[p[0] for p in PAIRS])
def test_each_level_on_each_pair(case: str, old: Schema, new: Schema, backward: bool,
                                 forward: bool) -> None:
    def ok(level: str) -> bool:
        return not incompatibilities(level, new, [(1, old)], _no_refs)

    assert ok("BACKWARD") is backward
    assert ok("FORWARD") is forward
    assert ok("FULL") is (backward and forward)
    assert ok("NONE") is True


def test_transitive_levels_look_at_every_version() -> None:
    v1, v2, v3 = record(A), record(A, B_DEFAULT), record(A, B)
    previous = [(2, v2), (1, v1)]  # newest first
    assert not incompatibilities("BACKWARD", v3, previous, _no_refs)
    found = incompatibilities("BACKWARD_TRANSITIVE", v3, previous, _no_refs)
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in found)
    assert "{oldSchemaVersion: 1}" in found
    assert found[-1] == "{compatibility: 'BACKWARD_TRANSITIVE'}"


@pytest.mark.parametrize("text", [
    "{", '{"type":"record","name":"R"}', '{"type":"nope"}', '{"type":"enum","name":"E"}',
    '{"type":"fixed","name":"F","size":"x"}', "[1]", '"unknown.Name"',
])
def test_invalid_avro_is_42201(text: str) -> None:
    with pytest.raises(RegistryError) as caught:
        canonical(AVRO, text, (), _no_refs)
    assert (caught.value.status, caught.value.code) == (422, 42201)


def test_canonical_text_drops_whitespace_and_keeps_order() -> None:
    spaced = '{ "type" : "record", "name":"R",\n "fields": [ {"name":"a","type":"int"} ] }'
    assert canonical(AVRO, spaced, (), _no_refs).text == \
        '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
    reordered = '{"name":"R","fields":[{"type":"int","name":"a"}],"type":"record"}'
    assert canonical(AVRO, reordered, (), _no_refs).fingerprint == \
        canonical(AVRO, spaced, (), _no_refs).fingerprint
