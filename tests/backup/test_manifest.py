"""Manifest and checkpoint documents: round trips, strict loading, sizes on the CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kcli.backup.manifest import (
    Checkpoint,
    FileEntry,
    Manifest,
    PartitionEntry,
    RunEntry,
    SegmentEntry,
    TopicEntry,
    TopicPlan,
    check_partition,
    merge_gaps,
    record_runs,
    segment_path,
    write_json_atomic,
)
from kcli.backup.records import ArchiveCorrupt
from kcli.cli.backup import parse_size
from kcli.errors import BadInput


def sample() -> Manifest:
    segment = SegmentEntry(segment_path("t", 0, 0), 1, 0, 10, 0, 9, 8, 5, 9, 100, 200,
                           "zstandard", "ab" * 32)
    partition = PartitionEntry(0, 0, 10, 8, 0, 9, 0, 10, 10, 10, 2, 50, [(3, 4), (6, 7)],
                               [segment])
    return Manifest("id", "cluster", "b:9092", 1, 2, FileEntry("cluster/topics.json", 3, "x"),
                    FileEntry("cluster/groups.avro", 4, "y"), 1, [TopicEntry("t", [partition])],
                    [RunEntry(1, "run", 1, 2, "zstandard", ["t"])])


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = sample()
    path = tmp_path / "manifest.json"
    write_json_atomic(path, manifest.to_dict())
    assert Manifest.parse(orjson.loads(path.read_bytes()), str(path)) == manifest
    assert segment_path("t", 0, 0) == "topics/t/p=0/seg-00000000000000000000.avro"
    assert oct(path.stat().st_mode & 0o777) != "0o600"
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_checkpoint_round_trip() -> None:
    manifest = sample()
    checkpoint = Checkpoint(2, "run", "id", 1, {"patterns": ["t"]}, "c", "b", None,
                            manifest.topics_file, manifest.groups_file, 0,
                            [TopicPlan("t", manifest.topics[0].partitions, {0: 10})])
    assert Checkpoint.parse(orjson.loads(orjson.dumps(checkpoint.to_dict())), "x") == checkpoint


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format="other"), "not a kcli archive"),
    (lambda d: d.update(version=99), "newer than this kcli"),
    (lambda d: d["topics"][0]["partitions"][0].update(next_offset="10"), "wrong type"),
    (lambda d: d["topics"][0]["partitions"][0].update(gaps=[[1]]), "offset pairs"),
    (lambda d: d["topics"][0]["partitions"][0]["segments"][0].update(path="/etc/passwd"),
     "outside the archive"),
    (lambda d: d["source"].pop("bootstrap"), "source.bootstrap is missing"),
])
def test_strict_loading(change: object, message: str) -> None:
    data = orjson.loads(orjson.dumps(sample().to_dict()))
    change(data)  # type: ignore[operator]
    with pytest.raises(ArchiveCorrupt, match=message):
        Manifest.parse(data, "manifest.json")


def test_extended_and_gaps() -> None:
    first = sample().topics[0].partitions[0]
    later = PartitionEntry(0, 10, 20, 5, 15, 19, 0, 20, 20, 20, 0, 60, [(10, 15)], [])
    both = first.extended(later)
    assert (both.start_offset, both.next_offset, both.record_count) == (0, 20, 13)
    assert (both.first_offset, both.last_offset) == (0, 19)
    assert both.gaps == [(3, 4), (6, 7), (10, 15)]
    assert merge_gaps([(1, 3), (3, 5)], [(5, 6), (8, 8), (9, 10)]) == [(1, 6), (9, 10)]


def test_sizes() -> None:
    assert parse_size("64MB", "--x") == 64 << 20
    assert parse_size("1GiB", "--x") == 1 << 30
    assert parse_size("4096", "--x") == 4096
    with pytest.raises(BadInput, match="--x"):
        parse_size("lots", "--x")
    with pytest.raises(BadInput, match="at least"):
        parse_size("12", "--x")


def test_consistency_of_a_partition_entry() -> None:
    partition = sample().topics[0].partitions[0]
    check_partition("manifest.json", "t", partition)  # consistent: no error
    assert record_runs(0, 10, partition.gaps) == [(0, 3), (4, 6), (7, 10)]
    assert record_runs(4, 7, [(0, 5), (6, 9)]) == [(5, 6)]
    partition.segments[0].last_offset = 8
    with pytest.raises(ArchiveCorrupt, match=r"t\[0\]: segment .* has last offset 8, its "
                                             r"range \[0, 10\) less the gaps gives 9"):
        check_partition("manifest.json", "t", partition)
