"""Schemas by type: validation, the canonical text that decides "same schema", and
compatibility between versions.

Avro is parsed and checked with Apache Avro's own Python library (``avro``): its
``ReaderWriterCompatibilityChecker`` implements the specification's schema resolution
rules, the same checker Karapace uses, so kcli does not keep a second reading of the
rules. JSON Schema and Protobuf are stored and served; their compatibility is not
checked (every change is accepted), which `kcli schema compat` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import avro.errors
import avro.name
import avro.schema
import orjson
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from kcli.registry.errors import INVALID_SCHEMA, RegistryError
from kcli.registry.names import AVRO, PROTOBUF

_MAX_REFERENCE_DEPTH = 32


@dataclass(frozen=True)
class Reference:
    """A named schema this one uses, found under ``subject`` at ``version``."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, object]:
        """The REST form."""
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class Schema:
    """A schema as the registry keeps it: its type, canonical text and references."""

    schema_type: str
    text: str
    references: tuple[Reference, ...] = ()

    @cached_property
    def fingerprint(self) -> tuple[object, ...]:
        """Equal for schemas that are the same: JSON compared with sorted keys and no
        whitespace (as Karapace does), Protobuf by its text with whitespace collapsed."""
        if self.schema_type == PROTOBUF:
            body = " ".join(self.text.split())
        else:
            body = orjson.dumps(orjson.loads(self.text), option=orjson.OPT_SORT_KEYS).decode()
        return (self.schema_type, body, self.references)

    def to_json(self) -> dict[str, object]:
        """``schema``, then ``schemaType`` unless Avro and ``references`` if any, as
        Confluent answers."""
        doc: dict[str, object] = {"schema": self.text}
        if self.schema_type != AVRO:
            doc["schemaType"] = self.schema_type
        if self.references:
            doc["references"] = [r.to_json() for r in self.references]
        return doc


Resolver = Callable[[Reference], Schema]
"""Looks up a reference's schema; raises RegistryError when it does not exist."""


def invalid(message: str) -> RegistryError:
    """42201, Confluent's "Invalid schema"."""
    return RegistryError(INVALID_SCHEMA, f"Invalid schema {message}")


def parse_references(raw: object) -> tuple[Reference, ...]:
    """The ``references`` array of a request body."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid("references must be an array")
    refs = []
    for item in raw:
        if not isinstance(item, dict):
            raise invalid("each reference must be an object")
        name, subject, version = item.get("name"), item.get("subject"), item.get("version")
        if not isinstance(name, str) or not isinstance(subject, str) or not name or not subject:
            raise invalid("a reference needs a name and a subject")
        if not isinstance(version, int) or isinstance(version, bool):
            raise invalid(f"reference {name!r} needs an integer version")
        refs.append(Reference(name, subject, version))
    return tuple(refs)


def canonical(schema_type: str, text: str, references: tuple[Reference, ...],
              resolve: Resolver) -> Schema:
    """Validate a schema and return it in the form it is stored and compared in;
    raises 42201 for a schema that does not parse."""
    if schema_type == PROTOBUF:
        if not text.strip():
            raise invalid("the Protobuf schema is empty")
        return Schema(PROTOBUF, text.strip(), references)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise invalid(f"{text[:80]!r}: not JSON ({error})") from None
    schema = Schema(schema_type, orjson.dumps(document).decode(), references)
    if schema_type == AVRO:
        parse_avro(schema, resolve)
    elif not isinstance(document, dict | bool):
        raise invalid("a JSON Schema must be an object or a boolean")
    return schema


def parse_avro(schema: Schema, resolve: Resolver) -> avro.schema.Schema:
    """The parsed Avro schema, with the named types its references define."""
    names = avro.name.Names()
    _define_references(schema.references, resolve, names, 0)
    try:
        return avro.schema.make_avsc_object(orjson.loads(schema.text), names)
    except (avro.errors.AvroException, TypeError, ValueError, AttributeError,
            KeyError) as error:
        raise invalid(f"{schema.text[:80]!r}: {error}") from None


def _define_references(refs: Iterable[Reference], resolve: Resolver,
                       names: avro.name.Names, depth: int) -> None:
    if depth > _MAX_REFERENCE_DEPTH:
        raise invalid("references nest too deep (a cycle?)")
    for ref in refs:
        target = resolve(ref)
        if target.schema_type != AVRO:
            raise invalid(f"reference {ref.name!r} is {target.schema_type}, not Avro")
        _define_references(target.references, resolve, names, depth + 1)
        if names.has_name(ref.name, None):
            continue  # reached twice through different paths
        try:
            avro.schema.make_avsc_object(orjson.loads(target.text), names)
        except avro.errors.SchemaParseException as error:
            if "already in use" not in str(error):
                raise invalid(f"reference {ref.name!r}: {error}") from None


def _directions(level: str) -> tuple[bool, bool]:
    """(check that the new schema reads old data, check that old schemas read new)."""
    base = level.removesuffix("_TRANSITIVE")
    return base in ("BACKWARD", "FULL"), base in ("FORWARD", "FULL")


def incompatibilities(level: str, new: Schema, previous: list[tuple[int, Schema]],
                      resolve: Resolver) -> list[str]:
    """Why ``new`` may not follow ``previous`` (version, schema) pairs, newest first,
    under ``level``; empty when it may. Non-transitive levels look at the newest only."""
    if level == "NONE" or not previous:
        return []
    checked = previous if level.endswith("_TRANSITIVE") else previous[:1]
    backward, forward = _directions(level)
    messages: list[str] = []
    for version, old in checked:
        found = _pair(new, old, backward, forward, resolve)
        if found:
            messages += [*found, f"{{oldSchemaVersion: {version}}}",
                         f"{{oldSchema: '{old.text}'}}"]
    if messages:
        messages.append(f"{{compatibility: '{level}'}}")
    return messages


def _pair(new: Schema, old: Schema, backward: bool, forward: bool,
          resolve: Resolver) -> list[str]:
    if new.schema_type != old.schema_type:
        return [f"{{errorType:'TYPE_MISMATCH', description:'the new schema is "
                f"{new.schema_type} and the old one {old.schema_type}'}}"]
    if new.schema_type != AVRO:
        return []  # stored and served, not checked (see the module docstring)
    new_avro, old_avro = parse_avro(new, resolve), parse_avro(old, resolve)
    checker = ReaderWriterCompatibilityChecker()
    found = []
    if backward:
        found += _describe(checker.get_compatibility(new_avro, old_avro), "new", "old")
    if forward:
        found += _describe(checker.get_compatibility(old_avro, new_avro), "old", "new")
    return found


def _describe(result: object, reader: str, writer: str) -> list[str]:
    if getattr(result, "compatibility", None) == SchemaCompatibilityType.compatible:
        return []
    kinds = [kind.name.upper() for kind in getattr(result, "incompatibilities", [])]
    where = ", ".join(sorted(getattr(result, "locations", set()))) or "/"
    info = ", ".join(sorted(str(m) for m in getattr(result, "messages", set())))
    return [f"{{errorType:'{kind}', description:'the {reader} schema cannot read data "
            f"written with the {writer} schema at {where}', additionalInfo:'{info}'}}"
            for kind in kinds or ["INCOMPATIBLE"]]
