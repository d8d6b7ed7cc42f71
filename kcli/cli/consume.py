"""`kcli consume`: records to stdout as raw values, a kcat-style format, or JSON lines."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kcli.cli.common import connect, plural, progress
from kcli.cli.options import Stopped, say, stop_on_signals
from kcli.config import Options
from kcli.errors import BadInput, OperationFailed

FORMATS = ("raw", "json", "avro")
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")
TABLE_FORMAT = "%p\\t%o\\t%k\\t%s\\n"

Renderer = Callable[[list[Any]], bytes]

if TYPE_CHECKING:
    from kcli.client.serdes import RegistryDecoder


def _lines(lines: list[bytes]) -> bytes:
    """Each line followed by a newline, in one buffer."""
    lines.append(b"")  # the last newline joined in: `+ b"\n"` copied the batch again
    return b"\n".join(lines)


def _raw(batch: list[Any]) -> bytes:
    return _lines([m.value() or b"" for m in batch])


def _envelope(batch: list[Any]) -> bytes:
    from kcli.formats.envelope import dumps_message

    return _lines([dumps_message(m) for m in batch])


class _Decoded:
    """A Message whose key and value were decoded from Avro (for formats and --grep)."""

    __slots__ = ("_key", "_message", "_value")

    def __init__(self, message: Any, key: bytes | None, value: bytes | None) -> None:
        self._message = message
        self._key = key
        self._value = value

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


def build_renderer(opts: Options, format_string: str | None, fmt: str) -> Renderer:
    """How a batch of messages becomes bytes on stdout."""
    from kcli.formats.format_string import compile_format

    if format_string is not None:
        if opts.output_explicit:
            raise BadInput("-F and -o both choose the output: give only one")
        render = compile_format(format_string)
        return lambda batch: b"".join([render(m) for m in batch])
    if fmt == "json" or (opts.output_explicit and opts.output in ("json", "jsonl")):
        return _envelope
    if opts.output_explicit and opts.output == "table":
        render = compile_format(TABLE_FORMAT)
        return lambda batch: b"".join([render(m) for m in batch])
    return _raw


def _avro_decoder(opts: Options, fmt: str, topic: str, schema: Path | None,
                  registry: str | None) -> tuple[Callable[[Any], Any] | None,
                                                 RegistryDecoder | None]:
    """-f avro: framed records by their schema id, bare ones with --schema. Returns
    the per-record decoder and, for framed records, the registry decoder (whose batch
    path the hot loop uses)."""
    if fmt != "avro":
        if schema is not None:
            raise BadInput("--schema is only used with -f avro")
        return None, None
    from kcli.formats.avro import AvroCodec

    bare = AvroCodec.from_file(schema) if schema is not None else None
    config = opts.registry_config(registry)
    if config is None and bare is None:
        raise BadInput("-f avro needs a schema registry (--registry URL, schema.registry.url "
                       "in the profile, or a local cluster's) or --schema FILE.avsc")
    if config is None:
        assert bare is not None

        def decode_bare(m: Any) -> Any:
            where = f"{m.topic()} partition {m.partition()} offset {m.offset()}"
            return _Decoded(m, m.key(), bare.decode(m.value(), where))

        return decode_bare, None
    from kcli.client.schema_fetch import schema_source
    from kcli.client.serdes import RegistryDecoder

    decoder = RegistryDecoder(schema_source(config), topic, bare)
    decode = decoder.decode

    def decode_framed(m: Any) -> Any:
        try:
            key = m.key()
            return _Decoded(m, key if key is None else decode(key, True), decode(m.value()))
        except (BadInput, OperationFailed) as error:
            where = f"{m.topic()} partition {m.partition()} offset {m.offset()}"
            raise type(error)(f"{where}: {error.message}") from None

    return decode_framed, decoder


def consume(
    opts: Options,
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic to read.",
                                         show_default=False)],
    group: Annotated[str | None, typer.Option(
        "-g", "--group", metavar="GROUP",
        help="Consume in this group and commit offsets (default: no group, no commits).")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", metavar="WHERE",
        help="beginning, end, an OFFSET, -N (the last N per partition) or an ISO-8601 "
             "time [default: beginning; with -g: the committed offset].")] = None,
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning", help="Same as --from beginning (kafka-console-consumer's flag).")
    ] = False,
    count: Annotated[int | None, typer.Option(
        "-n", "-c", "--count", min=0, help="Stop after COUNT records (-c as in kcat).")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Keep waiting for new records (default: stop at the end).")] = False,
    exit_at_end: Annotated[bool, typer.Option(
        "-e", "--exit", help="Stop at the end of every partition: the default (kcat's -e).")
    ] = False,
    partition: Annotated[list[int] | None, typer.Option(
        "-P", "--partition", min=0, help="Only this partition, repeatable.")] = None,
    format_string: Annotated[str | None, typer.Option(
        "-F", "--format-string", metavar="FORMAT",
        help="kcat-style: %t topic %p partition %o offset %k key %s value %h headers "
             "%T timestamp %K/%S key/value length %% percent; \\n \\t escapes.")] = None,
    fmt: Annotated[str, typer.Option(
        "-f", "--format", metavar="raw|json|avro",
        help="raw: values as they are; json: the record envelope per line (what "
             "produce -f json reads); avro: decode values with --schema, print JSON.")] = "raw",
    schema: Annotated[Path | None, typer.Option(
        "--schema", metavar="FILE.avsc",
        help="Avro schema of bare (unframed) values, for -f avro.")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL",
        help="Schema Registry URL for framed records [default: $KCLI_REGISTRY, the "
             "profile's schema.registry.url, or the local cluster's].")] = None,
    on_error: Annotated[str, typer.Option(
        "--on-error", metavar="fail|raw",
        help="A record -f avro cannot decode: stop with its partition and offset, or "
             "print it raw.")] = "fail",
    grep: Annotated[str | None, typer.Option(
        "--grep", metavar="REGEX", help="Only records whose key or value matches.")] = None,
    isolation: Annotated[str | None, typer.Option(
        "--isolation", metavar="read_committed|read_uncommitted",
        help="read_committed: only records of committed transactions, up to the last "
             "stable offset; read_uncommitted: also those of open and aborted ones "
             "[default: read_committed].")] = None,
) -> None:
    """Read records from a topic to stdout.

    Stops at the end of every partition, or waits for more with --follow. Data goes
    to stdout; nothing else does."""
    from kcli.client.consumer import BATCH, RecordConsumer
    from kcli.client.offsets import parse_position

    if fmt not in FORMATS:
        raise BadInput(f"-f: {fmt!r} is not one of {', '.join(FORMATS)}")
    if exit_at_end and follow:
        raise BadInput("-e (stop at the end) and --follow contradict each other")
    if from_beginning:
        if start is not None and start.strip().lower() not in ("beginning", "earliest"):
            raise BadInput(f"--from-beginning and --from {start} contradict each other")
        start = "beginning"
    spec = parse_position(start) if start is not None else None
    render = build_renderer(opts, format_string, fmt)
    if on_error not in ("fail", "raw"):
        raise BadInput(f"--on-error: {on_error!r} is not one of fail, raw")
    if isolation is not None and isolation not in ISOLATION_LEVELS:
        raise BadInput(f"--isolation: {isolation!r} is not one of "
                       f"{', '.join(ISOLATION_LEVELS)}")
    decode, decoder = _avro_decoder(opts, fmt, topic, schema, registry)
    undecoded = 0
    pattern = None
    if grep is not None:
        try:
            pattern = re.compile(grep.encode("utf-8"))
        except re.error as error:
            raise BadInput(f"--grep: bad regular expression: {error}") from None

    cluster = connect(opts)
    reader = RecordConsumer(cluster, topic, group=group, partitions=partition, start=spec,
                            follow=follow, config={"isolation.level": isolation}
                            if isolation is not None else None).open()
    out = sys.stdout.buffer
    remaining = count
    written = 0
    total = reader.total if not follow else None
    if count is not None:
        total = min(count, total) if total is not None else count
    stopped: Stopped | None = None
    try:
        with stop_on_signals(), progress(opts, total, f"consuming {topic}") as advance:

            def emit(data: bytes, records: int) -> None:
                nonlocal written
                out.write(data)
                # counted before the flush: a signal that stops the flush (the records
                # already on their way, and flushed at exit) must not drop them from
                # the summary
                written += records
                advance(records)
                out.flush()

            def decode_each(batch: list[Any]) -> list[Any]:
                nonlocal undecoded
                assert decode is not None
                decoded = []
                for m in batch:
                    try:
                        decoded.append(decode(m))
                    except (BadInput, OperationFailed):
                        if on_error == "fail":
                            raise
                        undecoded += 1
                        decoded.append(m)
                return decoded

            while remaining is None or remaining > 0:
                want = BATCH if remaining is None else min(BATCH, remaining)
                batch = reader.next_batch(want)
                if batch is None:
                    break
                if not batch:
                    continue
                if decoder is not None and pattern is None and render is _raw:
                    lines = decoder.decode_lines([m.value() for m in batch])
                    if lines is not None:  # every value decoded at once: the hot path
                        emit(lines, len(batch))
                        if remaining is not None:
                            remaining -= len(batch)
                        continue
                if decode is not None:
                    batch = decode_each(batch)
                if pattern is not None:
                    search = pattern.search
                    batch = [m for m in batch
                             if search(m.value() or b"") or search(m.key() or b"")]
                    if remaining is not None and len(batch) > remaining:
                        batch = batch[:remaining]
                    if not batch:
                        continue
                emit(render(batch), len(batch))
                if remaining is not None:
                    remaining -= len(batch)
    except Stopped as signalled:
        stopped = signalled
    finally:
        # a second Ctrl-C while the group is being left gives up on leaving it, quietly
        with stop_on_signals(), contextlib.suppress(Stopped):
            reader.close()
    say(opts, f"consumed {plural(written, 'record')} from {topic}")
    if undecoded:
        say(opts, f"{plural(undecoded, 'record')} could not be decoded and were printed raw")
    if stopped is not None:
        raise typer.Exit(stopped.exit_code)
