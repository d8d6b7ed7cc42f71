"""`kcli produce`: records from stdin or a file, one per line (raw, JSON envelope or Avro)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from kcli.cli.common import plural, progress
from kcli.cli.common import report as report_outcome
from kcli.config import Options
from kcli.errors import BadInput

if TYPE_CHECKING:
    from kcli.client.producer import RecordProducer
    from kcli.formats.lines import LineFormat, ValueEncoder

ACKS = ("0", "1", "all", "-1")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def parse_rate(text: str | None) -> float | None:
    """'100', '100/s' -> records per second."""
    if text is None:
        return None
    value = text.strip().removesuffix("/s")
    try:
        rate = float(value)
    except ValueError:
        raise BadInput(f"--rate: expected records per second like 100/s, not {text!r}") from None
    if rate <= 0:
        raise BadInput("--rate must be positive")
    return rate


def _choice(value: str | None, choices: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in choices:
        raise BadInput(f"{option}: {value!r} is not one of {', '.join(choices)}")
    return value


def produce(
    opts: Options,
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic to write to.",
                                         show_default=False)],
    key_separator: Annotated[str | None, typer.Option(
        "-K", "--key-separator", metavar="SEP",
        help="Split each line at the first SEP into key and value (as kcat's -K).")] = None,
    key: Annotated[str | None, typer.Option(
        "-k", "--key", metavar="KEY",
        help="The key of every record (as kcat's and rpk's -k).")] = None,
    header: Annotated[list[str] | None, typer.Option(
        "-H", "--header", metavar="KEY=VALUE", help="Header on every record, repeatable.")] = None,
    fmt: Annotated[str, typer.Option(
        "-f", "--format", metavar="raw|json|avro",
        help="raw: a value per line; json: the record envelope per line (as consume "
             "-o jsonl writes it); avro: a JSON value per line, written as Avro.")] = "raw",
    schema: Annotated[Path | None, typer.Option(
        "--schema", metavar="FILE.avsc",
        help="Avro schema (for -f avro); registered under --subject when there is a "
             "schema registry.")] = None,
    subject: Annotated[str | None, typer.Option(
        "--subject", metavar="SUBJECT",
        help="Registry subject of the values [default: TOPIC-value]; without --schema, "
             "its latest version is used.")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL",
        help="Schema Registry URL [default: $KCLI_REGISTRY, the profile's "
             "schema.registry.url, or the local cluster's]; 'none' writes bare Avro.")] = None,
    partition: Annotated[int | None, typer.Option(
        "-P", "--partition", min=0, help="Write every record to this partition.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", metavar="FILE", help="Read records from FILE instead of stdin.")] = None,
    acks: Annotated[str | None, typer.Option(
        "--acks", metavar="0|1|all", help="Acknowledgements to wait for [default: all].")] = None,
    compression: Annotated[str | None, typer.Option(
        "--compression", metavar="none|gzip|snappy|lz4|zstd", help="Batch compression.")] = None,
    rate: Annotated[str | None, typer.Option(
        "--rate", metavar="N/s", help="At most N records per second.")] = None,
) -> None:
    """Write records to a topic: one per line from stdin or --file. Prints how many were
    written; exits non-zero if any record failed."""
    from kcli.client.producer import RecordProducer, RecordRejected
    from kcli.formats.lines import LINE_FORMATS, LineFormat, read_lines

    _choice(fmt, LINE_FORMATS, "-f")
    _choice(acks, ACKS, "--acks")
    _choice(compression, COMPRESSIONS, "--compression")
    per_second = parse_rate(rate)
    headers: list[tuple[str, bytes | None]] = []
    for item in header or ():  # duplicates and order kept exactly as given
        name, found, value = item.partition("=")
        if not found or not name:
            raise BadInput(f"-H expects key=value, got {item!r}")
        headers.append((name, value.encode("utf-8")))
    if key_separator == "":
        raise BadInput("-K needs a non-empty separator")
    if key is not None and key_separator is not None:
        raise BadInput("-k KEY and -K SEP cannot be combined: -k gives every record one "
                       "key, -K takes each record's key from its line")
    if fmt == "json" and (key_separator or key is not None or header):
        raise BadInput("-k, -K and -H do not apply to -f json (the envelope carries keys "
                       "and headers)")
    codec = _value_encoder(opts, fmt, topic, schema, subject, registry)
    line_format = LineFormat(fmt, key_separator.encode("utf-8") if key_separator else None,
                             tuple(headers), codec,
                             key.encode("utf-8") if key is not None else None)

    try:
        stream: IO[bytes] = open(file, "rb") if file else sys.stdin.buffer  # noqa: SIM115
    except OSError as error:
        raise BadInput(f"cannot read {file}: {error.strerror or error}") from None
    size = None
    if file is not None:
        try:
            size = file.stat().st_size
        except OSError:
            size = None

    extra: dict[str, object] = {}
    if acks is not None:
        extra["acks"] = "all" if acks == "-1" else acks
    if compression is not None:
        extra["compression.type"] = compression
    config = opts.client_config(extra)
    producer = RecordProducer(config, topic, timeout=opts.timeout)
    producer.check_topic()
    part = -1 if partition is None else partition
    started = time.monotonic()
    lines_before = 0  # lines fully handed to the producer
    try:
        with progress(opts, size, f"producing to {topic}", unit="bytes") as advance:
            lines = read_lines(stream, advance if size else None)
            if line_format.plain_values and per_second is None:
                for batch in lines:
                    producer.send_values(batch, part)
                    lines_before += len(batch)
            else:
                _produce_records(producer, lines, line_format, part, per_second)
    except BadInput as error:
        # Records before the bad line are written; say so in the one error line.
        done = producer.flush()
        raise BadInput(f"{error.message} ({_written_before(done.delivered, topic)})") from None
    except RecordRejected as rejected:
        lineno = rejected.lineno or lines_before + rejected.index + 1
        done = producer.flush()
        refusal = rejected.error
        raise type(refusal)(f"line {lineno}: {refusal.message} "
                            f"({_written_before(done.delivered, topic)})",
                            hint=refusal.hint) from None
    finally:
        if file is not None:
            stream.close()
    report = producer.flush()
    failure = report.failure(topic)
    if failure is not None:
        raise failure
    elapsed = time.monotonic() - started
    report_outcome(opts, f"produced {plural(report.delivered, 'record')} to {topic} in "
                         f"{elapsed:.2f}s",
                   {"topic": topic, "records": report.delivered,
                    "seconds": round(elapsed, 3)})


def _value_encoder(opts: Options, fmt: str, topic: str, schema: Path | None,
                   subject: str | None, registry: str | None) -> ValueEncoder | None:
    """-f avro: registry-framed Avro when a registry is known, else bare Avro."""
    if fmt != "avro":
        for given, option in ((schema, "--schema"), (subject, "--subject"),
                              (registry, "--registry")):
            if given is not None:
                raise BadInput(f"{option} is only used with -f avro")
        return None
    from kcli.formats.avro import AvroCodec

    config = opts.registry_config(registry)
    if config is None:
        if subject is not None:
            raise BadInput("--subject needs a schema registry (--registry URL, "
                           "schema.registry.url in the profile, or a local cluster's)")
        if schema is None:
            raise BadInput("-f avro needs --schema FILE.avsc, or a schema registry "
                           "(--registry URL) with --subject")
        return AvroCodec.from_file(schema)
    from kcli.client.schemas import RegistryClient
    from kcli.client.serdes import RegistryEncoder

    text = None
    if schema is not None:
        try:
            text = schema.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BadInput(f"cannot read schema {schema}: {error}") from None
    return RegistryEncoder(RegistryClient(config), topic, subject or f"{topic}-value", text,
                           str(schema))


def _produce_records(producer: RecordProducer, lines: Iterator[list[bytes]],
                     line_format: LineFormat, partition: int,
                     per_second: float | None) -> None:
    """The general path: each line through its format, -P over the record's partition,
    optionally paced to a rate."""
    from kcli.client.producer import RecordRejected

    send = producer.send
    started = time.monotonic()
    lineno = sent = 0
    for batch in lines:
        for line in batch:
            lineno += 1
            record = line_format.record(line, lineno)
            if record is None:
                continue
            target = partition
            if target < 0 and record.partition is not None:
                target = record.partition
            try:
                send(record.value, record.key, target, record.timestamp or 0,
                     record.headers or None)
            except RecordRejected as rejected:
                rejected.lineno = lineno
                raise
            sent += 1
            if per_second is not None:
                ahead = sent / per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)


def _written_before(delivered: int, topic: str) -> str:
    """``2 records before it were written to T``: the part of an error line that says
    what a failed produce still delivered."""
    verb = "was" if delivered == 1 else "were"
    return f"{plural(delivered, 'record')} before it {verb} written to {topic}"
