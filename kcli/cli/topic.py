"""`kcli topic`: list, describe, create, delete, alter, add-partitions, delete-records."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kcli.cli.common import connect, emit, key_values, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput, KcliError
from kcli.output.model import Column, Result, Table, fields_table

if TYPE_CHECKING:
    from kcli.client.models import TopicDetail, TopicSummary

app = typer.Typer(help="List, describe, create, change and delete topics.",
                  no_args_is_help=True, **help_settings())

TopicArg = Annotated[str, typer.Argument(metavar="TOPIC", help="Topic name.", show_default=False)]
ConfigOpt = Annotated[list[str] | None, typer.Option(
    "-c", "--config", metavar="KEY=VALUE", help="Topic config, repeatable.")]


def list_result(topics: list[TopicSummary]) -> Result:
    """What `topic list` prints."""
    rows = [t.to_dict() for t in topics]
    columns = (Column("name", "NAME"), Column("partitions", "PARTITIONS", "int"),
               Column("replication", "REPLICATION", "int"), Column("records", "RECORDS", "int"),
               Column("size", "SIZE", "bytes"))
    return Result(rows, (Table(columns, rows, empty="(no topics)"),))


def describe_result(detail: TopicDetail, all_configs: bool = False) -> Result:
    """What `topic describe` prints."""
    data = detail.to_dict()
    header = fields_table([
        ("topic", detail.name), ("partitions", len(detail.partitions)),
        ("replication", detail.replication), ("records", detail.records),
    ])
    partitions = Table(
        (Column("partition", "PARTITION", "int"), Column("leader", "LEADER", "int"),
         Column("replicas", "REPLICAS", "list"), Column("isr", "ISR", "list"),
         Column("low", "LOW", "int"), Column("high", "HIGH", "int"),
         Column("records", "RECORDS", "int")),
        data["partitions"], title="Partitions")
    configs = Table(
        (Column("name", "NAME"), Column("value", "VALUE"), Column("source", "SOURCE")),
        [c.to_dict() | ({"value": "****"} if c.sensitive else {}) for c in detail.configs],
        title="Configs" if all_configs else "Configs (non-default)", empty="(none)")
    return Result(data, (header, partitions, configs))


@command(app, "list")
def list_(
    opts: Options,
    internal: Annotated[bool, typer.Option("--internal", help="Include internal topics.")] = False,
) -> None:
    """Topics with partitions, replication, record count and size."""
    from kcli.client.topics import list_topics

    emit(opts, list_result(list_topics(connect(opts), include_internal=internal)))


@command(app, "describe")
def describe(
    opts: Options,
    topic: TopicArg,
    all_configs: Annotated[bool, typer.Option(
        "--all-configs", help="Show every config, not only the non-default ones.")] = False,
) -> None:
    """Partitions (leaders, replicas, ISR, offsets) and configs."""
    from kcli.client.topics import describe_topic

    detail = describe_topic(connect(opts), topic, all_configs=all_configs)
    emit(opts, describe_result(detail, all_configs))


@command(app, "create")
def create(
    opts: Options,
    topic: TopicArg,
    partitions: Annotated[int | None, typer.Option(
        "-P", "--partitions", min=1, help="Partition count [default: the broker's].")] = None,
    replication: Annotated[int | None, typer.Option(
        "-r", "--replication-factor", min=1,
        help="Replicas per partition [default: the broker's].")] = None,
    config: ConfigOpt = None,
    if_not_exists: Annotated[bool, typer.Option(
        "--if-not-exists", help="Succeed quietly if the topic exists.")] = False,
) -> None:
    """Create a topic."""
    from kcli.client.topics import create_topic, topic_layout

    configs = key_values(config, "-c")
    cluster = connect(opts)
    created = create_topic(cluster, topic, partitions, replication, configs,
                           if_not_exists=if_not_exists)
    if opts.output_explicit and opts.output in ("json", "jsonl"):
        # the JSON gives the counts the topic has, the broker's where defaults were asked
        partitions, replication = topic_layout(cluster, topic) or (partitions, replication)
    report(opts, f"created topic {topic}" if created else f"topic {topic} already exists",
           {"topic": topic, "created": created, "partitions": partitions,
            "replication_factor": replication, "configs": configs})


@command(app, "delete")
def delete(
    opts: Options,
    topics: Annotated[list[str], typer.Argument(
        metavar="TOPIC_OR_GLOB...", help="Names or glob patterns (quote them: 'logs-*').",
        show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete topics (asks first unless --yes)."""
    from kcli.client.topics import delete_topics, resolve_patterns

    cluster = connect(opts)
    names = resolve_patterns(cluster, topics)
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("refusing to delete without confirmation: stdin is not a "
                           "terminal (pass --yes)")
        listing = ", ".join(names) if len(names) <= 10 else ", ".join(names[:10]) + ", ..."
        noun = "topic" if len(names) == 1 else f"{len(names)} topics"
        if not typer.confirm(f"Delete {noun}: {listing}?", default=False, err=True):
            say(opts, "nothing deleted")
            raise typer.Exit(1)
    results = delete_topics(cluster, names)
    failures: list[KcliError] = [e for e in results.values() if e is not None]
    deleted = [name for name, error in results.items() if error is None]
    report(opts, "\n".join(f"deleted topic {name}" for name in deleted),
           {"deleted": deleted})
    if failures:
        raise failures[0]


@command(app, "alter")
def alter(
    opts: Options,
    topic: TopicArg,
    config: ConfigOpt = None,
    delete: Annotated[list[str] | None, typer.Option(
        "--delete", metavar="KEY", help="Config to revert to its default, repeatable.")] = None,
) -> None:
    """Change topic configs; the ones not named stay as they are."""
    from kcli.client.topics import alter_configs

    changes = key_values(config, "-c")
    alter_configs(connect(opts), topic, changes, delete or ())
    parts = [f"{k}={v}" for k, v in changes.items()] + [f"-{k}" for k in delete or ()]
    report(opts, f"altered topic {topic}: {', '.join(parts)}",
           {"topic": topic, "set": changes, "reverted": list(delete or ())})


@command(app, "add-partitions")
def add_partitions(
    opts: Options,
    topic: TopicArg,
    count: Annotated[int, typer.Argument(metavar="N", help="How many partitions to add.",
                                         show_default=False)],
) -> None:
    """Add N partitions to a topic."""
    from kcli.client.topics import add_partitions as add

    before, after = add(connect(opts), topic, count)
    report(opts, f"topic {topic}: {before} -> {after} partitions",
           {"topic": topic, "before": before, "after": after})


@command(app, "delete-records")
def delete_records(
    opts: Options,
    topic: TopicArg,
    before: Annotated[str, typer.Option(
        "--before", metavar="OFFSET|TIME|end",
        help="Delete records below this offset (every partition), or older than this "
             "ISO-8601 time; 'end' deletes all.", show_default=False)],
    partition: Annotated[list[int] | None, typer.Option(
        "-P", "--partition", min=0, help="Only this partition, repeatable.")] = None,
) -> None:
    """Delete the oldest records of a topic."""
    from kcli.client.offsets import parse_position
    from kcli.client.topics import delete_records as run

    spec = parse_position(before, option="--before")
    if spec.kind not in ("offset", "time", "end"):
        raise BadInput(f"--before: bad offset {before!r} (use OFFSET, TIME or end)")
    done = run(connect(opts), topic, spec, partition)
    rows = [d.to_dict() for d in done]
    columns = (Column("partition", "PARTITION", "int"), Column("low", "LOW", "int"))
    emit(opts, Result(rows, (Table(columns, rows),)))
