"""The Schema Registry of a local cluster: started with it, found by every command
without a URL, its schemas kept across a stop and start."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Kcli
from tests.support.broker import free_port

SCHEMA = {"type": "record", "name": "Event", "fields": [{"name": "n", "type": "int"}]}


def test_the_local_registry_is_found_and_survives_a_restart(
        run_kcli: Kcli, cluster_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    started = run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(port),
                       "-o", "json").ok()
    url = json.loads(started.out)["schema_registry"]
    assert url.startswith("http://127.0.0.1:")
    assert f"schema registry at {url}" in started.err
    schema = tmp_path / "event.avsc"
    schema.write_text(json.dumps(SCHEMA))
    run_kcli("topic", "create", "events").ok()
    run_kcli("produce", "events", "-f", "avro", "--schema", str(schema),
             input=b'{"n": 1}\n{"n": 2}\n').ok()
    first = json.loads(run_kcli("schema", "get", "events-value", "-o", "json").ok().out)
    status = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
    assert status["schema_registry"] == {"url": url, "process": "running"}
    assert status["topics"] == 1  # _schemas counts as internal

    run_kcli("cluster", "stop", "--data-dir", str(cluster_dir)).ok()
    again = run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "-o", "json").ok()
    assert json.loads(again.out)["schema_registry"] == url  # the same port again
    assert json.loads(run_kcli("schema", "get", "events-value", "-o", "json").ok().out) == first
    consumed = run_kcli("consume", "events", "-f", "avro").ok()
    assert consumed.out.splitlines() == [b'{"n":1}', b'{"n":2}']


def test_no_registry(run_kcli: Kcli, cluster_dir: Path) -> None:
    started = run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port",
                       str(free_port()), "--no-registry", "-o", "json").ok()
    assert json.loads(started.out)["schema_registry"] is None
    run_kcli("schema", "list").fails(2, "no schema registry")
    status = json.loads(run_kcli("cluster", "status", "-o", "json").ok().out)
    assert status["schema_registry"] is None
