"""`kcli migrate`: copy topics from one cluster to another, once or following."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from kcli.cli.backup import CliEvents
from kcli.cli.common import emit, plural
from kcli.cli.options import say
from kcli.config import GlobalFlags, Options, ProfileStore, config_path, resolve
from kcli.errors import BadInput, ExitCode, NotFound
from kcli.output.model import Column


def endpoint(opts: Options, value: str, option: str) -> Options:
    """The Options of ``--from``/``--to``: a profile name, else a bootstrap address.
    The global -X properties apply to both ends; a profile's properties only to its
    own end."""
    value = value.strip()
    if not value:
        raise BadInput(f"{option} needs a profile name or HOST:PORT")
    store = ProfileStore.load(config_path())
    flags = GlobalFlags(overrides=opts.flags.overrides, output=opts.flags.output,
                        quiet=opts.quiet, debug=opts.debug, timeout=opts.flags.timeout)
    if value in store.profiles:
        return resolve(replace(flags, profile=value))
    if ":" not in value:
        raise NotFound(f"{option} {value}: no profile of that name, and not a HOST:PORT "
                       "address")
    return resolve(replace(flags, bootstrap=value), use_profiles=False)


def migrate(
    opts: Options,
    topics: Annotated[list[str] | None, typer.Argument(
        metavar="[TOPIC|GLOB]...", help="Topics to migrate (names or globs).",
        show_default=False)] = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="PROFILE|HOST:PORT", help="Target cluster.", show_default=False)] = None,
    source: Annotated[str | None, typer.Option(
        "--from", metavar="PROFILE|HOST:PORT",
        help="Source cluster [default: the one -b/-p name].", show_default=False)] = None,
    all_topics: Annotated[bool, typer.Option(
        "--all", help="Every topic of the source except internal ones.")] = False,
    rename: Annotated[list[str] | None, typer.Option(
        "--rename", metavar="OLD=NEW", help="Target name of a topic, repeatable.")] = None,
    groups: Annotated[bool, typer.Option(
        "--groups", help="Also translate the source groups' committed offsets (into "
                         "target groups with no active members).")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Keep mirroring new records until stopped (Ctrl-C stops "
                         "cleanly: checkpoint, then exit 0); lag is reported on "
                         "stderr.")] = False,
    force_groups: Annotated[bool, typer.Option(
        "--force-groups", help="Let --groups move a committed offset backwards.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the plan (topics, records to copy, group offsets assuming "
                          "no gaps in what is not copied yet); change nothing.")] = False,
    replication: Annotated[int | None, typer.Option(
        "-r", "--replication-factor", min=1,
        help="Replication factor of topics created on the target [default: the "
             "source's, capped at the target's broker count, with a warning].")] = None,
    registry_from: Annotated[str | None, typer.Option(
        "--registry-from", metavar="URL", help="The source cluster's Schema Registry.")
    ] = None,
    registry_to: Annotated[str | None, typer.Option(
        "--registry-to", metavar="URL", help="The target cluster's Schema Registry.")
    ] = None,
    exactly_once: Annotated[bool, typer.Option(
        "--exactly-once", help="Write in transactions on the target, each committing its "
                               "records with the checkpoint: read_committed consumers of the "
                               "target never see a record twice, even while a crashed run "
                               "is redone (the target must support transactions).")] = False,
) -> None:
    """Copy topics to another cluster, once or following.

    Copies configs, partition counts, records (same
    partition, order, keys, values, headers, timestamps) and, with --groups, committed
    offsets translated record for record. Progress is checkpointed in the target
    (topic __kcli_checkpoints): rerunning resumes without duplicates. Without --follow,
    Ctrl-C also stops cleanly after a checkpoint, and exits 130 (not finished).

    With --registry-from and --registry-to, the schemas of registry-framed records are
    registered in the target registry as they turn up: with the same ids when it is in
    IMPORT mode, else under its own ids, which the copied records are rewritten to."""
    from kcli.backup.migrate import MigrateRequest, run_migrate
    from kcli.client.cluster import Cluster
    from kcli.output import Result, Table

    if to is None:
        raise BadInput("give the target cluster with --to PROFILE|HOST:PORT")
    if all_topics and topics:
        raise BadInput("give topics or --all, not both")
    from kcli.backup.jobs import topic_renames

    renames = topic_renames(rename or (), "--rename", plain=False)
    source_opts = endpoint(opts, source, "--from") if source else opts
    target_opts = endpoint(opts, to, "--to")
    source_config = source_opts.client_config({"allow.auto.create.topics": False})
    target_config = target_opts.client_config({"allow.auto.create.topics": False})
    request = MigrateRequest(patterns=tuple(topics or ()), all_topics=all_topics,
                             renames=renames, groups=groups, follow=follow,
                             force_groups=force_groups, dry_run=dry_run,
                             replication=replication,
                             registry_from=_registry(opts, registry_from, "--registry-from"),
                             registry_to=_registry(opts, registry_to, "--registry-to"),
                             exactly_once=exactly_once)
    if (request.registry_from is None) != (request.registry_to is None):
        raise BadInput("give both --registry-from and --registry-to, or neither")
    with CliEvents(opts) as events:
        result = run_migrate(Cluster(source_config, source_opts.timeout), source_config,
                             Cluster(target_config, target_opts.timeout), target_config,
                             request, events)
    rows = [t.to_dict() for t in result.topics]
    changes = [c.to_dict() for c in result.groups]
    data = {"source": source_opts.bootstrap, "target": target_opts.bootstrap,
            "follow": follow, "dry_run": result.dry_run, "interrupted": result.interrupted,
            "topics": rows,
            "groups": changes, "seconds": round(result.seconds, 3),
            "schemas": result.schemas, "warnings": events.warnings}
    tables = [Table((Column("source", "TOPIC"), Column("target", "TARGET"),
                     Column("partitions", "PARTITIONS", "int"),
                     Column("to_copy", "TO COPY", "int"), Column("copied", "COPIED", "int"),
                     Column("already_there", "ALREADY THERE", "int"),
                     Column("total", "TOTAL", "int"), Column("lag", "LAG", "int")), rows,
                    empty="(no topics)")]
    if groups:
        tables.append(Table(
            (Column("group", "GROUP"), Column("target_topic", "TOPIC"),
             Column("partition", "PARTITION", "int"),
             Column("source_offset", "SOURCE", "int"), Column("target_offset", "TARGET", "int"),
             Column("action", "ACTION"), Column("reason", "NOTE")),
            changes, title="Group offsets", empty="(no committed offsets)"))
    emit(opts, Result(data, tables))
    if result.dry_run:
        say(opts, "dry run: nothing changed")
        return
    copied = sum(t.copied for t in result.topics)
    say(opts, f"migrated {plural(copied, 'record')} in {result.seconds:.2f}s")
    if result.schemas:
        say(opts, result.schemas)
    if result.interrupted and not follow:
        raise typer.Exit(ExitCode.INTERRUPTED)


def _registry(opts: Options, url: str | None, option: str) -> dict[str, Any] | None:
    """A registry's client settings: the URL, with the profile's schema.registry.*
    (auth, TLS)."""
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"{option} must be an http:// or https:// URL, not {url!r}")
    return opts.registry_config(url)
