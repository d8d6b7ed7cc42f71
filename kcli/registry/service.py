"""What each REST call reads from the state or writes to ``_schemas``, without I/O.

Reads answer from :class:`RegistryState`. Writes return a :class:`Plan`: the records
to append and the answer to give once they are applied. Checks and messages follow
Confluent's ``KafkaSchemaRegistry`` and its REST resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kcli.registry import errors
from kcli.registry.errors import RegistryError
from kcli.registry.names import AVRO, LEVELS, MODES, SCHEMA_TYPES
from kcli.registry.schemas import (
    Reference,
    Schema,
    canonical,
    incompatibilities,
    invalid,
    parse_references,
)
from kcli.registry.state import (
    Record,
    RegistryState,
    Version,
    config_record,
    mode_record,
    schema_record,
    schema_tombstone,
)

_MAX_VERSION = 2**31 - 1


@dataclass
class Plan:
    """Records to append to ``_schemas``, and the answer once they are applied."""

    records: list[Record] = field(default_factory=list)
    answer: object = None


def parse_version(text: str) -> int | None:
    """A version id from a URL: 1..2^31-1, or None for ``latest`` / ``-1``; 42202 else."""
    if text in ("latest", "-1"):
        return None
    if text.isdigit() and 1 <= int(text) <= _MAX_VERSION:
        return int(text)
    raise RegistryError(errors.INVALID_VERSION,
                        f"The specified version '{text}' is not a valid version id. Allowed "
                        "values are between [1, 2^31-1] and the string \"latest\"")


class Registry:
    """The registry's API over one state."""

    def __init__(self, state: RegistryState) -> None:
        self.state = state

    # ------------------------------------------------------------------ helpers

    def resolve(self, ref: Reference) -> Schema:
        """The schema a reference names; 42201 when it does not exist."""
        versions = {v.version: v for v in self.state.versions(ref.subject)}
        number = ref.version if ref.version != -1 else max(versions, default=0)
        if number not in versions:
            raise invalid(f"reference {ref.name!r}: no version {ref.version} of subject "
                          f"{ref.subject!r}")
        return versions[number].schema

    def _schema_from(self, body: object) -> tuple[Schema, dict[str, object]]:
        if not isinstance(body, dict):
            raise invalid("the request body must be a JSON object")
        text = body.get("schema")
        if not isinstance(text, str) or not text:
            raise RegistryError(errors.INVALID_SCHEMA, "Empty schema")
        schema_type = body.get("schemaType") or AVRO
        if not isinstance(schema_type, str) or schema_type.upper() not in SCHEMA_TYPES:
            raise RegistryError(errors.INVALID_SCHEMA,
                                f"Invalid schema type {schema_type!r}; expected one of "
                                f"{', '.join(SCHEMA_TYPES)}")
        refs = parse_references(body.get("references"))
        return canonical(schema_type.upper(), text, refs, self.resolve), body

    def _versions(self, subject: str, deleted: bool = False) -> list[Version]:
        found = self.state.versions(subject, deleted)
        if not found:
            raise errors.subject_not_found(subject)
        return found

    def version(self, subject: str, text: str, deleted: bool = False) -> Version:
        """``GET /subjects/{s}/versions/{v}``."""
        number = parse_version(text)
        found = self._versions(subject, deleted)
        if number is None:
            live = [v for v in found if not v.deleted] or found
            return live[-1]
        for version in found:
            if version.version == number:
                return version
        raise errors.version_not_found(number)

    def _writable(self, subject: str) -> None:
        if self.state.mode(subject) in ("READONLY", "READONLY_OVERRIDE"):
            raise RegistryError(errors.OPERATION_NOT_PERMITTED,
                                f"Subject {subject} is in read-only mode")

    # ------------------------------------------------------------------ reads

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        """``GET /subjects``."""
        return [s for s in self.state.live_subjects(deleted) if s.startswith(prefix)]

    def version_numbers(self, subject: str, deleted: bool = False) -> list[int]:
        """``GET /subjects/{s}/versions``."""
        return [v.version for v in self._versions(subject, deleted)]

    def by_id(self, schema_id: int) -> Schema:
        """``GET /schemas/ids/{id}``."""
        schema = self.state.schema(schema_id)
        if schema is None:
            raise errors.schema_not_found(schema_id)
        return schema

    def id_versions(self, schema_id: int, deleted: bool = False) -> list[dict[str, object]]:
        """``GET /schemas/ids/{id}/versions``."""
        self.by_id(schema_id)
        return [{"subject": v.subject, "version": v.version}
                for v in self.state.uses_of(schema_id, deleted)]

    def lookup(self, subject: str, body: object, deleted: bool = False) -> Version:
        """``POST /subjects/{s}``: the version of this subject that holds the schema."""
        versions = self._versions(subject, deleted=True)
        schema, _ = self._schema_from(body)
        for version in reversed(versions):
            if (deleted or not version.deleted) and \
                    version.schema.fingerprint == schema.fingerprint:
                return version
        if not deleted and all(v.deleted for v in versions):
            raise errors.subject_not_found(subject)
        raise errors.schema_not_found()

    def config(self, subject: str | None, default_to_global: bool = False) -> dict[str, str]:
        """``GET /config[/{s}]``."""
        if subject is not None and subject not in self.state.configs and not default_to_global:
            raise RegistryError(errors.SUBJECT_CONFIG_NOT_FOUND,
                                f"Subject '{subject}' does not have subject-level "
                                "compatibility configured")
        return {"compatibilityLevel": self.state.level(subject)}

    def mode(self, subject: str | None, default_to_global: bool = False) -> dict[str, str]:
        """``GET /mode[/{s}]``."""
        if subject is not None and subject not in self.state.modes and not default_to_global:
            raise RegistryError(errors.SUBJECT_MODE_NOT_FOUND,
                                f"Subject '{subject}' does not have subject-level mode "
                                "configured")
        return {"mode": self.state.mode(subject)}

    def check(self, subject: str, version_text: str | None, body: object,
              verbose: bool = False) -> dict[str, object]:
        """``POST /compatibility/subjects/{s}/versions[/{v}]``: with a version, against
        that version; without, against what the subject's level compares with."""
        schema, _ = self._schema_from(body)
        level = self.state.level(subject)
        if version_text is None:
            previous = [(v.version, v.schema) for v in reversed(self.state.versions(subject))]
        else:
            chosen = self.version(subject, version_text)
            previous = [(chosen.version, chosen.schema)]
            level = level.removesuffix("_TRANSITIVE")
        messages = incompatibilities(level, schema, previous, self.resolve)
        answer: dict[str, object] = {"is_compatible": not messages}
        if verbose:
            answer["messages"] = messages
        return answer

    # ------------------------------------------------------------------ writes

    def register(self, subject: str, body: object) -> Plan:
        """``POST /subjects/{s}/versions``: the id of the schema in this subject,
        registering it as a new version when it is not there yet."""
        self._writable(subject)
        schema, fields = self._schema_from(body)
        importing = self.state.mode(subject) == "IMPORT"
        wanted_id, wanted_version = fields.get("id"), fields.get("version")
        existing = self.state.versions(subject, deleted=True)
        for version in existing:
            if not version.deleted and version.schema.fingerprint == schema.fingerprint \
                    and wanted_id in (None, -1, version.schema_id):
                return Plan([], {"id": version.schema_id})
        if wanted_id not in (None, -1) and not importing:
            raise RegistryError(errors.OPERATION_NOT_PERMITTED,
                                f"Subject {subject} is not in import mode; a schema id "
                                "can only be given in IMPORT mode")
        if not importing:
            previous = [(v.version, v.schema) for v in reversed(existing) if not v.deleted]
            messages = incompatibilities(self.state.level(subject), schema, previous,
                                         self.resolve)
            if messages:
                raise RegistryError(
                    errors.INCOMPATIBLE_SCHEMA,
                    "Schema being registered is incompatible with an earlier schema for "
                    f"subject \"{subject}\", details: [{', '.join(messages)}]")
        schema_id = self._choose_id(schema, wanted_id)
        number = max((v.version for v in existing), default=0) + 1
        if isinstance(wanted_version, int) and wanted_version > 0 and importing:
            if any(v.version == wanted_version for v in existing):
                raise RegistryError(errors.OPERATION_NOT_PERMITTED,
                                    f"Overwrite new schema with version {wanted_version} "
                                    f"of subject {subject} is not permitted.")
            number = wanted_version
        version = Version(subject, number, schema_id, schema)
        return Plan([schema_record(version)], {"id": schema_id})

    def _choose_id(self, schema: Schema, wanted: object) -> int:
        known = self.state.id_for(schema)
        if wanted in (None, -1):
            return known if known is not None else self.state.max_id + 1
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
            raise RegistryError(errors.INVALID_SCHEMA, f"Invalid schema id {wanted!r}")
        holder = self.state.schema(wanted)
        if holder is not None and holder.fingerprint != schema.fingerprint:
            raise RegistryError(errors.OPERATION_NOT_PERMITTED,
                                f"Overwrite new schema with id {wanted} is not permitted.")
        return wanted

    def delete_subject(self, subject: str, permanent: bool = False) -> Plan:
        """``DELETE /subjects/{s}``: soft first, then ``?permanent=true``."""
        self._writable(subject)
        every = self._versions(subject, deleted=True)
        live = [v for v in every if not v.deleted]
        if not permanent:
            if not live:
                raise RegistryError(errors.SUBJECT_SOFT_DELETED,
                                    f"Subject '{subject}' was soft deleted. Set "
                                    "permanent=true to delete permanently")
            self._unreferenced(subject, live)
            return Plan([schema_record(replace(v, deleted=True)) for v in live],
                        [v.version for v in live])
        if live:
            raise RegistryError(errors.SUBJECT_NOT_SOFT_DELETED,
                                f"Subject '{subject}' was not deleted first before being "
                                "deleted permanently")
        records = [schema_tombstone(subject, v.version) for v in every]
        if subject in self.state.configs:
            records.append(config_record(subject, None))
        if subject in self.state.modes:
            records.append(mode_record(subject, None))
        return Plan(records, [v.version for v in every])

    def delete_version(self, subject: str, text: str, permanent: bool = False) -> Plan:
        """``DELETE /subjects/{s}/versions/{v}``."""
        self._writable(subject)
        chosen = self.version(subject, text, deleted=True)
        if not permanent:
            if chosen.deleted:
                raise RegistryError(errors.VERSION_SOFT_DELETED,
                                    f"Subject '{subject}' Version {chosen.version} was soft "
                                    "deleted. Set permanent=true to delete permanently")
            self._unreferenced(subject, [chosen])
            return Plan([schema_record(replace(chosen, deleted=True))], chosen.version)
        if not chosen.deleted:
            raise RegistryError(errors.VERSION_NOT_SOFT_DELETED,
                                f"Subject '{subject}' Version {chosen.version} was not "
                                "deleted first before being deleted permanently")
        return Plan([schema_tombstone(subject, chosen.version)], chosen.version)

    def _unreferenced(self, subject: str, versions: list[Version]) -> None:
        for version in versions:
            users = self.state.referrers(subject, version.version)
            if users:
                raise RegistryError(errors.REFERENCE_EXISTS,
                                    f"One or more references exist to the schema "
                                    f"{{subject={subject},version={version.version}}} "
                                    f"(used by {users[0].subject} version {users[0].version})")

    def set_config(self, subject: str | None, body: object) -> Plan:
        """``PUT /config[/{s}]``."""
        level = body.get("compatibility") if isinstance(body, dict) else None
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise RegistryError(errors.INVALID_COMPATIBILITY_LEVEL,
                                "Invalid compatibility level. Valid values are none, "
                                "backward, forward, full, backward_transitive, "
                                "forward_transitive, and full_transitive")
        return Plan([config_record(subject, level.upper())], {"compatibility": level.upper()})

    def delete_config(self, subject: str | None) -> Plan:
        """``DELETE /config[/{s}]``: back to the global level (or the default)."""
        answer = self.config(subject)
        return Plan([config_record(subject, None)], answer)

    def set_mode(self, subject: str | None, body: object, force: bool = False) -> Plan:
        """``PUT /mode[/{s}]``; IMPORT only where nothing is registered yet, unless
        forced, as Confluent requires."""
        mode = body.get("mode") if isinstance(body, dict) else None
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise RegistryError(errors.INVALID_MODE,
                                "Invalid mode. Valid values are READWRITE, READONLY, "
                                "READONLY_OVERRIDE and IMPORT.")
        mode = mode.upper()
        if mode == "IMPORT" and not force:
            taken = self.state.live_subjects() if subject is None else \
                ([subject] if self.state.versions(subject) else [])
            if taken:
                raise RegistryError(errors.OPERATION_NOT_PERMITTED,
                                    "Cannot import since found existing subjects")
        return Plan([mode_record(subject, mode)], {"mode": mode})

    def delete_mode(self, subject: str) -> Plan:
        """``DELETE /mode/{s}``."""
        answer = self.mode(subject)
        return Plan([mode_record(subject, None)], answer)
