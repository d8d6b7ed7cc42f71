"""`kcli group`: list, describe, lag, reset and delete consumer groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kcli.cli.common import connect, emit, plural, progress, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import KcliError
from kcli.output.model import Column, Result, Table, fields_table

if TYPE_CHECKING:
    from kcli.client.models import GroupDetail, GroupSummary, PartitionLag

app = typer.Typer(help="Consumer groups: state, members, lag, offset resets.",
                  no_args_is_help=True, **help_settings())

GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="Group id.", show_default=False)]


def _lag_columns(with_group: bool) -> tuple[Column, ...]:
    columns = [Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
               Column("committed", "COMMITTED", "int"), Column("end", "END", "int"),
               Column("lag", "LAG", "int"), Column("member", "MEMBER")]
    if with_group:
        columns.insert(0, Column("group", "GROUP"))
    return tuple(columns)


def list_result(groups: list[GroupSummary]) -> Result:
    """What `group list` prints."""
    rows = [g.to_dict() for g in groups]
    columns = (Column("group", "GROUP"), Column("state", "STATE"),
               Column("members", "MEMBERS", "int"), Column("lag", "LAG", "int"),
               Column("max_lag", "MAX LAG", "int"), Column("topics", "TOPICS", "list"))
    return Result(rows, (Table(columns, rows, empty="(no groups)"),))


def describe_result(detail: GroupDetail) -> Result:
    """What `group describe` prints."""
    from kcli.client.models import partition_list

    data = detail.to_dict()
    kind = {"consumer": "consumer (KIP-848: the coordinator assigns)",
            "classic": "classic"}.get(detail.group_protocol or "")
    header = fields_table([
        ("group", detail.group), ("state", detail.state), ("group protocol", kind),
        ("assignor" if detail.group_protocol == "consumer" else "protocol", detail.protocol),
        *([("group epoch", detail.group_epoch), ("assignment epoch", detail.assignment_epoch)]
          if detail.group_epoch is not None else []),
        ("coordinator", detail.coordinator), ("members", len(detail.members)),
        ("lag", detail.lag),
    ])
    columns = [Column("client_id", "CLIENT"), Column("host", "HOST"),
               Column("assignments", "PARTITIONS"), Column("member_id", "MEMBER ID")]
    if any(m.reconciling for m in detail.members):  # only while partitions are moving
        columns.insert(3, Column("target", "TARGET"))
    if any(m.member_epoch is not None for m in detail.members):
        columns.insert(2, Column("member_epoch", "EPOCH", "int"))
    members = Table(
        tuple(columns),
        [{"client_id": m.client_id, "host": m.host, "member_id": m.member_id,
          "assignments": partition_list(m.assignments),
          "target": partition_list(m.target or ()), "member_epoch": m.member_epoch}
         for m in detail.members],
        title="Members", empty="(no active members)")
    partitions = Table(_lag_columns(False), data["partitions"], title="Offsets",
                       empty="(no committed offsets)")
    return Result(data, (header, members, partitions))


def lag_result(rows: list[PartitionLag]) -> Result:
    """What `group lag` prints."""
    data = [r.to_dict() for r in rows]
    return Result(data, (Table(_lag_columns(True), data, empty="(no committed offsets)"),))


@command(app, "list")
def list_(opts: Options) -> None:
    """Groups with state, member count and lag."""
    from kcli.client.groups import list_groups

    emit(opts, list_result(list_groups(connect(opts))))


@command(app, "describe")
def describe(opts: Options, group: GroupArg) -> None:
    """Members, assignments and per-partition committed offset, end and lag."""
    from kcli.client.groups import describe_group

    emit(opts, describe_result(describe_group(connect(opts), group)))


@command(app, "lag")
def lag(
    opts: Options,
    group: Annotated[str | None, typer.Argument(
        metavar="[GROUP]", help="One group (default: every group).", show_default=False)] = None,
) -> None:
    """Per-partition lag (end - committed) of one group or of all of them."""
    from kcli.client.groups import group_lag

    emit(opts, lag_result(group_lag(connect(opts), group)))


@command(app, "reset")
def reset(
    opts: Options,
    group: GroupArg,
    to: Annotated[str, typer.Option(
        "--to", metavar="earliest|latest|OFFSET|TIME|shift:N",
        help="New position on every partition.", show_default=False)],
    topic: Annotated[list[str] | None, typer.Option(
        "-t", "--topic", metavar="TOPIC",
        help="Topic to reset, repeatable [default: every topic the group committed].")] = None,
    execute: Annotated[bool, typer.Option(
        "--execute", help="Apply the plan (default: only show it).")] = False,
) -> None:
    """Move a group's committed offsets. Shows the plan; --execute applies it, and refuses
    while the group has active members."""
    from kcli.client.groups import apply_reset, plan_reset
    from kcli.client.offsets import parse_position

    spec = parse_position(to, allow_shift=True, option="--to")
    cluster = connect(opts)
    _detail, changes = plan_reset(cluster, group, topic, spec)
    rows = [c.to_dict() for c in changes]
    columns = (Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
               Column("current", "CURRENT", "int"), Column("target", "NEW", "int"),
               Column("high", "END", "int"), Column("lag_after", "LAG AFTER", "int"))
    if execute:
        with progress(opts, len(changes) if len(changes) > 1000 else None,
                      f"resetting {group}", unit="partitions") as advance:
            apply_reset(cluster, group, changes)
            advance(len(changes))
    emit(opts, Result({"group": group, "executed": execute, "partitions": rows},
                      (Table(columns, rows, title="Plan" if not execute else "Applied"),)))
    if execute:
        say(opts, f"reset {plural(len(changes), 'partition')} of group {group}")
    else:
        say(opts, "dry run: nothing changed (add --execute to apply)")


@command(app, "delete")
def delete(
    opts: Options,
    groups: Annotated[list[str], typer.Argument(metavar="GROUP...", help="Groups to delete.",
                                                show_default=False)],
) -> None:
    """Delete groups and their committed offsets.

    The groups must have no active members."""
    from kcli.client.groups import delete_groups

    results = delete_groups(connect(opts), groups)
    failures: list[KcliError] = [e for e in results.values() if e is not None]
    deleted = [name for name, error in results.items() if error is None]
    report(opts, "\n".join(f"deleted group {name}" for name in deleted), {"deleted": deleted})
    if failures:
        raise failures[0]
