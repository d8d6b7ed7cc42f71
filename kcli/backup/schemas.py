"""Schema Registry ids in records: which schemas a backup must carry, and the
source-to-target id translation that restore and migrate apply to framed keys and
values.

A framed key or value names its schema by a registry-global id, which means nothing in
another registry. MirrorMaker 2 copies the bytes and leaves the ids dangling; Confluent
Replicator keeps them but needs an empty target registry in IMPORT mode. kcli does
both: when the target registry is in IMPORT mode, each schema is registered with its
own id and version (nothing in the records changes); otherwise it is registered (or
found) under its subjects and the records' ids are rewritten to the target's ids.
Subjects named after a renamed topic (TopicNameStrategy, ``<topic>-key|value``) follow
the new name, as Replicator's subject translator does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kcli.client.schemas import RegistryClient, StoredSchema, framed_id, reframe
from kcli.errors import NotFound, OperationFailed


def collect_ids(ids: set[int], key: bytes | None, value: bytes | None) -> None:
    """Add the schema ids a record's key and value are framed with."""
    for data in (key, value):
        if data is not None and len(data) > 4 and data[0] == 0:
            ids.add(int.from_bytes(data[1:5], "big"))


@dataclass
class ArchivedSchema:
    """A schema as an archive (or a source registry) gives it."""

    schema_id: int
    schema: StoredSchema
    subjects: list[tuple[str, int]] = field(default_factory=list)
    """(subject, version) of every version that held it."""

    def to_dict(self) -> dict[str, Any]:
        """Its entry in ``cluster/schemas.json``."""
        return {"id": self.schema_id, "type": self.schema.schema_type,
                "schema": self.schema.text,
                "references": [{"name": n, "subject": s, "version": v}
                               for n, s, v in self.schema.references],
                "subjects": [{"subject": s, "version": v} for s, v in self.subjects]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ArchivedSchema:
        """From its entry; KeyError/TypeError/ValueError on a malformed one."""
        refs = tuple((str(r["name"]), str(r["subject"]), int(r["version"]))
                     for r in doc.get("references") or ())
        return cls(int(doc["id"]), StoredSchema(str(doc["schema"]), str(doc["type"]), refs),
                   [(str(s["subject"]), int(s["version"])) for s in doc.get("subjects") or ()])


def fetch_schemas(registry: RegistryClient, ids: Iterable[int],
                  missing: Callable[[str], None]) -> list[ArchivedSchema]:
    """The schemas with these ids and every schema they reference, from a registry;
    ``missing`` hears of ids the registry does not have (bytes that only look framed,
    or schemas deleted for good)."""
    found: dict[int, ArchivedSchema] = {}
    pending = sorted(set(ids))
    while pending:
        schema_id = pending.pop()
        if schema_id in found:
            continue
        try:
            schema = registry.schema(schema_id)
        except NotFound:
            missing(f"schema id {schema_id} is in the records but not in the registry at "
                    f"{registry.url}")
            continue
        found[schema_id] = ArchivedSchema(schema_id, schema, registry.uses(schema_id))
        for _name, subject, version in schema.references:
            pending.append(int(registry.version(subject, version)["id"]))
    return [found[i] for i in sorted(found)]


class SchemaSource(Protocol):
    """Where source schemas come from: an archive, or the source cluster's registry."""

    def by_id(self, schema_id: int) -> ArchivedSchema | None:
        """The schema with this source id, or None if it is not known."""

    def at(self, subject: str, version: int) -> ArchivedSchema | None:
        """The schema a source subject held at a version (for references)."""


class IdTranslator:
    """Maps source schema ids to target ids, registering schemas in the target as
    records first need them; ``rewrite`` is applied to every copied key and value."""

    def __init__(self, source: SchemaSource, target: RegistryClient,
                 rename: Mapping[str, str] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.target = target
        self.rename = dict(rename or {})
        self._say = say or (lambda message: None)
        self.ids: dict[int, int] = {}
        self.kept = self.rewritten = 0
        self.importing = target.mode() == "IMPORT"

    def subject(self, name: str) -> str:
        """A subject named after a renamed topic follows the new name."""
        for old, new in self.rename.items():
            for suffix in ("-key", "-value"):
                if name == old + suffix:
                    return new + suffix
        return name

    def rewrite(self, data: bytes | None) -> bytes | None:
        """A framed key or value with its target id (anything else unchanged)."""
        schema_id = framed_id(data)
        if schema_id is None:
            return data
        assert data is not None
        target = self.ids.get(schema_id)
        if target is None:
            target = self._translate(schema_id, 0)
        return data if target == schema_id else reframe(data, target)

    def _translate(self, schema_id: int, depth: int) -> int:
        source = self.source.by_id(schema_id)
        if source is None:  # not a schema the archive or registry knows: leave the bytes
            self.ids[schema_id] = schema_id
            return schema_id
        if depth > 32:
            raise OperationFailed(f"schema id {schema_id}: references nest too deep")
        refs = tuple((name, self.subject(subject), self._reference(subject, version, depth))
                     for name, subject, version in source.schema.references)
        schema = StoredSchema(source.schema.text, source.schema.schema_type, refs)
        target_id: int | None = None
        for subject, version in source.subjects or [(f"schema-{schema_id}", 1)]:
            name = self.subject(subject)
            existing = self.target.lookup(name, schema)
            if existing is not None:
                target_id = existing
            elif self.importing:
                target_id = self.target.register_as(name, schema, schema_id, version)
            else:
                target_id = self.target.register(name, schema)
        assert target_id is not None
        self.ids[schema_id] = target_id
        if target_id == schema_id:
            self.kept += 1
        else:
            self.rewritten += 1
        if len(self.ids) == 1:
            self._say("schema ids kept: the target registry is in IMPORT mode"
                      if self.importing else
                      "schemas registered in the target registry; record schema ids are "
                      "rewritten to the target's ids")
        return target_id

    def _reference(self, subject: str, version: int, depth: int) -> int:
        """The target version of a referenced source subject version."""
        source = self.source.at(subject, version)
        if source is None:
            return version
        target_id = self.ids.get(source.schema_id)
        if target_id is None:
            target_id = self._translate(source.schema_id, depth + 1)
        name = self.subject(subject)
        for candidate in reversed(self.target.versions(name)):
            if self.target.version(name, candidate)["id"] == target_id:
                return candidate
        return version

    def summary(self) -> str:
        """What was done, for the command's report."""
        return (f"{len(self.ids)} schema id(s): {self.kept} kept, {self.rewritten} "
                "rewritten to the target registry's ids")


class ArchiveSchemas:
    """Schemas read from an archive."""

    def __init__(self, schemas: Iterable[ArchivedSchema]) -> None:
        self._by_id = {s.schema_id: s for s in schemas}

    def by_id(self, schema_id: int) -> ArchivedSchema | None:
        """The archived schema with this id."""
        return self._by_id.get(schema_id)

    def at(self, subject: str, version: int) -> ArchivedSchema | None:
        """The archived schema a subject held at a version."""
        return next((s for s in self._by_id.values() if (subject, version) in s.subjects),
                    None)


class LiveSchemas:
    """Schemas fetched from the source registry as ids turn up (migrate)."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self._cache: dict[int, ArchivedSchema | None] = {}

    def by_id(self, schema_id: int) -> ArchivedSchema | None:
        """The source registry's schema with this id (cached)."""
        if schema_id not in self._cache:
            try:
                schema = self.registry.schema(schema_id)
                self._cache[schema_id] = ArchivedSchema(schema_id, schema,
                                                        self.registry.uses(schema_id))
            except NotFound:
                self._cache[schema_id] = None
        return self._cache[schema_id]

    def at(self, subject: str, version: int) -> ArchivedSchema | None:
        """The source registry's schema at a subject version."""
        try:
            schema_id = int(self.registry.version(subject, version)["id"])
        except NotFound:
            return None
        return self.by_id(schema_id)
