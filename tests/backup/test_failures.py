"""Every failure is one clear line and the right exit code; a damaged archive is never
restored; nothing is written before the archive is known to be whole."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.backup.conftest import admin, create_topic, read_all
from tests.cli.conftest import Kcli


@pytest.fixture
def archive(kcli: Kcli, bootstrap: str, topic_name: str, tmp_path: Path) -> Path:
    create_topic(bootstrap, topic_name, 2)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(200):
        producer.produce(topic_name, value=b"value %d " % i * 20, key=b"%d" % i,
                         partition=i % 2)
    assert producer.flush(10) == 0
    root = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(root), "--segment-size", "4KB").ok()
    return root


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["segment-middle", "segment-last-byte", "groups", "topics"])
def test_one_flipped_byte_is_refused(kcli: Kcli, archive: Path, topic_name: str,
                                     where: str) -> None:
    segments = sorted((archive / "topics").rglob("*.avro"))
    assert len(segments) > 4
    target = {"segment-middle": segments[2], "segment-last-byte": segments[-1],
              "groups": archive / "cluster/groups.avro",
              "topics": archive / "cluster/topics.json"}[where]
    size = target.stat().st_size
    flip_byte(target, size // 2 if where != "segment-last-byte" else size - 1)
    relative = str(target)
    kcli("backup", "verify", str(archive)).fails(1, f"corrupt archive: {relative}")
    kcli("restore", str(archive), "--topic", f"{topic_name}=never").fails(
        1, f"corrupt archive: {relative}")
    listed = orjson.loads(kcli("topic", "list", "-o", "json").ok().out)
    assert "never" not in {t["name"] for t in listed}


def records_in(bootstrap: str, topic: str) -> int:
    """Records a topic holds (0 if it does not exist), read through confluent-kafka."""
    if topic not in admin(bootstrap).list_topics(timeout=10).topics:
        return 0
    return len(read_all(bootstrap, topic))


def _drop_middle(p: dict[str, Any]) -> None:
    del p["segments"][2]


def _drop_last(p: dict[str, Any]) -> None:
    del p["segments"][-1]


def _bump(field: str, by: int, segment: int | None = None) -> Callable[[dict[str, Any]], None]:
    def change(p: dict[str, Any]) -> None:
        entry = p if segment is None else p["segments"][segment]
        entry[field] += by
    return change


def _add_gap(p: dict[str, Any]) -> None:
    p["gaps"] = [[p["start_offset"] + 5, p["start_offset"] + 6], *p["gaps"]]


@pytest.mark.parametrize(("change", "message"), [
    (_drop_middle, "starts at [0-9]+, expected [0-9]+"),
    (_drop_last, "in no segment and no gap"),
    (_bump("record_count", 1, segment=1), "record count 2[0-9], its range"),
    (_bump("record_count", -1), "the manifest says 99 records"),
    (_bump("next_offset", 1, segment=1), "has record count [0-9]+, its range \\["),
    (_bump("next_offset", 1, segment=-1), "has record count [0-9]+, its range \\["),
    (_bump("next_offset", 5), "offsets 100 to 104 are in no segment"),
    (_add_gap, "has record count [0-9]+, its range \\["),
], ids=["segment-removed", "last-segment-removed", "segment-record-count",
        "partition-record-count", "segment-next-offset", "last-segment-next-offset",
        "partition-next-offset", "gap-added"])
def test_inconsistent_manifest_is_never_restored(
        kcli: Kcli, bootstrap: str, archive: Path, topic_name: str,
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    """A manifest whose entries disagree with each other (every file still matching
    its sha256) fails verify, and restore refuses it before writing a single record,
    with the same one line. Partition 1 is changed: it is restored after partition 0."""
    manifest = archive / "manifest.json"
    data = orjson.loads(manifest.read_bytes())
    change(data["topics"][0]["partitions"][1])
    manifest.write_bytes(orjson.dumps(data))
    pattern = f"corrupt archive: {manifest}: {topic_name}\\[1\\]: .*{message}"
    kcli("backup", "verify", str(archive)).fails(1, pattern)
    target = f"{topic_name}-restored"
    kcli("restore", str(archive), "--topic", f"{topic_name}={target}").fails(1, pattern)
    assert records_in(bootstrap, target) == 0


@pytest.mark.parametrize("threads", [0, 2])
def test_segment_changed_after_the_checks_yields_none_of_its_records(
        kcli: Kcli, bootstrap: str, topic_name: str, tmp_path: Path, threads: int) -> None:
    """A segment that changes after the restore's checks passed (same size, one byte of
    a value) stops the partition's records before the first of that segment: what was
    handed out is exactly the records of the segments before it."""
    from concurrent.futures import ThreadPoolExecutor

    from kcli.backup.archive import Archive
    from kcli.backup.records import ArchiveCorrupt

    create_topic(bootstrap, topic_name, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(100):
        producer.produce(topic_name, value=b"value %d " % i * 20, partition=0)
    assert producer.flush(10) == 0
    root = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(root), "--segment-size", "4KB", "--codec",
         "null").ok()
    archive = Archive.open(root)
    archive.check()
    partition = archive.manifest.topics[0].partitions[0]
    victim = archive.path_of(partition.segments[2])
    data = bytearray(victim.read_bytes())
    position = data.rindex(b"value ")  # inside the last record's value: still decodable
    data[position] ^= 0x01
    victim.write_bytes(bytes(data))
    got: list[int] = []
    with (ThreadPoolExecutor(threads) if threads else contextlib.nullcontext() as pool,
          pytest.raises(ArchiveCorrupt, match=f"{victim}: sha256 differs")):
        got.extend(r["offset"] for r in archive.records(topic_name, partition, None, pool))
    before = partition.segments[2].start_offset
    assert got == list(range(before))


def test_damaged_manifest(kcli: Kcli, archive: Path) -> None:
    manifest = archive / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:-40])
    kcli("backup", "verify", str(archive)).fails(1, "corrupt archive: .*manifest.json: not "
                                                    "valid JSON")
    data = {"format": "kcli-backup", "version": 1}
    manifest.write_bytes(orjson.dumps(data))
    kcli("backup", "ls", str(archive)).fails(1, "manifest.json: field source is missing")


def test_manifest_cannot_point_outside(kcli: Kcli, archive: Path) -> None:
    manifest = archive / "manifest.json"
    data = orjson.loads(manifest.read_bytes())
    data["topics"][0]["partitions"][0]["segments"][0]["path"] = "../../etc/passwd"
    manifest.write_bytes(orjson.dumps(data))
    kcli("backup", "verify", str(archive)).fails(1, "points outside the archive")


def test_missing_segment(kcli: Kcli, archive: Path) -> None:
    victim = sorted((archive / "topics").rglob("*.avro"))[1]
    victim.unlink()
    kcli("backup", "verify", str(archive)).fails(1, f"{victim}: file is missing")


def test_exit_codes(kcli: Kcli, run_kcli: Kcli, tmp_path: Path, topic_name: str,
                    archive: Path) -> None:
    kcli("backup", "verify", str(tmp_path / "nothing")).fails(4, "no archive at")
    kcli("restore", str(tmp_path / "nothing")).fails(4, "no archive at")
    kcli("backup", "ls", str(tmp_path)).fails(4, "no manifest.json")
    kcli("backup", topic_name).fails(2, "--to DIR")
    kcli("backup", "--to", str(tmp_path / "x")).fails(2, "name the topics")
    kcli("backup", "no-such-topic", "--to", str(tmp_path / "y")).fails(4, "does not exist")
    kcli("backup", topic_name, "--to", str(tmp_path / "z"), "--codec", "lz4").fails(
        2, "--codec")
    kcli("backup", topic_name, "--to", str(tmp_path / "z"), "--until", "yesterday").fails(
        2, "--until")
    kcli("restore", str(archive), "--topic", "a=").fails(2, "--topic expects")
    kcli("restore", str(archive), "--topic", f"{topic_name}=bad name").fails(
        2, "not a valid topic name")
    kcli("restore", str(archive), "--topic", f"{topic_name}=a", "--topic",
         f"{topic_name}=b").fails(2, f"names '{topic_name}' twice")
    kcli("migrate", topic_name, "x", "--to", "127.0.0.1:1", "--rename", f"{topic_name}=y",
         "--rename", "x=y").fails(2, "two topics to the same name")
    kcli("migrate", topic_name, "--to", "127.0.0.1:1", "--rename", topic_name).fails(
        2, "--rename expects OLD=NEW")
    # options before a backup subcommand go to it, not to an implied `run`
    assert orjson.loads(kcli("backup", "-o", "json", "ls", str(archive)).ok().out)[
        "records"] == 200
    kcli("backup", "-q", "verify", str(archive)).ok()
    kcli("restore", str(archive), "--topic", "unknown=x").fails(4, "has no topic 'unknown'")
    kcli("migrate", topic_name).fails(2, "--to")
    kcli("migrate", topic_name, "--to", "no-such-profile").fails(4, "no profile")
    unreachable = ("-b", "127.0.0.1:1", "--timeout", "3")
    run_kcli(*unreachable, "backup", topic_name, "--to", str(tmp_path / "u")).fails(
        3, "cannot reach 127.0.0.1:1")
    run_kcli(*unreachable, "restore", str(archive)).fails(3, "127.0.0.1:1")
    kcli("migrate", topic_name, "--to", "127.0.0.1:1", "--timeout", "3").fails(
        3, "127.0.0.1:1")
    (tmp_path / "notempty").mkdir()
    (tmp_path / "notempty" / "file").write_text("x")
    kcli("backup", topic_name, "--to", str(tmp_path / "notempty")).fails(2, "not empty")


def test_existing_topic_with_other_partitions(kcli: Kcli, bootstrap: str, archive: Path,
                                              topic_name: str) -> None:
    target = f"{topic_name}-five"
    create_topic(bootstrap, target, 5)
    kcli("restore", str(archive), "--topic", f"{topic_name}={target}").fails(
        1, "exists with 5 partitions; the archive has 2.*--repartition")


def test_non_empty_target_without_checkpoint(kcli: Kcli, bootstrap: str, archive: Path,
                                             topic_name: str) -> None:
    kcli("restore", str(archive)).fails(1, f"{topic_name}\\[0\\] already holds 100 records "
                                           "and there is no checkpoint")
