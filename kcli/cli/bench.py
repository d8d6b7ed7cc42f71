"""`kcli bench`: producer and consumer throughput, like Kafka's perf-test tools."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from kcli.cli.common import connect, emit, progress
from kcli.cli.help import help_settings
from kcli.cli.options import command
from kcli.config import Options
from kcli.errors import BadInput

app = typer.Typer(help="Measure produce and consume throughput against a cluster.",
                  no_args_is_help=True, **help_settings())

TopicArg = Annotated[str, typer.Argument(metavar="TOPIC", help="Topic to use.",
                                         show_default=False)]
CountOpt = Annotated[int, typer.Option("--count", "-n", min=1, help="Records.")]


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def summary(kind: str, topic: str, records: int, size: int, seconds: float,
            latencies_s: Sequence[float], latency_name: str) -> dict[str, Any]:
    """The numbers a bench run reports (latencies in milliseconds)."""
    values = sorted(latencies_s)
    seconds = max(seconds, 1e-9)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "benchmark": kind, "topic": topic, "records": records, "bytes": size,
        "seconds": round(seconds, 3),
        "records_per_second": round(records / seconds, 1),
        "mb_per_second": round(size / seconds / 1_000_000, 2),
        "latency": latency_name,
        "latency_avg_ms": ms(sum(values) / len(values)) if values else None,
        "latency_p50_ms": ms(percentile(values, 0.50)),
        "latency_p95_ms": ms(percentile(values, 0.95)),
        "latency_p99_ms": ms(percentile(values, 0.99)),
        "latency_p999_ms": ms(percentile(values, 0.999)),
        "latency_max_ms": ms(values[-1] if values else None),
    }


def _emit_summary(opts: Options, data: dict[str, Any]) -> None:
    from kcli.output import Result
    from kcli.output.model import fields_table

    labels = [("benchmark", "benchmark"), ("topic", "topic"), ("records", "records"),
              ("bytes", "bytes"), ("seconds", "seconds"),
              ("records_per_second", "records/s"), ("mb_per_second", "MB/s"),
              ("latency", "latency of"), ("latency_avg_ms", "avg ms"),
              ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"),
              ("latency_p99_ms", "p99 ms"), ("latency_p999_ms", "p99.9 ms"),
              ("latency_max_ms", "max ms")]
    emit(opts, Result(data, (fields_table([(label, data[key]) for key, label in labels]),)))


@command(app, "produce")
def produce(
    opts: Options,
    topic: TopicArg,
    count: CountOpt = 1_000_000,
    size: Annotated[int, typer.Option("--size", "-s", min=0, help="Value bytes.")] = 100,
    acks: Annotated[str, typer.Option("--acks", metavar="0|1|all")] = "all",
) -> None:
    """Produce COUNT records of SIZE bytes as fast as possible.

    Reports throughput and per-record delivery latency (send to acknowledgement)
    percentiles."""
    from kcli.client.producer import RecordProducer

    if acks not in ("0", "1", "all", "-1"):
        raise BadInput(f"--acks: {acks!r} is not one of 0, 1, all")
    payload = os.urandom(size)
    producer = RecordProducer(opts.client_config({"acks": acks}), topic,
                              timeout=opts.timeout, measure_latency=True)
    producer.check_topic()
    started = time.perf_counter()
    with progress(opts, count, f"producing to {topic}") as advance:
        left = count
        while left:
            n = min(left, 10_000)
            producer.send_values([payload] * n)
            advance(n)
            left -= n
        report = producer.flush()
    seconds = time.perf_counter() - started
    failure = report.failure(topic)
    if failure is not None:
        raise failure
    _emit_summary(opts, summary("produce", topic, report.delivered, report.delivered * size,
                                seconds, report.latencies, "delivery (send to ack)"))


@command(app, "consume")
def consume(
    opts: Options,
    topic: TopicArg,
    count: CountOpt = 1_000_000,
) -> None:
    """Consume COUNT records from the beginning (or until the end).

    Reports throughput and fetch latency (time each batch took to arrive)
    percentiles."""
    from kcli.client.consumer import BATCH, RecordConsumer
    from kcli.client.offsets import PositionSpec

    reader = RecordConsumer(connect(opts), topic, start=PositionSpec("beginning")).open()
    records = 0
    size = 0
    waits: list[float] = []
    started = time.perf_counter()
    try:
        total = min(count, reader.total) if reader.total is not None else count
        with progress(opts, total, f"consuming {topic}") as advance:
            while records < count:
                asked = time.perf_counter()
                batch = reader.next_batch(min(BATCH, count - records))
                if batch is None:
                    break
                if not batch:
                    continue
                waits.append(time.perf_counter() - asked)
                records += len(batch)
                size += sum(len(m.value() or b"") for m in batch)
                advance(len(batch))
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    _emit_summary(opts, summary("consume", topic, records, size, seconds, waits,
                                "fetch (per batch)"))
