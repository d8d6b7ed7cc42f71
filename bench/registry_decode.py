"""`kcli consume -f avro` through the Schema Registry against bare `kcli consume`, on
the same registry-framed records, in one run.

    python bench/registry_decode.py [--records 200000] [--rounds 5]

Starts an embedded broker and the embedded registry (temp dir, free ports), writes
RECORDS records of a 10-field Avro schema with confluent-kafka's AvroSerializer, then
times, interleaving the two, ``kcli consume T -f avro`` (decodes every value by its
schema id, prints JSON) and ``kcli consume T`` (prints the raw bytes), both to
/dev/null. Prints records/s per round, then median, min and max of each and of the
ratio (the goal: decoding keeps at least 50% of the raw rate). That the schema is
fetched once per id, not per record, is a test (tests/client/test_serdes.py).
Both rates are of whole runs, start-up included (0.5 s of each), as a user meets
them; with more records the ratio tends to the per-record one, which is lower
(raw consume spends about 0.5 us on a record, decoding about 2.5 us more): run it with
--records 1000000 to see it. Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.broker import BrokerProcess, kcli_command, kcli_env  # noqa: E402
from tests.support.registry import RegistryProcess  # noqa: E402

SCHEMA = {"type": "record", "name": "Reading", "namespace": "bench", "fields": [
    {"name": "id", "type": "long"}, {"name": "sensor", "type": "string"},
    {"name": "site", "type": "string"}, {"name": "celsius", "type": "double"},
    {"name": "humidity", "type": "float"}, {"name": "ok", "type": "boolean"},
    {"name": "count", "type": "int"}, {"name": "note", "type": ["null", "string"]},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "level", "type": {"type": "enum", "name": "Level",
                               "symbols": ["LOW", "MID", "HIGH"]}}]}


def fill(bootstrap: str, registry: str, topic: str, records: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its future
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    client = SchemaRegistryClient({"url": registry})
    serialize = AvroSerializer(client, json.dumps(SCHEMA))
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    import datetime

    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for i in range(records):
        value = serialize({"id": i, "sensor": f"sensor-{i % 97}", "site": "north-yard",
                           "celsius": 20.5 + i % 10, "humidity": 0.4, "ok": i % 2 == 0,
                           "count": i % 1000, "note": None if i % 3 else "checked",
                           "at": at, "level": "MID"}, context)
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    client.close()


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=kcli_env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def summary(name: str, values: list[float], unit: str) -> str:
    return (f"{name:14} median {statistics.median(values):10,.2f} {unit}  "
            f"min {min(values):10,.2f}  max {max(values):10,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kcli-bench-") as tmp:
        workdir = Path(tmp)
        broker = BrokerProcess(workdir / "broker").start()
        registry = RegistryProcess(broker.bootstrap, workdir / "registry.log").start()
        try:
            fill(broker.bootstrap, registry.url, "readings", args.records)
            print(f"{args.records:,} records of a 10-field Avro schema; {args.rounds} "
                  "interleaved rounds")
            base = kcli_command("-b", broker.bootstrap, "-q", "consume", "readings", "-n",
                                str(args.records))
            raw_rates: list[float] = []
            avro_rates: list[float] = []
            for round_ in range(args.rounds):
                avro_rates.append(args.records / timed(
                    [*base, "-f", "avro", "--registry", registry.url]))
                raw_rates.append(args.records / timed(base))
                print(f"round {round_ + 1}: raw {raw_rates[-1]:,.0f} records/s, "
                      f"-f avro {avro_rates[-1]:,.0f} records/s")
            ratios = [a / r for a, r in zip(avro_rates, raw_rates, strict=True)]
            print(summary("raw", raw_rates, "records/s"))
            print(summary("-f avro", avro_rates, "records/s"))
            print(summary("avro / raw", [100 * r for r in ratios], "%"))
        finally:
            registry.stop()
            broker.stop()


if __name__ == "__main__":
    main()
