"""`kcli produce` and `kcli consume` against the session broker; kcat and confluent-kafka
check independently what kcli wrote and read."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.cli.conftest import Kcli, golden
from tests.support.broker import kcli_command

T0 = 1_700_000_000_000


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record of a topic, read by confluent-kafka (not by kcli)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "checker",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Any] = []
    ended: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(ended) < partitions:
            assert time.monotonic() < deadline, "the topic did not reach its end"
            for message in consumer.consume(1000, 0.1):
                if message.error() is None:
                    records.append(message)
                elif message.error().code() == -191:  # _PARTITION_EOF
                    ended.add(message.partition())
                else:
                    raise AssertionError(message.error())
    finally:
        consumer.close()
    return sorted(records, key=lambda m: (m.partition(), m.offset()))


def summary(message: Any) -> tuple[Any, ...]:
    """What must survive a copy: partition, key, value, headers, timestamp."""
    return (message.partition(), message.key(), message.value(),
            list(message.headers() or []), message.timestamp()[1])


def kcat_values(kcat: str, bootstrap: str, topic: str, fmt: str = "%s\\n") -> bytes:
    done = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-o",
                           "beginning", "-f", fmt], capture_output=True, check=True, timeout=30)
    return done.stdout


def test_raw_lines_round_trip_with_kcat(kcli: Kcli, topic: str, kcat: str,
                                        bootstrap: str) -> None:
    lines = [b"first", b"", b"with spaces and \xc3\xa9", b"last without newline"]
    done = kcli("produce", topic, input=b"\n".join(lines)).ok()
    assert done.err.startswith(f"produced 4 records to {topic}")
    assert sorted(kcat_values(kcat, bootstrap, topic).split(b"\n")[:-1]) == sorted(lines)
    assert sorted(kcli("consume", topic).ok().out.split(b"\n")[:-1]) == sorted(lines)


def test_keys_headers_partition_file_compression(kcli: Kcli, topic: str, bootstrap: str,
                                                 tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"k1:v1\nk2:v:with:colons\nnokey\n")
    kcli("produce", topic, "--file", str(source), "-K", ":", "-H", "a=1", "-H", "a=2",
         "-H", "b=", "-P", "2", "--acks", "1", "--compression", "zstd").ok()
    records = read_all(bootstrap, topic, 3)
    assert [(m.partition(), m.key(), m.value()) for m in records] == [
        (2, b"k1", b"v1"), (2, b"k2", b"v:with:colons"), (2, None, b"nokey")]
    assert records[0].headers() == [("a", b"1"), ("a", b"2"), ("b", b"")]


def test_envelope_produce_is_exact(kcli: Kcli, topic: str, bootstrap: str) -> None:
    binary = b"\x00\xff\xfe"
    lines = [
        {"key": None, "value": "", "partition": 0, "timestamp": T0},
        {"key": "", "value": None, "partition": 1, "timestamp": T0 + 1,
         "headers": [["h", "1"], ["h", None], ["h", ""]]},
        {"key": base64.b64encode(binary).decode(), "key_encoding": "base64",
         "value": base64.b64encode(binary).decode(), "value_encoding": "base64",
         "partition": 2, "timestamp": T0 + 2,
         "headers": [["bin", base64.b64encode(binary).decode(), "base64"]]},
    ]
    payload = b"".join(orjson.dumps(line) + b"\n" for line in lines) + b"\n   \n"
    kcli("produce", topic, "-f", "json", input=payload).ok()
    assert [summary(m) for m in read_all(bootstrap, topic, 3)] == [
        (0, None, b"", [], T0),
        (1, b"", None, [("h", b"1"), ("h", None), ("h", b"")], T0 + 1),
        (2, binary, binary, [("bin", binary)], T0 + 2),
    ]


def test_copy_pipeline_is_lossless(kcli: Kcli, topic: str, topic_name: str,
                                   bootstrap: str, cli_env: dict[str, str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    samples: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
        (None, None, []), (b"", b"", []), (b"k", b"v", [("x", b"1"), ("x", b"1")]),
        (b"\xff\xfe", b"\x00\x01\x80", [("n", None), ("e", b""), ("b", b"\xc3\x28")]),
        ("ключ".encode(), "значение ✓".encode(), [("ü", "ö".encode())]),
        (b"line\nbreak", b'{"json": "inside"}', []),
    ]
    for i, (key, value, headers) in enumerate(samples * 3):
        producer.produce(topic, value=value, key=key, partition=i % 3, timestamp=T0 + i,
                         headers=headers or None)
    assert producer.flush(10) == 0
    target = f"{topic_name}-copy"
    kcli("topic", "create", target, "-P", "3").ok()

    consume = subprocess.Popen(kcli_command("-b", bootstrap, "consume", topic, "-o", "jsonl"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=cli_env)
    produce = subprocess.run(kcli_command("-b", bootstrap, "produce", target, "-f", "json"),
                             stdin=consume.stdout, capture_output=True, env=cli_env,
                             timeout=60, check=False)
    assert consume.stdout is not None
    assert consume.stderr is not None
    consume.stdout.close()
    assert consume.wait(30) == 0
    assert consume.stderr.read() == f"consumed 18 records from {topic}\n".encode()
    consume.stderr.close()
    assert produce.returncode == 0, produce.stderr
    original = [summary(m) for m in read_all(bootstrap, topic, 3)]
    copied = [summary(m) for m in read_all(bootstrap, target, 3)]
    assert len(original) == 18
    assert copied == original


@pytest.fixture
def fixed_topic(kcli: Kcli, topic: str) -> str:
    """Six records with fixed timestamps: two per partition."""
    lines = [{"key": f"k{i}", "value": f"v{i}", "partition": i % 3, "timestamp": T0 + i,
              "headers": [["n", str(i)]]} for i in range(6)]
    kcli("produce", topic, "-f", "json",
         input=b"".join(orjson.dumps(line) + b"\n" for line in lines)).ok()
    return topic


def test_consume_output_formats(kcli: Kcli, fixed_topic: str) -> None:
    names = {fixed_topic: "TOPIC"}
    jsonl = kcli("consume", fixed_topic, "-P", "0", "-P", "1", "-o", "jsonl").ok().text
    golden("consume.jsonl.txt", "".join(sorted(jsonl.splitlines(keepends=True))), names)
    assert kcli("consume", fixed_topic, "-P", "0", "-f", "json").ok().text == "".join(
        line for line in sorted(jsonl.splitlines(keepends=True)) if '"partition":0' in line)
    formatted = kcli("consume", fixed_topic, "-P", "2",
                     "-F", r"%t %p %o %k=%s [%h] %T %K/%S%%\n").ok().text
    golden("consume.format.txt", formatted, names)
    golden("consume.table.txt", kcli("consume", fixed_topic, "-P", "1", "-o", "table").ok().text)
    kcli("consume", fixed_topic, "-F", "%s", "-o", "json").fails(2, r"-F and -o")
    kcli("consume", fixed_topic, "-F", "%q").fails(2, r"unknown format token %q")


def test_consume_positions_and_counts(kcli: Kcli, fixed_topic: str) -> None:
    def values(*args: str) -> list[str]:
        return sorted(kcli("consume", fixed_topic, *args).ok().text.split())

    assert values() == [f"v{i}" for i in range(6)]
    assert values("--from", "end") == []
    assert values("--from", "1") == ["v3", "v4", "v5"]  # offset 1 of every partition
    assert values("--from", "-1") == ["v3", "v4", "v5"]  # the last record of each
    assert values("--from", "2023-11-14T22:13:20.004Z") == ["v4", "v5"]
    assert len(values("-n", "4")) == 4
    assert values("-n", "0") == []
    assert values("-P", "1", "--from", "beginning") == ["v1", "v4"]
    assert values("--grep", "^k[24]$") == ["v2", "v4"]
    assert values("--grep", "v5") == ["v5"]
    kcli("consume", fixed_topic, "--from", "yesterday").fails(2, r"bad offset 'yesterday'")
    kcli("consume", fixed_topic, "-P", "7").fails(4, r"has no partition 7")
    kcli("consume", fixed_topic, "--grep", "(").fails(2, r"bad regular expression")


def test_unknown_topic_and_bad_input_lines(kcli: Kcli, topic: str) -> None:
    kcli("consume", "no-such-topic-z").fails(4, r"topic 'no-such-topic-z' does not exist")
    bad = b'{"value": "a"}\n{"value": "b"}\n{"value": oops}\n{"value": "d"}\n'
    kcli("produce", topic, "-f", "json", input=bad).fails(
        2, r"^kcli: error: line 3: not valid JSON.*\(2 records before it were written")
    assert sorted(kcli("consume", topic).ok().text.split()) == ["a", "b"]
    kcli("produce", topic, "-f", "xml").fails(2, r"-f: 'xml' is not one of raw, json, avro")
    kcli("produce", topic, "--acks", "2").fails(2, r"--acks")
    kcli("produce", topic, "-f", "json", "-K", ":").fails(2, r"do not apply to -f json")
    kcli("produce", topic, "--file", "/nonexistent/file").fails(2, r"cannot read")


def test_failed_records_exit_non_zero(kcli: Kcli, topic_name: str) -> None:
    kcli("topic", "create", topic_name, "-P", "1", "-c", "max.message.bytes=200").ok()
    done = kcli("produce", topic_name, input=b"small\n" + b"x" * 5000 + b"\n")
    # max.message.bytes bounds a whole batch: both records were in the rejected one.
    done.fails(1, r"of 2 records to .* failed: .*too large.*kcli topic alter .* "
                  r"-c max.message.bytes=N")


def test_a_record_over_the_producers_limit_names_its_line(kcli: Kcli, topic: str) -> None:
    """Refused before it is sent: exit 1, the line, what was written, and the setting."""
    big = b"x" * (2 * 1024 * 1024)
    for extra in ((), ("-K", ":"), ("--rate", "1000/s")):
        kcli("produce", topic, "-P", "0", *extra, input=b"a\nb\n" + big + b"\nc\n").fails(
            1, r"^kcli: error: line 3: a record of 2,097,152 bytes is over the producer's "
               r"message.max.bytes \(1,000,000\) \(2 records before it were written to .*\) "
               r"\(raise it with -X message.max.bytes=N")
    assert kcli("consume", topic, "-P", "0").ok().text.split() == ["a", "b"] * 3


def test_a_key_for_every_record(kcli: Kcli, topic: str, bootstrap: str) -> None:
    """-k is the key itself, as in kcat and rpk; -K splits lines."""
    kcli("produce", topic, "-k", "user:1", "-P", "1", input=b"a:1\nb\n").ok()
    records = read_all(bootstrap, topic, 2)
    assert [(m.key(), m.value()) for m in records] == [(b"user:1", b"a:1"), (b"user:1", b"b")]
    kcli("produce", topic, "-k", "x", "-K", ":").fails(2, r"-k KEY and -K SEP cannot be combined")


def test_avro(kcli: Kcli, topic: str, tmp_path: Path, kcat: str, bootstrap: str) -> None:
    schema = tmp_path / "user.avsc"
    schema.write_text('{"type": "record", "name": "User", "fields": ['
                      '{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}')
    kcli("produce", topic, "-f", "avro", "--schema", str(schema), "-P", "0",
         input=b'{"name": "ada", "age": 36}\n{"name": "bob", "age": 7}\n').ok()
    raw = kcat_values(kcat, bootstrap, topic, "%S:%s")
    assert raw == b"5:\x06adaH5:\x06bob\x0e"
    decoded = kcli("consume", topic, "-f", "avro", "--schema", str(schema)).ok().out
    assert [orjson.loads(line) for line in decoded.splitlines()] == [
        {"name": "ada", "age": 36}, {"name": "bob", "age": 7}]
    enveloped = kcli("consume", topic, "-f", "avro", "--schema", str(schema), "-o", "jsonl").ok()
    assert orjson.loads(enveloped.out.splitlines()[0])["value"] == '{"name":"ada","age":36}'
    kcli("produce", topic, "-f", "avro", "--schema", str(schema),
         input=b'{"name": "c", "age": 1}\n{"name": "dee", "age": "old"}\n').fails(
        2, r"line 2: record does not match the Avro schema: User.age is 'old', expected int")
    kcli("produce", topic, "-f", "avro").fails(2, r"needs --schema")
    kcli("produce", topic, input=b"not avro\n").ok()
    kcli("consume", topic, "-f", "avro", "--schema", str(schema)).fails(2, r"is not Avro")


def test_rate_limited_produce(kcli: Kcli, topic: str) -> None:
    kcli("produce", topic, "--rate", "2000/s", input=b"a\n" * 20).ok()
    assert len(kcli("consume", topic).ok().text.split()) == 20
    kcli("produce", topic, "--rate", "fast").fails(2, r"--rate")


def test_head_closes_the_pipe_quietly(kcli: Kcli, topic: str, bootstrap: str,
                                      cli_env: dict[str, str]) -> None:
    kcli("produce", topic, input=b"".join(b"record %d\n" % i for i in range(30000))).ok()
    process = subprocess.Popen(kcli_command("-b", bootstrap, "consume", topic),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env)
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    code = process.wait(30)
    err = process.stderr.read().decode()
    process.stderr.close()
    assert first.startswith(b"record ")
    assert code == 0
    assert err == ""


def test_shell_pipeline_into_head(kcli: Kcli, topic: str, bootstrap: str,
                                  cli_env: dict[str, str]) -> None:
    kcli("produce", topic, input=b"".join(b"%d\n" % i for i in range(20000))).ok()
    command = " ".join(kcli_command("-b", bootstrap, "consume", topic))
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                          capture_output=True, env=cli_env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert len(done.stdout.splitlines()) == 1


def test_unreachable_cluster(run_kcli: Kcli) -> None:
    import socket

    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        for args in (("topic", "list"), ("consume", "t"), ("group", "list")):
            run_kcli("-b", f"127.0.0.1:{port}", "--timeout", "5", *args).fails(
                3, rf"cannot reach 127.0.0.1:{port}")
        run_kcli("produce", "t", "-b", f"127.0.0.1:{port}", "--timeout", "5",
                 input=b"x\n").fails(3, r"cannot reach")


def test_format_string_matches_kcat(kcli: Kcli, topic: str, kcat: str, bootstrap: str) -> None:
    lines = [{"key": None, "value": "v1", "partition": 0, "timestamp": T0,
              "headers": [["a", "1"], ["b", ""], ["c", None]]},
             {"key": "k2", "value": None, "partition": 0, "timestamp": T0 + 1},
             {"key": "", "value": "", "partition": 0}]
    kcli("produce", topic, "-f", "json",
         input=b"".join(orjson.dumps(line) + b"\n" for line in lines)).ok()
    fmt = r"%t|%p|%o|%k|%s|%h|%T|%K|%S|%%\n"
    theirs = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-e", "-q",
                             "-f", fmt], capture_output=True, check=True, timeout=30).stdout
    ours = kcli("consume", topic, "-P", "0", "-F", fmt).ok().out
    assert ours == theirs
    assert ours.count(b"\n") == 3


def test_flags_users_of_kcat_and_kafka_tools_type_first(kcli: Kcli, topic: str) -> None:
    kcli("produce", topic, "-P", "0", input=b"a\nb\nc\n").ok()
    done = kcli("consume", topic, "--from-beginning", "-c", "2", "-e", "-P", "0").ok()
    assert done.text.split() == ["a", "b"]
    assert done.err == f"consumed 2 records from {topic}\n"  # on a pipe too, and plural
    kcli("consume", topic, "-e", "--follow").fails(2, "contradict")
    kcli("consume", topic, "--from-beginning", "--from", "end").fails(2, "contradict")
    # -o is kcli's output format, where kcat and rpk read a start offset
    kcli("consume", topic, "-o", "beginning").fails(
        2, r"unknown output format 'beginning' .*; did you mean --from beginning\?")
    kcli("consume", topic, "-o", "-10").fails(2, r"did you mean --from -10\?")


def test_summaries_agree_and_every_report_can_be_json(kcli: Kcli, topic_name: str) -> None:
    created = kcli("topic", "create", topic_name, "-P", "2", "-o", "json").ok()
    assert json.loads(created.out) == {
        "topic": topic_name, "created": True, "partitions": 2, "replication_factor": 1,
        "configs": {}}  # the broker's default replication factor, not null
    again = kcli("topic", "create", topic_name, "--if-not-exists", "-o", "json").ok()
    assert json.loads(again.out) == {  # what the existing topic has
        "topic": topic_name, "created": False, "partitions": 2, "replication_factor": 1,
        "configs": {}}
    produced = kcli("produce", topic_name, "-o", "json", input=b"one\n").ok()
    assert produced.err.startswith(f"produced 1 record to {topic_name} in ")
    doc = json.loads(produced.out)
    assert (doc["topic"], doc["records"]) == (topic_name, 1)
    assert kcli("consume", topic_name, "-q").ok().err == ""
    grown = kcli("topic", "add-partitions", topic_name, "1", "-o", "jsonl").ok()
    assert json.loads(grown.out) == {"topic": topic_name, "before": 2, "after": 3}
    assert kcli("produce", topic_name, input=b"x\n").ok().out == b""  # no -o: no JSON
