"""`kcli partition`: move replicas between brokers, change replication, elect leaders."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kcli.cli.common import connect, emit, progress, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput, KcliError

if TYPE_CHECKING:
    from kcli.client.cluster import Cluster
    from kcli.client.partitions import Move

app = typer.Typer(help="Move partitions between brokers and elect their leaders.\n\n"
                       "Works on any Kafka cluster: kafka-reassign-partitions.sh and "
                       "kafka-leader-election.sh in one place.",
                  no_args_is_help=True, **help_settings())

TopicArg = Annotated[str, typer.Argument(metavar="TOPIC", help="Topic.", show_default=False)]
PartitionsOpt = Annotated[list[int] | None, typer.Option(
    "-P", "--partition", min=0, help="Only this partition, repeatable [default: all].")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
WAIT_POLL = 0.5


def parse_brokers(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]; BadInput otherwise."""
    try:
        brokers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"--to expects broker ids like 1,2,3, not {text!r}") from None
    if not brokers:
        raise BadInput("--to needs at least one broker id")
    return brokers


def _moves_table(rows: list[dict[str, Any]], title: str) -> Any:
    from kcli.output import Column, Table

    return Table((Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
                  Column("current", "CURRENT"), Column("target", "TARGET"),
                  Column("status", "STATUS")), rows, title=title, empty="(nothing to move)")


def _ids(brokers: tuple[int, ...] | list[int]) -> str:
    return ",".join(map(str, brokers))


@command(app, "move")
def move(
    opts: Options,
    topic: TopicArg,
    partitions: PartitionsOpt = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="BROKERS", help="The new replicas, e.g. 2,3,1 (the first one is "
                                        "the preferred leader).")] = None,
    replication: Annotated[int | None, typer.Option(
        "-r", "--replication-factor", min=1,
        help="Grow or shrink to this many replicas (new ones on the least loaded "
             "brokers).")] = None,
    dry_run: DryRunOpt = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until every move is done, with a progress bar.")] = False,
) -> None:
    """Move a topic's partitions to other brokers, or change its replication factor.

    New replicas copy the data from the leader and join the in-sync set before the old
    ones are removed, so producers and consumers carry on during the move."""
    from kcli.client.partitions import plan_moves, start_moves

    if (to is None) == (replication is None):
        raise BadInput("give the new replicas with --to 1,2,3 or a --replication-factor")
    cluster = connect(opts)
    moves = plan_moves(cluster, topic, partitions, parse_brokers(to) if to else None,
                       replication)
    rows = [{"topic": m.topic, "partition": m.partition, "current": _ids(m.current),
             "target": _ids(m.target), "status": "planned"} for m in moves]
    if dry_run or not moves:
        emit(opts, _result(rows, "Plan (dry run)" if dry_run else "Plan"))
        say(opts, "dry run: nothing changed" if dry_run else "nothing to move")
        return
    answers = start_moves(cluster, moves)
    failures = [error for error in answers.values() if error is not None]
    for move_, row in zip(moves, rows, strict=True):
        error = answers.get((move_.topic, move_.partition))
        row["status"] = "started" if error is None else f"refused: {error.message}"
    if wait and not failures:
        _wait(opts, cluster, [m for m in moves if answers.get((m.topic, m.partition)) is None])
        for row in rows:
            row["status"] = "done"
    emit(opts, _result(rows, "Moves"))
    if failures:
        raise failures[0]
    say(opts, f"{'moved' if wait else 'moving'} {len(moves)} partition(s) of {topic}"
        + ("" if wait else "; `kcli partition reassignments --watch` follows them"))


def _result(rows: list[dict[str, Any]], title: str) -> Any:
    from kcli.output import Result

    return Result({"moves": rows}, (_moves_table(rows, title),))


def _wait(opts: Options, cluster: Cluster, moves: list[Move]) -> None:
    """Poll until none of ``moves`` is in progress any more."""
    from kcli.client.partitions import moves_in_progress

    ours = {(m.topic, m.partition) for m in moves}
    with progress(opts, len(ours), "moving", unit="partitions") as advance:
        done = 0
        while True:
            running = {(m.topic, m.partition) for m in moves_in_progress(cluster)} & ours
            finished = len(ours) - len(running)
            advance(finished - done)
            done = finished
            if not running:
                return
            time.sleep(WAIT_POLL)


@command(app, "reassignments")
def reassignments(
    opts: Options,
    topic: Annotated[str | None, typer.Argument(
        metavar="[TOPIC]", help="Only this topic [default: all].", show_default=False)] = None,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Keep showing them until every move is done.")] = False,
    cancel: Annotated[bool, typer.Option(
        "--cancel", help="Cancel the moves shown: the old replicas stay.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Moves in progress: target replicas, which are in sync, and progress."""
    from kcli.client.partitions import moves_in_progress, start_moves

    cluster = connect(opts)
    moves = moves_in_progress(cluster, topic)
    if cancel and moves and not dry_run:
        answers = start_moves(cluster, [(m.topic, m.partition, None) for m in moves])
        failures = [e for e in answers.values() if e is not None]
        if failures:
            raise failures[0]
        report(opts, f"cancelled {len(moves)} move(s)", {"cancelled": [
            {"topic": m.topic, "partition": m.partition} for m in moves]})
        return
    if watch and moves:
        _wait(opts, cluster, moves)
        moves = moves_in_progress(cluster, topic)
    _show_progress(opts, moves)
    if cancel and dry_run:
        say(opts, f"dry run: {len(moves)} move(s) would be cancelled")


def _show_progress(opts: Options, moves: list[Move]) -> None:
    from kcli.output import Column, Result, Table

    rows = [{**m.to_dict(), "current": _ids(m.current), "target": _ids(m.target),
             "adding": _ids(m.adding), "removing": _ids(m.removing),
             "in_sync": _ids(m.in_sync), "done": f"{m.progress:.0%}"} for m in moves]
    emit(opts, Result({"reassignments": rows}, (Table(
        (Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
         Column("current", "FROM"), Column("target", "TO"), Column("adding", "ADDING"),
         Column("removing", "REMOVING"), Column("in_sync", "IN SYNC"),
         Column("done", "DONE")), rows, empty="(no moves in progress)"),)))


@command(app, "elect")
def elect(
    opts: Options,
    topic: Annotated[str | None, typer.Argument(
        metavar="[TOPIC]", help="Only this topic [default: every topic].",
        show_default=False)] = None,
    partitions: PartitionsOpt = None,
    unclean: Annotated[bool, typer.Option(
        "--unclean", help="Elect any live replica of a partition with no leader (may "
                          "lose records the old leader had).")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Give partitions back to their preferred leaders (the first replica), or elect
    unclean leaders for partitions that have none."""
    from kcli.client.partitions import elect as run_election
    from kcli.client.partitions import plan_elections
    from kcli.output import Column, Result, Table

    if partitions and topic is None:
        raise BadInput("-P needs a TOPIC")
    cluster = connect(opts)
    planned = plan_elections(cluster, topic, partitions, unclean)
    errors: dict[tuple[str, int], KcliError | None] = {}
    if not dry_run:
        errors = run_election(cluster, [e for e in planned if "not in sync" not in e.result],
                              unclean)
    rows = []
    for e in planned:
        error = errors.get((e.topic, e.partition))
        status = e.result if dry_run or "not in sync" in e.result else (
            "elected" if error is None else f"refused: {error.message}")
        rows.append({**e.to_dict(), "result": status})
    emit(opts, Result({"elections": rows, "dry_run": dry_run}, (Table(
        (Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
         Column("leader", "LEADER", "int"), Column("preferred", "PREFERRED", "int"),
         Column("result", "RESULT")), rows, empty="(every leader is where it should be)"),)))
    failures = [error for error in errors.values() if error is not None]
    if failures:
        raise failures[0]
    if dry_run:
        say(opts, "dry run: nothing changed")
