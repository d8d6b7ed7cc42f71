"""`kcli bench`: runs, and reports throughput and latency percentiles (never timed here)."""

from __future__ import annotations

import orjson

from tests.cli.conftest import Kcli


def test_bench_produce_and_consume(kcli: Kcli, topic_name: str) -> None:
    produced = orjson.loads(kcli("bench", "produce", topic_name, "--count", "3000",
                                 "--size", "50").ok().out)
    assert produced["records"] == 3000
    assert produced["bytes"] == 150000
    assert produced["records_per_second"] > 0
    assert produced["latency_p50_ms"] <= produced["latency_p99_ms"] <= produced["latency_max_ms"]
    consumed = orjson.loads(kcli("bench", "consume", topic_name, "--count", "5000").ok().out)
    assert (consumed["records"], consumed["bytes"]) == (3000, 150000)  # stops at the end
    table = kcli("bench", "consume", topic_name, "-n", "100", "-o", "table").ok().text
    assert "records/s" in table
    assert "p99 ms" in table
