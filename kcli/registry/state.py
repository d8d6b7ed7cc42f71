"""The registry's state, rebuilt by applying the ``_schemas`` records in order.

The records are Confluent's (and Karapace's), so kcli's registry reads a ``_schemas``
topic that either of them wrote, and they read ours. Keys and values are JSON::

    SCHEMA          {"keytype","subject","version","magic":1}
                    -> {"subject","version","id","schema","schemaType"?,"references"?,
                        "deleted"}; null value = permanently deleted
    CONFIG          {"keytype","subject" (null: global),"magic":0}
                    -> {"compatibilityLevel"}; null = unset
    MODE            same key as CONFIG -> {"subject","mode"}; null = unset
    DELETE_SUBJECT  {"keytype","subject","magic":0} -> {"subject","version"}: every
                    version up to it soft-deleted
    NOOP            {"keytype","magic":0}, ignored

kcli writes a SCHEMA record per version for soft deletes too (deleted: true), so the
state survives compaction of the topic without depending on record order.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import orjson

from kcli.registry.names import AVRO, DEFAULT_LEVEL
from kcli.registry.schemas import Reference, Schema

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes | None]
"""A ``_schemas`` record: key and value (None: a tombstone)."""


@dataclass
class Version:
    """One version of a subject."""

    subject: str
    version: int
    schema_id: int
    schema: Schema
    deleted: bool = False

    def to_json(self) -> dict[str, object]:
        """The REST form of ``GET /subjects/{s}/versions/{v}``."""
        return {"subject": self.subject, "version": self.version, "id": self.schema_id,
                **self.schema.to_json()}


def _key(doc: dict[str, object]) -> bytes:
    return orjson.dumps(doc)


def schema_record(version: Version) -> Record:
    """The SCHEMA record that stores (or soft-deletes) a version."""
    key = _key({"keytype": "SCHEMA", "subject": version.subject,
                "version": version.version, "magic": 1})
    value: dict[str, object] = {"subject": version.subject, "version": version.version,
                                "id": version.schema_id, "schema": version.schema.text}
    if version.schema.schema_type != AVRO:
        value["schemaType"] = version.schema.schema_type
    if version.schema.references:
        value["references"] = [r.to_json() for r in version.schema.references]
    value["deleted"] = version.deleted
    return key, orjson.dumps(value)


def schema_tombstone(subject: str, version: int) -> Record:
    """The record that deletes a version permanently."""
    return _key({"keytype": "SCHEMA", "subject": subject, "version": version,
                 "magic": 1}), None


def config_record(subject: str | None, level: str | None) -> Record:
    """Set (or, with None, unset) a compatibility level; subject None is the global one."""
    key = _key({"keytype": "CONFIG", "subject": subject, "magic": 0})
    return key, None if level is None else orjson.dumps({"compatibilityLevel": level})


def mode_record(subject: str | None, mode: str | None) -> Record:
    """Set (or unset) a mode; subject None is the global one."""
    key = _key({"keytype": "MODE", "subject": subject, "magic": 0})
    return key, None if mode is None else orjson.dumps({"subject": subject, "mode": mode})


def noop_record() -> Record:
    """A record that changes nothing: written to learn where the topic ends."""
    return _key({"keytype": "NOOP", "magic": 0}), None


@dataclass
class RegistryState:
    """Subjects, versions, ids, compatibility levels and modes."""

    subjects: dict[str, dict[int, Version]] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)
    modes: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0
    _by_id: dict[int, Schema] = field(default_factory=dict)
    _id_users: dict[int, int] = field(default_factory=dict)
    _by_fingerprint: dict[tuple[object, ...], int] = field(default_factory=dict)

    # ------------------------------------------------------------------ applying

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one ``_schemas`` record; a record that does not parse is logged and
        skipped, as Confluent's store does, so one bad record cannot stop the registry."""
        try:
            doc = orjson.loads(key) if key else None
            body = orjson.loads(value) if value is not None else None
            if not isinstance(doc, dict) or not (body is None or isinstance(body, dict)):
                raise ValueError("not a JSON object")
            self._apply(doc, body)
        except (ValueError, TypeError, KeyError) as error:
            log.warning("skipping a _schemas record that does not parse: %s", error)

    def _apply(self, key: dict[str, object], value: dict[str, object] | None) -> None:
        keytype = key.get("keytype")
        subject = key.get("subject")
        if keytype == "SCHEMA":
            number = key["version"]
            if not isinstance(subject, str) or not isinstance(number, int):
                raise ValueError("SCHEMA key without subject and version")
            if value is None:
                self._remove(subject, number)
            else:
                self._put(self._version_from(subject, number, value))
        elif keytype in ("CONFIG", "MODE"):
            if subject is not None and not isinstance(subject, str):
                raise ValueError(f"{keytype} key with a bad subject")
            target = self.configs if keytype == "CONFIG" else self.modes
            field_name = "compatibilityLevel" if keytype == "CONFIG" else "mode"
            setting = value.get(field_name) if value is not None else None
            if isinstance(setting, str):
                target[subject] = setting.upper()
            else:
                target.pop(subject, None)
        elif keytype == "DELETE_SUBJECT" and isinstance(subject, str) and value is not None:
            upto = value.get("version")
            for version in self.subjects.get(subject, {}).values():
                if isinstance(upto, int) and version.version <= upto:
                    version.deleted = True

    @staticmethod
    def _version_from(subject: str, number: int, value: dict[str, object]) -> Version:
        schema_id, text = value["id"], value["schema"]
        if not isinstance(schema_id, int) or not isinstance(text, str):
            raise ValueError("SCHEMA value without id and schema")
        raw_refs = value.get("references") or []
        refs = tuple(Reference(str(r["name"]), str(r["subject"]), int(r["version"]))
                     for r in raw_refs if isinstance(r, dict)) if isinstance(raw_refs, list) else ()
        schema_type = value.get("schemaType") or AVRO
        schema = Schema(str(schema_type).upper(), text, refs)
        return Version(subject, number, schema_id, schema, bool(value.get("deleted")))

    def _put(self, version: Version) -> None:
        versions = self.subjects.setdefault(version.subject, {})
        old = versions.get(version.version)
        if old is not None:
            self._release(old.schema_id)
        versions[version.version] = version
        self._by_id.setdefault(version.schema_id, version.schema)
        self._id_users[version.schema_id] = self._id_users.get(version.schema_id, 0) + 1
        with contextlib.suppress(ValueError):  # a text that is not JSON is never matched
            self._by_fingerprint.setdefault(version.schema.fingerprint, version.schema_id)
        self.max_id = max(self.max_id, version.schema_id)

    def _remove(self, subject: str, number: int) -> None:
        versions = self.subjects.get(subject, {})
        old = versions.pop(number, None)
        if old is not None:
            self._release(old.schema_id)
        if not versions:
            self.subjects.pop(subject, None)

    def _release(self, schema_id: int) -> None:
        users = self._id_users.get(schema_id, 0) - 1
        if users > 0:
            self._id_users[schema_id] = users
            return
        self._id_users.pop(schema_id, None)
        schema = self._by_id.pop(schema_id, None)
        if schema is not None:
            for fingerprint, known in list(self._by_fingerprint.items()):
                if known == schema_id:
                    del self._by_fingerprint[fingerprint]

    # ------------------------------------------------------------------ reading

    def schema(self, schema_id: int) -> Schema | None:
        """The schema with this id, if any version still holds it."""
        return self._by_id.get(schema_id)

    def id_for(self, schema: Schema) -> int | None:
        """The id the same schema already has, in any subject."""
        return self._by_fingerprint.get(schema.fingerprint)

    def versions(self, subject: str, deleted: bool = False) -> list[Version]:
        """A subject's versions in order; soft-deleted ones only when asked."""
        found = self.subjects.get(subject, {})
        return [found[n] for n in sorted(found) if deleted or not found[n].deleted]

    def live_subjects(self, deleted: bool = False) -> list[str]:
        """Subjects with a version left (soft-deleted ones too when asked), sorted."""
        return sorted(s for s in self.subjects if self.versions(s, deleted))

    def uses_of(self, schema_id: int, deleted: bool = False) -> list[Version]:
        """Every version that holds this id."""
        return [v for s in sorted(self.subjects) for v in self.versions(s, deleted)
                if v.schema_id == schema_id]

    def referrers(self, subject: str, version: int) -> list[Version]:
        """Live versions whose references name this subject and version."""
        return [v for s in sorted(self.subjects) for v in self.versions(s)
                if any(r.subject == subject and r.version == version
                       for r in v.schema.references)]

    def level(self, subject: str | None) -> str:
        """The compatibility level that applies to a subject."""
        if subject is not None and subject in self.configs:
            return self.configs[subject]
        return self.configs.get(None, DEFAULT_LEVEL)

    def mode(self, subject: str | None) -> str:
        """The mode that applies to a subject."""
        if subject is not None and subject in self.modes:
            return self.modes[subject]
        return self.modes.get(None, "READWRITE")
