"""What a backup takes: topic names and globs, --all, the cut fixed at the start while
producers keep writing; every codec readable by a plain Avro reader; and a round trip
produced and checked with kcat, a client kcli shares no code with."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import fastavro
import orjson
from confluent_kafka import Producer

from tests.backup.conftest import create_topic, read_all, watermarks
from tests.backup.test_resume import fill
from tests.cli.conftest import Kcli
from tests.support.broker import kcli_command


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(start, start + count):
        producer.produce(topic, value=b"value %d" % i, key=b"k%d" % (i % 5))
    assert producer.flush(10) == 0


def test_globs_and_every_codec_in_plain_avro(kcli: Kcli, bootstrap: str, topic_name: str,
                                             tmp_path: Path) -> None:
    from kcli.backup.reading import _register_zstandard

    chosen = [f"{topic_name}-a", f"{topic_name}-b"]
    for name, partitions in zip([*chosen, f"{topic_name}x"], (2, 1, 1), strict=True):
        create_topic(bootstrap, name, partitions)
        produce(bootstrap, name, 30)
    _register_zstandard()  # this fastavro reads zstd only through an optional package
    for codec, avro_name in (("zstd", "zstandard"), ("deflate", "deflate"), ("null", "null")):
        archive = tmp_path / codec
        done = orjson.loads(kcli("backup", f"{topic_name}-*", "--to", str(archive),
                                 "--codec", codec, "-o", "json").ok().out)
        assert done["topics"] == chosen
        assert done["records"] == 60
        manifest = orjson.loads((archive / "manifest.json").read_bytes())
        assert manifest["runs"][0]["codec"] == avro_name
        seen: dict[str, list[bytes]] = {}
        for topic in manifest["topics"]:
            for partition in topic["partitions"]:
                for segment in partition["segments"]:
                    with open(archive / segment["path"], "rb") as f:
                        reader = fastavro.reader(f)
                        assert reader.codec == avro_name
                        assert reader.metadata["kcli.topic"] == topic["name"]
                        assert reader.metadata["kcli.partition"] == str(partition["partition"])
                        records = list(reader)
                    assert [r["offset"] for r in records] == list(
                        range(segment["start_offset"], segment["next_offset"]))
                    seen.setdefault(topic["name"], []).extend(
                        r["value"] for r in records)
        assert {n: sorted(v) for n, v in seen.items()} == {
            n: sorted(b"value %d" % i for i in range(30)) for n in chosen}
        kcli("backup", "verify", str(archive)).ok()


def test_all_topics(kcli: Kcli, bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    create_topic(bootstrap, topic_name, 2)
    produce(bootstrap, topic_name, 10)
    archive = tmp_path / "all"
    # --until before any record keeps it small whatever else the session broker holds
    done = orjson.loads(kcli("backup", "--all", "--to", str(archive), "--until",
                             "2000-01-01T00:00:00Z", "-o", "json").ok().out)
    listed = orjson.loads(kcli("topic", "list", "-o", "json").ok().out)
    assert set(done["topics"]) == {t["name"] for t in listed}
    assert topic_name in done["topics"]
    assert not any(name.startswith("__") for name in done["topics"])
    kcli("backup", "verify", str(archive)).ok()
    kcli("backup", "--all", topic_name, "--to", str(tmp_path / "x")).fails(2, "not both")


def test_cut_is_fixed_at_the_start(kcli: Kcli, bootstrap: str, topic_name: str,
                                   tmp_path: Path, cli_env: dict[str, str]) -> None:
    fill(bootstrap, topic_name, 4000, 200)
    before = watermarks(bootstrap, topic_name)
    archive = tmp_path / "archive"
    process = subprocess.Popen(
        kcli_command("-b", bootstrap, "backup", topic_name, "--to", str(archive),
                     "--segment-size", "64KB", "--codec", "deflate", "-o", "json"),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (archive / "checkpoint.json").exists():  # the plan, with its cut
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.001)
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
        for i in range(300):  # while the backup copies
            producer.produce(topic_name, value=b"late %d" % i, partition=i % 3)
        assert producer.flush(10) == 0
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    assert orjson.loads(out)["records"] == 3 * 4000
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    for partition in manifest["topics"][0]["partitions"]:
        low, high = before[partition["partition"]]
        assert (partition["high_watermark"], partition["next_offset"]) == (high, high)
        assert partition["record_count"] == high - low
    assert sum(h for _l, h in watermarks(bootstrap, topic_name).values()) == 3 * 4000 + 300


def kcat_lines(kcat: str, bootstrap: str, topic: str) -> list[str]:
    """Every record as kcat prints it: partition, key, value, headers, timestamp (NULL
    apart from empty), in partition and offset order."""
    done = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-Z",
                           "-f", "%p|%o|%k|%s|%h|%T\n"], capture_output=True, timeout=60,
                          check=True)
    rows = [line.split("|") for line in done.stdout.decode().splitlines()]
    rows.sort(key=lambda r: (int(r[0]), int(r[1])))
    return ["|".join([r[0], *r[2:]]) for r in rows]


def test_kcat_round_trip(kcli: Kcli, bootstrap: str, topic_name: str, kcat: str,
                         tmp_path: Path) -> None:
    create_topic(bootstrap, topic_name, 2)
    for partition, lines, headers in (
            (0, b"k1\tv1\n\tnull key\nk3\t\nk1\tagain\n", ["-H", "h=1", "-H", "h=2"]),
            (1, b"x\ty\n\t\n", [])):
        subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic_name, "-p", str(partition),
                        "-K", "\t", "-Z", "-z", "snappy", *headers], input=lines, check=True,
                       timeout=60)
    source = kcat_lines(kcat, bootstrap, topic_name)
    assert len(source) == 6
    assert "0|NULL|null key|h=1,h=2|" in "\n".join(source)
    assert any(line.startswith("0|k3|NULL|") for line in source)  # a tombstone
    archive = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(archive)).ok()
    target = f"{topic_name}-r"
    kcli("restore", str(archive), "--topic", f"{topic_name}={target}").ok()
    assert kcat_lines(kcat, bootstrap, target) == source
    assert len(read_all(bootstrap, target)) == 6
