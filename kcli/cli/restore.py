"""`kcli restore`: write an archive back into a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.backup import CliEvents
from kcli.cli.common import connect, emit, plural
from kcli.cli.options import say
from kcli.config import Options
from kcli.output.model import Column


def restore(
    opts: Options,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Archive directory.",
                                              show_default=False)],
    topic: Annotated[list[str] | None, typer.Option(
        "--topic", "-t", metavar="OLD[=NEW]",
        help="Restore only this topic, optionally under a new name; repeatable "
             "[default: every topic, same names].")] = None,
    groups: Annotated[bool, typer.Option(
        "--groups", help="Also commit each group's offsets, translated so consumers "
                         "resume at the same record (only into empty groups).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the plan (topics, records, group offsets); change "
                          "nothing.")] = False,
    repartition: Annotated[bool, typer.Option(
        "--repartition", help="Allow an existing topic with another partition count: "
                              "records go by key hash (murmur2, as Kafka's default "
                              "partitioner).")] = False,
    force_groups: Annotated[bool, typer.Option(
        "--force-groups", help="Let --groups move a committed offset backwards.")] = False,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL",
        help="The target's Schema Registry, for archives with schemas [default: "
             "$KCLI_REGISTRY, the profile's schema.registry.url, or the local "
             "cluster's].")] = None,
) -> None:
    """Restore an archive into a cluster.

    Restores topics (created with their saved configs and partition count),
    records (same partition, order, keys, values, headers, timestamps) and, with
    --groups, committed offsets. The archive gets verify's checks: its manifest's
    consistency and every file's sha256 before anything is written, each record as
    it is read. Rerunning continues an interrupted restore and never duplicates
    records.

    Schemas the archive carries are registered in the target's Schema Registry: with
    the same ids when it is in IMPORT mode, else under the target's ids, which the
    records' framing is rewritten to."""
    from kcli.backup.restore import RestoreRequest, run_restore
    from kcli.output import Result, Table

    request = RestoreRequest(root=directory, topics=tuple(topic or ()), groups=groups,
                             dry_run=dry_run, repartition=repartition,
                             force_groups=force_groups,
                             registry=opts.registry_config(registry))
    cluster = connect(opts)
    with CliEvents(opts) as events:
        result = run_restore(cluster, opts.client_config({"allow.auto.create.topics": False}),
                             request, events)
    topics = [t.to_dict() for t in result.topics]
    changes = [c.to_dict() for c in result.groups]
    data = {"archive": result.archive, "dry_run": result.dry_run, "topics": topics,
            "groups": changes, "seconds": round(result.seconds, 3),
            "schemas": result.schemas, "warnings": events.warnings}
    topic_table = Table(
        (Column("source", "TOPIC"), Column("target", "TARGET"), Column("action", "ACTION"),
         Column("records", "RECORDS", "int"), Column("to_copy", "TO COPY", "int"),
         Column("copied", "COPIED", "int"), Column("already_there", "FOUND", "int")),
        topics, title="Plan" if result.dry_run else "Topics", empty="(no topics)")
    tables = [topic_table]
    if request.groups:
        tables.append(Table(
            (Column("group", "GROUP"), Column("target_topic", "TOPIC"),
             Column("partition", "P", "int"), Column("source_offset", "FROM", "int"),
             Column("target_offset", "TO", "int"), Column("action", "ACTION"),
             Column("reason", "NOTE")),
            changes, title="Group offsets", empty="(no committed offsets in the archive)"))
    emit(opts, Result(data, tables))
    if result.dry_run:
        say(opts, "dry run: nothing changed")
    else:
        copied = sum(t.copied for t in result.topics)
        say(opts, f"restored {plural(copied, 'record')} in {result.seconds:.2f}s")
        if result.schemas:
            say(opts, result.schemas)
