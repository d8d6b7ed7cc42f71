"""`kcli txn`: transactions of a cluster, as `kafka-transactions.sh` (list, describe,
describe-producers, abort, find-hanging) and `rpk cluster txn` show and repair them."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from kcli.cli.common import connect, emit, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput
from kcli.output.model import Column, Result, Table, fields_table

app = typer.Typer(help="Transactions: list, describe, producers, abort, find-hanging.",
                  no_args_is_help=True, **help_settings())

STATES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
          "CompleteAbort", "Dead", "PrepareEpochFence")
TopicArg = Annotated[str, typer.Argument(metavar="TOPIC", help="Topic.", show_default=False)]


def _time(ms: int) -> str:
    if ms < 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def _duration(ms: int) -> str:
    seconds = ms // 1000
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@command(app, "list")
def list_(
    opts: Options,
    state: Annotated[list[str] | None, typer.Option(
        "--state", metavar="STATE",
        help=f"Only transactions in this state, repeatable ({', '.join(STATES[:6])}...).")
    ] = None,
    producer_id: Annotated[list[int] | None, typer.Option(
        "--producer-id", min=0, help="Only this producer id, repeatable.")] = None,
    longer_than: Annotated[int | None, typer.Option(
        "--longer-than", metavar="SECONDS", min=0,
        help="Only transactions open longer than this.")] = None,
) -> None:
    """Transactional ids on every coordinator, with their producer id and state."""
    from kcli.client.transactions import list_transactions

    for name in state or ():
        if name not in STATES:
            raise BadInput(f"--state: {name!r} is not one of {', '.join(STATES)}")
    listing = list_transactions(connect(opts), state or (), producer_id or (),
                                longer_than * 1000 if longer_than is not None else -1)
    for broker in listing.unreachable:
        say(opts, f"warning: broker {broker} did not answer: its transactions are missing")
    rows = [t.to_dict() for t in listing.transactions]
    emit(opts, Result(rows, (Table(
        (Column("transactional_id", "TRANSACTIONAL ID"), Column("producer_id", "PRODUCER", "int"),
         Column("state", "STATE"), Column("coordinator", "COORDINATOR", "int")),
        rows, empty="(no transactions)"),)))


@command(app, "describe")
def describe(
    opts: Options,
    transactional_id: Annotated[str, typer.Argument(
        metavar="ID", help="Transactional id.", show_default=False)],
) -> None:
    """A transactional id: state, producer, timeout, start time and partitions."""
    from kcli.client.transactions import describe_transaction

    txn = describe_transaction(connect(opts), transactional_id)
    partitions = ", ".join(f"{t}-{p}" for t, p in txn.partitions) or "-"
    emit(opts, Result(txn.to_dict(), (fields_table((
        ("transactional id", txn.transactional_id), ("state", txn.state),
        ("producer", f"{txn.producer_id} (epoch {txn.producer_epoch})"),
        ("coordinator", txn.coordinator), ("timeout", f"{txn.timeout_ms} ms"),
        ("started", _time(txn.start_ms)), ("partitions", partitions))),)))


@command(app, "producers")
def producers(
    opts: Options,
    topic: TopicArg,
    partition: Annotated[list[int] | None, typer.Option(
        "-P", "--partition", min=0, help="Only this partition, repeatable.")] = None,
) -> None:
    """Producers with state on a topic's partitions, and where their open transaction
    began."""
    from kcli.client.transactions import describe_producers

    states = describe_producers(connect(opts), topic, partition)
    rows = [{**s.to_dict(), "last": _time(s.last_timestamp),
             "open_at": s.txn_start_offset if s.txn_start_offset >= 0 else "-"}
            for s in states]
    emit(opts, Result([s.to_dict() for s in states], (Table(
        (Column("partition", "PARTITION", "int"), Column("producer_id", "PRODUCER", "int"),
         Column("producer_epoch", "EPOCH", "int"), Column("last_sequence", "LAST SEQ", "int"),
         Column("last", "LAST WRITE"), Column("coordinator_epoch", "COORD EPOCH", "int"),
         Column("open_at", "OPEN TXN AT")),
        rows, empty="(no producers)"),)))


@command(app, "abort")
def abort(
    opts: Options,
    topic: TopicArg,
    partition: Annotated[int, typer.Option("-P", "--partition", min=0,
                                           help="The partition.")] = 0,
    start_offset: Annotated[int | None, typer.Option(
        "--start-offset", min=0, metavar="OFFSET",
        help="The open transaction that began at this offset (see `txn producers`).")] = None,
    producer_id: Annotated[int | None, typer.Option(
        "--producer-id", min=0, help="The open transaction of this producer.")] = None,
) -> None:
    """Abort a hanging transaction on one partition (an ABORT marker; needs ClusterAction).

    For a transaction its coordinator lost: an abort by its producer is always
    better."""
    from kcli.client.transactions import abort_transaction

    if start_offset is None and producer_id is None:
        raise BadInput("which transaction? give --start-offset or --producer-id")
    state = abort_transaction(connect(opts), topic, partition, start_offset=start_offset,
                              producer_id=producer_id)
    report(opts, f"{topic}-{partition}: aborted the transaction of producer "
           f"{state.producer_id} (epoch {state.producer_epoch}) open since offset "
           f"{state.txn_start_offset}", state.to_dict())


@command(app, "find-hanging")
def find_hanging(
    opts: Options,
    topic: Annotated[list[str] | None, typer.Option(
        "-t", "--topic", metavar="TOPIC", help="Only this topic, repeatable [default: all].")
    ] = None,
    max_timeout: Annotated[float, typer.Option(
        "--max-transaction-timeout", metavar="MINUTES", min=0,
        help="Transactions open longer than this are suspects (the cluster's "
             "transaction.max.timeout.ms).")] = 15,
) -> None:
    """Open transactions that no coordinator will end: they hold back read_committed
    consumers until `kcli txn abort` ends them."""
    from kcli.client.transactions import find_hanging as find

    hanging = find(connect(opts), topic, int(max_timeout * 60_000))
    rows = [{**h.to_dict(), "open": _duration(h.open_ms),
             "transactional_id": h.transactional_id or "-"} for h in hanging]
    emit(opts, Result([h.to_dict() for h in hanging], (Table(
        (Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
         Column("producer_id", "PRODUCER", "int"), Column("txn_start_offset", "START", "int"),
         Column("open", "OPEN FOR"), Column("transactional_id", "TRANSACTIONAL ID"),
         Column("why", "WHY")),
        rows, empty="(no hanging transactions)"),)))
