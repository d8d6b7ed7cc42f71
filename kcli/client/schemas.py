"""A Schema Registry (Confluent's REST API) through confluent-kafka's SchemaRegistryClient.

Any registry that speaks the API works: Confluent's, Karapace, Redpanda's, Apicurio's
compatibility layer, or the one every local kcli cluster runs. Errors come back as
:class:`KcliError`: 404s are NotFound, 409 (incompatible) OperationFailed, 422 (invalid
schema, version or level) BadInput, and a registry that cannot be reached Unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kcli.errors import BadInput, KcliError, NotFound, OperationFailed, Unreachable

# confluent_kafka.schema_registry is imported where it is used: its imports (httpx,
# authlib, trio) cost 150 ms, which decoding records does not pay (schema_fetch.py)
if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema

T = TypeVar("T")
MAGIC = 0
"""The first byte of a registry-framed key or value; the schema id follows (4 bytes)."""


def framed_id(data: bytes | None) -> int | None:
    """The schema id of a registry-framed key or value, or None when it is not framed."""
    if data is None or len(data) < 5 or data[0] != MAGIC:
        return None
    return int.from_bytes(data[1:5], "big")


def reframe(data: bytes, schema_id: int) -> bytes:
    """The same framed bytes with another schema id."""
    return bytes([MAGIC]) + schema_id.to_bytes(4, "big") + data[5:]


@dataclass(frozen=True)
class StoredSchema:
    """A schema as a registry holds it: text, type and references."""

    text: str
    schema_type: str = "AVRO"
    references: tuple[tuple[str, str, int], ...] = ()
    """(name, subject, version) of each reference."""

    def to_client(self) -> Schema:
        """confluent-kafka's Schema object."""
        from confluent_kafka.schema_registry import Schema, SchemaReference

        refs = [SchemaReference(name, subject, version)
                for name, subject, version in self.references]
        return Schema(self.text, self.schema_type, refs)

    def to_dict(self) -> dict[str, Any]:
        """The REST body (``schema``, ``schemaType``, ``references``)."""
        doc: dict[str, Any] = {"schema": self.text, "schemaType": self.schema_type}
        if self.references:
            doc["references"] = [{"name": n, "subject": s, "version": v}
                                 for n, s, v in self.references]
        return doc

    @classmethod
    def from_client(cls, schema: Schema) -> StoredSchema:
        """From confluent-kafka's Schema object."""
        refs = tuple((str(r.name), str(r.subject), int(r.version or 0))
                     for r in schema.references or ())
        return cls(schema.schema_str or "", schema.schema_type or "AVRO", refs)


_DELETE_ORDER = range(40404, 40408)
"""404s that are about the order of deletes (soft first), not a missing subject."""


def _translate(error: Exception, what: str, url: str) -> KcliError:
    from confluent_kafka.schema_registry import SchemaRegistryError

    if isinstance(error, SchemaRegistryError):
        message = f"{what}: {error.error_message} (registry error {error.error_code})"
        status = error.http_status_code
        if status == 404 and error.error_code not in _DELETE_ORDER:
            return NotFound(message)
        if status in {422, 400}:
            return BadInput(message)
        return OperationFailed(message)
    if type(error).__module__.split(".")[0].startswith("httpx"):
        return Unreachable(f"cannot reach the schema registry at {url}: {error}")
    raise error


class RegistryClient:
    """One registry, with kcli's errors."""

    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = str(config["url"])
        settings = dict(config)
        settings.setdefault("max.retries", 1)  # a dead registry fails in a second or two
        try:
            self.client = SchemaRegistryClient(settings)
        except (ValueError, TypeError) as error:
            raise BadInput(f"schema registry settings: {error}") from None

    def close(self) -> None:
        """Close its HTTP connections."""
        self.client.close()

    def call(self, what: str, action: Callable[[], T]) -> T:
        """Run one request, translating its errors."""
        try:
            return action()
        except KcliError:
            raise
        except Exception as error:
            raise _translate(error, what, self.url) from None

    # ------------------------------------------------------------------ reads

    def subjects(self, deleted: bool = False) -> list[str]:
        """Every subject."""
        return list(self.call("listing subjects",
                              lambda: self.client.get_subjects(deleted=deleted)))

    def versions(self, subject: str) -> list[int]:
        """A subject's versions."""
        return list(self.call(f"subject {subject}", lambda: self.client.get_versions(subject)))

    def version(self, subject: str, version: int | str = "latest") -> dict[str, Any]:
        """One version: subject, version, id, type, schema, references."""
        def get() -> Any:
            if version == "latest":
                return self.client.get_latest_version(subject)
            return self.client.get_version(subject, int(version))

        found = self.call(f"subject {subject} version {version}", get)
        stored = StoredSchema.from_client(found.schema)
        return {"subject": found.subject, "version": found.version, "id": found.schema_id,
                "type": stored.schema_type, "schema": stored.text,
                "references": [{"name": n, "subject": s, "version": v}
                               for n, s, v in stored.references]}

    def schema(self, schema_id: int) -> StoredSchema:
        """The schema with this id."""
        return StoredSchema.from_client(
            self.call(f"schema id {schema_id}", lambda: self.client.get_schema(schema_id)))

    def uses(self, schema_id: int) -> list[tuple[str, int]]:
        """(subject, version) of every version that holds this id."""
        found = self.call(f"schema id {schema_id}",
                          lambda: self.client.get_schema_versions(schema_id))
        return [(str(v.subject), int(v.version or 0)) for v in found]

    def level(self, subject: str | None = None) -> str:
        """The compatibility level of a subject (or the global one)."""
        what = f"compatibility of {subject}" if subject else "the global compatibility"
        if subject is None:
            return str(self.call(what, self.client.get_compatibility))
        body = self.call(what, lambda: self.client._rest_client.get(
            f"config/{_quote(subject)}", {"defaultToGlobal": "true"}))
        return str(body.get("compatibilityLevel"))

    def mode(self, subject: str | None = None) -> str:
        """The mode of a subject (or the global one)."""
        if subject is None:
            return str(self.call("the global mode", self.client.get_global_mode))
        body = self.call(f"mode of {subject}", lambda: self.client._rest_client.get(
            f"mode/{_quote(subject)}", {"defaultToGlobal": "true"}))
        return str(body.get("mode"))

    def check(self, subject: str, schema: StoredSchema,
              version: str | None = None) -> tuple[bool, list[str]]:
        """Whether the schema may be registered (against ``version``, or as the
        subject's level says), with the registry's reasons."""
        path = f"compatibility/subjects/{_quote(subject)}/versions"
        if version is not None:
            path += f"/{version}"
        body = self.call(f"checking against {subject}", lambda: self.client._rest_client.post(
            path + "?verbose=true", body=schema.to_dict()))
        return bool(body.get("is_compatible")), [str(m) for m in body.get("messages") or ()]

    # ------------------------------------------------------------------ writes

    def register(self, subject: str, schema: StoredSchema) -> int:
        """Register (or find) the schema under the subject; returns its id."""
        return int(self.call(f"registering under {subject}", lambda: self.client.register_schema(
            subject, schema.to_client())))

    def register_as(self, subject: str, schema: StoredSchema, schema_id: int,
                    version: int) -> int:
        """Register with a chosen id and version (the subject must be in IMPORT mode)."""
        body = {**schema.to_dict(), "id": schema_id, "version": version}
        answer = self.call(f"importing into {subject}", lambda: self.client._rest_client.post(
            f"subjects/{_quote(subject)}/versions", body=body))
        return int(answer["id"])

    def lookup(self, subject: str, schema: StoredSchema) -> int | None:
        """The id of this schema under the subject, or None when it is not there."""
        from confluent_kafka.schema_registry import SchemaRegistryError

        try:
            found = self.client.lookup_schema(subject, schema.to_client())
        except SchemaRegistryError as error:
            if error.http_status_code == 404:
                return None
            raise _translate(error, f"looking up {subject}", self.url) from None
        except Exception as error:
            raise _translate(error, f"looking up {subject}", self.url) from None
        return int(found.schema_id) if found.schema_id is not None else None

    def delete(self, subject: str, version: int | None, permanent: bool) -> list[int]:
        """Delete a subject or one version, softly or (``permanent``) for good."""
        if version is None:
            return list(self.call(f"deleting {subject}",
                                  lambda: self.client.delete_subject(subject, permanent)))
        return [int(self.call(f"deleting {subject} version {version}",
                              lambda: self.client.delete_version(subject, version, permanent)))]

    def set_level(self, subject: str | None, level: str) -> str:
        """Set the compatibility level of a subject (or the global one)."""
        answer = self.call("setting compatibility",
                           lambda: self.client.set_compatibility(subject, level.upper()))
        return str(answer.get("compatibility", level.upper()) if isinstance(answer, dict)
                   else level.upper())

    def set_mode(self, subject: str | None, mode: str) -> str:
        """Set the mode of a subject (or the global one)."""
        if subject is None:
            return str(self.call("setting the mode",
                                 lambda: self.client.update_global_mode(mode.upper())))
        return str(self.call(f"setting the mode of {subject}",
                             lambda: self.client.update_mode(subject, mode.upper())))


def _quote(subject: str) -> str:
    from urllib.parse import quote

    return quote(subject, safe="")
