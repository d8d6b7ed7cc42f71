"""`kcli schema`: subjects and schemas in a Schema Registry (modelled on `rpk registry`),
and `schema serve`, the registry server itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kcli.cli.common import emit, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput, OperationFailed
from kcli.output.model import Column, Result, Table, fields_table
from kcli.registry.names import LEVELS, MODES, SCHEMA_TYPES

if TYPE_CHECKING:
    from kcli.client.schemas import RegistryClient, StoredSchema

app = typer.Typer(help="Schemas in a Schema Registry: list, get, register, delete, check "
                       "compatibility, set levels and modes.",
                  no_args_is_help=True, **help_settings())

SubjectArg = Annotated[str, typer.Argument(metavar="SUBJECT", help="Subject name.",
                                           show_default=False)]
RegistryOpt = Annotated[str | None, typer.Option(
    "--registry", metavar="URL",
    help="Schema Registry URL [default: $KCLI_REGISTRY, the profile's schema.registry.url, "
         "or the local cluster's].")]
SchemaFileOpt = Annotated[Path, typer.Option(
    "--schema", metavar="FILE", help="The schema (.avsc, JSON Schema or .proto).",
    show_default=False)]
TypeOpt = Annotated[str | None, typer.Option(
    "--type", metavar="AVRO|JSON|PROTOBUF",
    help="Schema type [default: from the file name: .json JSON, .proto PROTOBUF, else AVRO].")]
ReferenceOpt = Annotated[list[str] | None, typer.Option(
    "--reference", metavar="NAME=SUBJECT:VERSION",
    help="A schema this one uses, repeatable.")]
VersionOpt = Annotated[str | None, typer.Option(
    "--version", "-v", metavar="VERSION", help="A version number or latest.")]



def _registry(opts: Options, url: str | None) -> RegistryClient:
    from kcli.client.schemas import RegistryClient

    config = opts.registry_config(url)
    if config is None:
        raise BadInput("no schema registry: give --registry URL, set schema.registry.url in "
                       "the profile or $KCLI_REGISTRY, or start a local cluster")
    return RegistryClient(config)


def _version(text: str | None) -> str:
    if text is None or text == "latest":
        return "latest"
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"--version must be a version number or latest, not {text!r}")
    return text


def read_schema(path: Path, kind: str | None,
                references: list[str] | None) -> StoredSchema:
    """A schema file with its type and references; BadInput when unreadable."""
    from kcli.client.schemas import StoredSchema

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read schema {path}: {error}") from None
    if kind is None:
        kind = {".json": "JSON", ".proto": "PROTOBUF"}.get(path.suffix.lower(), "AVRO")
    if kind.upper() not in SCHEMA_TYPES:
        raise BadInput(f"--type: {kind!r} is not one of {', '.join(sorted(SCHEMA_TYPES))}")
    refs = []
    for item in references or ():
        name, _, target = item.partition("=")
        subject, _, version = target.rpartition(":")
        if not name or not subject or not version.isdigit():
            raise BadInput(f"--reference expects NAME=SUBJECT:VERSION, got {item!r}")
        refs.append((name, subject, int(version)))
    return StoredSchema(text, kind.upper(), tuple(refs))


@command(app, "list")
def list_(
    opts: Options,
    registry: RegistryOpt = None,
    deleted: Annotated[bool, typer.Option("--deleted",
                                          help="Include soft-deleted subjects.")] = False,
) -> None:
    """Subjects with their latest version, its id and type."""
    client = _registry(opts, registry)
    rows = []
    for subject in client.subjects(deleted):
        versions = client.versions(subject) if not deleted else []
        latest = client.version(subject) if versions or not deleted else None
        rows.append({"subject": subject, "versions": len(versions) if versions else None,
                     "latest": latest["version"] if latest else None,
                     "id": latest["id"] if latest else None,
                     "type": latest["type"] if latest else None})
    columns = (Column("subject", "SUBJECT"), Column("versions", "VERSIONS", "int"),
               Column("latest", "LATEST", "int"), Column("id", "ID", "int"),
               Column("type", "TYPE"))
    emit(opts, Result(rows, (Table(columns, rows, empty="(no subjects)"),)))


@command(app, "get")
def get(
    opts: Options,
    subject: Annotated[str | None, typer.Argument(
        metavar="[SUBJECT]", help="Subject name (or give --id).", show_default=False)] = None,
    version: VersionOpt = None,
    schema_id: Annotated[int | None, typer.Option(
        "--id", min=1, help="The schema with this id instead.")] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Print only the schema text (to save it to a file).")] = False,
    registry: RegistryOpt = None,
) -> None:
    """A schema by subject and version (default latest), or by id."""
    client = _registry(opts, registry)
    data: dict[str, Any]
    if (subject is None) == (schema_id is None):
        raise BadInput("give a SUBJECT or --id, not both")
    if schema_id is not None:
        if version is not None:
            raise BadInput("--version applies to a SUBJECT, not --id")
        stored = client.schema(schema_id)
        data = {"id": schema_id, "type": stored.schema_type, "schema": stored.text,
                "references": [{"name": n, "subject": s, "version": v}
                               for n, s, v in stored.references],
                "used_by": [{"subject": s, "version": v} for s, v in client.uses(schema_id)]}
    else:
        assert subject is not None
        data = client.version(subject, _version(version))
    if raw:
        sys.stdout.write(str(data["schema"]).rstrip("\n") + "\n")
        return
    pairs: list[tuple[str, Any]] = [(k, data[k]) for k in ("subject", "version", "id", "type")
                                    if k in data]
    pairs += [("references", ", ".join(f"{r['name']}={r['subject']}:{r['version']}"
                                       for r in data["references"]) or "(none)")]
    if "used_by" in data:
        pairs.append(("used by", ", ".join(f"{u['subject']} v{u['version']}"
                                           for u in data["used_by"]) or "(none)"))
    text = Table((Column("schema", "SCHEMA"),), [{"schema": _pretty(str(data["schema"]))}],
                 show_header=False)
    emit(opts, Result(data, (fields_table(pairs), text)))


def _pretty(text: str) -> str:
    import json

    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text  # Protobuf, or not JSON


@command(app, "register")
def register(
    opts: Options,
    subject: SubjectArg,
    schema: SchemaFileOpt,
    kind: TypeOpt = None,
    reference: ReferenceOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a schema under a subject (or find it there); prints its id.

    The subject's compatibility level decides whether a new version is accepted."""
    client = _registry(opts, registry)
    stored = read_schema(schema, kind, reference)
    schema_id = client.register(subject, stored)
    found = client.version(subject)
    version = found["version"] if found["id"] == schema_id else None
    report(opts, f"{subject}: schema id {schema_id}" + (f", version {version}" if version else ""),
           {"subject": subject, "id": schema_id, "version": version})
    if not (opts.output_explicit and opts.output in ("json", "jsonl")):
        print(schema_id)


@command(app, "delete")
def delete(
    opts: Options,
    subject: SubjectArg,
    version: VersionOpt = None,
    permanent: Annotated[bool, typer.Option(
        "--permanent", help="Delete for good (a soft delete must come first).")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Delete a subject, or one version of it: softly (hidden, ids kept), or with
    --permanent after a soft delete."""
    client = _registry(opts, registry)
    number = None
    if version is not None:
        chosen = _version(version)
        number = client.version(subject, chosen)["version"] if chosen == "latest" \
            else int(chosen)
    gone = client.delete(subject, number, permanent)
    how = "permanently deleted" if permanent else "soft-deleted"
    what = f"version {number} of {subject}" if number is not None else \
        f"{subject} (versions {', '.join(map(str, gone))})"
    report(opts, f"{how} {what}", {"subject": subject, "versions": gone,
                                   "permanent": permanent})


@command(app, "compat")
def compat(
    opts: Options,
    subject: SubjectArg,
    schema: SchemaFileOpt,
    version: VersionOpt = None,
    kind: TypeOpt = None,
    reference: ReferenceOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Check whether a schema may be registered under a subject.

    Against --version, or as the subject's level says (the latest version, or all for
    *_TRANSITIVE). Exits 0 when compatible and 1 when not, with the registry's reasons."""
    client = _registry(opts, registry)
    stored = read_schema(schema, kind, reference)
    level = client.level(subject)
    ok, messages = client.check(subject, stored,
                                _version(version) if version is not None else None)
    data = {"subject": subject, "compatible": ok, "level": level, "messages": messages}
    if stored.schema_type != "AVRO":
        data["note"] = f"{stored.schema_type} compatibility is not checked by every registry"
    rows = [{"message": m} for m in messages]
    emit(opts, Result(data, (fields_table([("subject", subject), ("level", level),
                                          ("compatible", "yes" if ok else "no")]),
                             Table((Column("message", "WHY"),), rows, empty="",
                                   show_header=False))))
    if not ok:
        raise typer.Exit(1)


@command(app, "config")
def config(
    opts: Options,
    subject: Annotated[str | None, typer.Argument(
        metavar="[SUBJECT]", help="Subject [default: the global level].",
        show_default=False)] = None,
    set_level: Annotated[str | None, typer.Option(
        "--set", metavar="LEVEL",
        help="NONE, BACKWARD, FORWARD, FULL, or one of them _TRANSITIVE.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Show or set a compatibility level (a subject's, or the global one)."""
    client = _registry(opts, registry)
    if set_level is not None:
        if set_level.upper() not in LEVELS:
            raise BadInput(f"--set: {set_level!r} is not one of {', '.join(LEVELS)}")
        level = client.set_level(subject, set_level)
        report(opts, f"compatibility of {subject or 'the registry'}: {level}",
               {"subject": subject, "compatibility": level})
        return
    level = client.level(subject)
    emit(opts, Result({"subject": subject, "compatibility": level},
                      (fields_table([("subject", subject or "(global)"),
                                     ("compatibility", level)]),)))


@command(app, "mode")
def mode(
    opts: Options,
    subject: Annotated[str | None, typer.Argument(
        metavar="[SUBJECT]", help="Subject [default: the global mode].",
        show_default=False)] = None,
    set_mode: Annotated[str | None, typer.Option(
        "--set", metavar="MODE", help="READWRITE, READONLY or IMPORT.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Show or set a mode: READWRITE, READONLY, or IMPORT (schemas keep given ids)."""
    client = _registry(opts, registry)
    if set_mode is not None:
        if set_mode.upper() not in MODES:
            raise BadInput(f"--set: {set_mode!r} is not one of {', '.join(MODES)}")
        chosen = client.set_mode(subject, set_mode)
        report(opts, f"mode of {subject or 'the registry'}: {chosen}",
               {"subject": subject, "mode": chosen})
        return
    current = client.mode(subject)
    emit(opts, Result({"subject": subject, "mode": current},
                      (fields_table([("subject", subject or "(global)"), ("mode", current)]),)))


@command(app, "serve")
def serve(
    opts: Options,
    listen: Annotated[str, typer.Option(
        "--listen", metavar="HOST:PORT", help="Where to serve the REST API.")
    ] = "127.0.0.1:8081",
) -> None:
    """Run a Schema Registry against the cluster, in the foreground.

    Its state is the cluster's `_schemas` topic (created compacted if missing), the
    same records Confluent's registry and Karapace keep, so it can take over from
    them. Stops on SIGINT or SIGTERM."""
    import asyncio

    from kcli.cli.broker import parse_host_port
    from kcli.registry.http import log_to_stderr
    from kcli.registry.http import serve as run_server
    from kcli.registry.store import StoreError

    host, port = parse_host_port(listen, "--listen")
    log_to_stderr()
    config = opts.client_config()
    try:
        asyncio.run(run_server(config, host, port,
                               lambda url: say(opts, f"schema registry serving {url}")))
    except StoreError as error:
        raise OperationFailed(str(error)) from None
    except OSError as error:
        raise OperationFailed(f"cannot listen on {listen}: {error.strerror or error}") from None
