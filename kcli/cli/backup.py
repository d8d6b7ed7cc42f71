"""`kcli backup`: back topics up into an archive directory; `verify` and `ls` it.

``kcli backup T.. --to DIR`` is the ``run`` subcommand (the default when the first
argument is not ``verify``, ``ls`` or ``run``; a topic named like a subcommand needs
``kcli backup run NAME --to DIR``).
"""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from kcli.cli.common import Advance, connect, emit, progress
from kcli.cli.help import KcliGroup
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput


class DefaultRunGroup(KcliGroup):
    """A command group whose ``run`` subcommand is implied: ``kcli backup T --to D``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Insert ``run`` unless the first argument that is not an option names a
        subcommand (options before it move after it: ``kcli backup -q ls DIR``), or
        the arguments ask for help."""
        if args and args[0] not in ctx.help_option_names:
            first = self._first_word(args)
            if first is None or args[first] not in self.commands:
                args = ["run", *args]
            elif first:
                args = [args[first], *args[:first], *args[first + 1:]]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As parse_args does for a run: a word naming no subcommand starts ``run``'s
        arguments (shell completion resolves commands without parse_args)."""
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """Subcommands, and the topics ``run`` takes in the same place."""
        from kcli.cli.completion import dynamic

        items: list[Any] = super().shell_complete(ctx, incomplete)
        if not incomplete.startswith("-"):
            topics = next(p for p in self.commands["run"].params
                          if p.param_type_name == "argument")
            items += dynamic(ctx, topics, incomplete) or []
        return items

    def _first_word(self, args: list[str]) -> int | None:
        """Index of the first argument that is neither an option nor an option's value
        (the options are ``run``'s, which include the global ones)."""
        takes_value = {name for param in self.commands["run"].params
                       if param.param_type_name == "option"
                       and not getattr(param, "is_flag", False) for name in param.opts}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                return i + 1 if i + 1 < len(args) else None
            if not arg.startswith("-") or arg == "-":
                return i
            i += 2 if arg in takes_value else 1
        return None


app = typer.Typer(
    cls=DefaultRunGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Back up topics to an archive; verify and list archives.\n\n"
         "`kcli backup T... --to DIR` backs up (run is implied); `verify` checks an "
         "archive and `ls` lists what it holds.")

DirArg = Annotated[Path, typer.Argument(metavar="DIR", help="Archive directory.",
                                        show_default=False)]

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str, option: str) -> int:
    """'64MB', '1GiB', '65536' -> bytes (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise BadInput(f"{option}: expected a size like 64MB, not {text!r}")
    value = int(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")
    if value < 1024:
        raise BadInput(f"{option} must be at least 1KB")
    return value


class CliEvents:
    """Engine events on stderr: warnings always, notes and a progress bar unless -q."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.stack = ExitStack()
        self._advance: Advance | None = None
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        """'kcli: warning: ...' on stderr."""
        self.warnings.append(message)
        print(f"kcli: warning: {message}", file=sys.stderr)

    def info(self, message: str) -> None:
        """A note on stderr unless -q."""
        say(self.opts, message)

    def start(self, description: str, total: int | None) -> None:
        """A progress bar (on a terminal) for the new phase."""
        self.stack.close()
        self._advance = self.stack.enter_context(progress(self.opts, total, description))

    def advance(self, records: int) -> None:
        """Move the bar."""
        if self._advance is not None:
            self._advance(records)

    def __enter__(self) -> CliEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


CODEC_HELP = "Avro codec of the segments: zstd (default), snappy, deflate or null."


def avro_codec(name: str) -> str:
    """Command-line codec name -> Avro codec name."""
    from kcli.backup.records import CODECS

    try:
        return CODECS[name.lower()]
    except KeyError:
        raise BadInput(f"--codec: {name!r} is not one of {', '.join(CODECS)}") from None


def cli_codec(avro_name: str) -> str:
    """Avro codec name -> the name --codec takes (zstandard -> zstd), for display."""
    from kcli.backup.records import CODECS

    return next((cli for cli, avro in CODECS.items() if avro == avro_name), avro_name)


@command(app, "run")
def run(
    opts: Options,
    topics: Annotated[list[str] | None, typer.Argument(
        metavar="[TOPIC|GLOB]...", help="Topics to back up (names or globs like 'logs-*').",
        show_default=False)] = None,
    to: Annotated[Path | None, typer.Option(
        "--to", metavar="DIR", help="Archive directory (created if missing).",
        show_default=False)] = None,
    all_topics: Annotated[bool, typer.Option(
        "--all", help="Every topic except internal ones.")] = False,
    codec: Annotated[str, typer.Option("--codec", metavar="zstd|snappy|deflate|null",
                                       help=CODEC_HELP)] = "zstd",
    level: Annotated[int | None, typer.Option(
        "--level", min=-7, max=22, help="Compression level (zstd 1, deflate 6 by default).",
        show_default=False)] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="TIME",
        help="Point in time (ISO-8601): stop each partition before its first record at "
             "or after TIME (default: the end seen at the start).")] = None,
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Continue an existing archive from where its last run "
                              "stopped (new segments; the manifest is replaced "
                              "atomically).")] = False,
    segment_size: Annotated[str, typer.Option(
        "--segment-size", metavar="SIZE",
        help="Start a new segment file after this much uncompressed data.")] = "64MB",
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL",
        help="The cluster's Schema Registry [default: $KCLI_REGISTRY, the profile's "
             "schema.registry.url, or the local cluster's]; 'none': carry no schemas.")
    ] = None,
) -> None:
    """Back up topics into DIR.

    A consistent cut at the end of every partition as seen at the start (or --until),
    with configs, partition counts and every group's committed offsets. Rerun the same
    command after an interruption to resume it.

    With a Schema Registry, the archive also carries every schema its records are
    framed with (cluster/schemas.json, with subjects and versions), so a restore can
    register them wherever it goes."""
    from kcli.backup.backup import BackupRequest, run_backup
    from kcli.formats.times import parse_time_ms
    from kcli.output import Column, Result, Table
    from kcli.output.model import fields_table

    if to is None:
        raise BadInput("give the archive directory with --to DIR")
    if all_topics and topics:
        raise BadInput("give topics or --all, not both")
    until_ms = None
    if until is not None:
        try:
            until_ms = parse_time_ms(until)
        except ValueError:
            raise BadInput(f"--until: not an ISO-8601 time: {until!r}") from None
    request = BackupRequest(
        root=to, patterns=tuple(topics or ()), all_topics=all_topics, codec=avro_codec(codec),
        level=level, until_ms=until_ms, incremental=incremental,
        segment_bytes=parse_size(segment_size, "--segment-size"),
        registry=opts.registry_config(registry))
    cluster = connect(opts)
    with CliEvents(opts) as events:
        result = run_backup(cluster, request, events,
                            opts.client_config({"allow.auto.create.topics": False}))
    rate = result.raw_bytes / 1e6 / result.seconds if result.seconds > 0 else 0.0
    data = {"archive": str(to), "run": result.run, "resumed": result.resumed,
            "topics": result.topics, "records": result.records, "bytes": result.bytes,
            "raw_bytes": result.raw_bytes, "seconds": round(result.seconds, 3),
            "mb_per_second": round(rate, 2), "warnings": events.warnings}
    rows = []
    for topic in result.manifest.topics:
        if topic.name in result.topics:
            rows.append({"topic": topic.name, "partitions": len(topic.partitions),
                         "records": topic.record_count,
                         "gaps": sum(len(p.gaps) for p in topic.partitions),
                         "bytes": sum(s.bytes for p in topic.partitions for s in p.segments)})
    table = Table((Column("topic", "TOPIC"), Column("partitions", "PARTITIONS", "int"),
                   Column("records", "RECORDS (TOTAL)", "int"), Column("gaps", "GAPS", "int"),
                   Column("bytes", "SIZE", "bytes")), rows)
    header = fields_table([("archive", str(to)), ("run", result.run),
                           ("records written", result.records),
                           ("bytes written", result.bytes),
                           ("uncompressed", result.raw_bytes),
                           ("seconds", round(result.seconds, 2))])
    emit(opts, Result(data, (header, table)))


@command(app, "verify")
def verify(opts: Options, directory: DirArg) -> None:
    """Check every file of an archive against its manifest.

    Re-reads sha256, Avro framing, offsets, counts, timestamps and gaps. Exits 1
    naming the first bad file."""
    from kcli.backup.archive import Archive
    from kcli.output import Result
    from kcli.output.model import fields_table

    archive = Archive.open(directory)
    report = archive.verify()
    for warning in report.warnings:
        print(f"kcli: warning: {warning}", file=sys.stderr)
    data = {"archive": str(directory), "ok": True, "files": report.files,
            "segments": report.segments, "records": report.records, "bytes": report.bytes,
            "warnings": report.warnings}
    emit(opts, Result(data, (fields_table([
        ("archive", str(directory)), ("result", "ok"), ("files", report.files),
        ("records", report.records), ("bytes", report.bytes)]),)))


@command(app, "ls")
def ls(opts: Options, directory: DirArg) -> None:
    """What an archive holds: topics, offsets, gaps, runs, groups."""
    from kcli.backup.archive import Archive
    from kcli.output import Column, Result, Table
    from kcli.output.model import fields_table

    summary = Archive.open(directory).summary()
    summary["codec"] = cli_codec(str(summary["codec"]))
    header = fields_table([(k, summary[k]) for k in (
        "archive", "archive_id", "cluster_id", "runs", "codec", "records", "bytes", "groups")])
    rows: list[dict[str, Any]] = []
    for topic in summary["topics"]:
        for p in topic["offsets"]:
            rows.append({"topic": topic["topic"], **p, "gaps": len(p["gaps"])})
    table = Table((Column("topic", "TOPIC"), Column("partition", "PARTITION", "int"),
                   Column("start", "START", "int"), Column("next", "NEXT", "int"),
                   Column("records", "RECORDS", "int"), Column("first", "FIRST", "int"),
                   Column("last", "LAST", "int"), Column("gaps", "GAPS", "int")), rows)
    emit(opts, Result(summary, (header, table)))
