"""A topic the log cleaner really compacted: its offset gaps and tombstones are backed up
as they are, restored in order, and a group committed inside a gap resumes at the next
surviving record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from tests.backup.conftest import commit, committed, read_all
from tests.broker.test_compaction import (
    COMPACT,
    FAST_CLEANER,
    create,
    filler,
    keyed_updates,
    produce,
    survivors,
    wait_for,
)
from tests.cli.conftest import Kcli
from tests.support.broker import BrokerProcess


def test_compacted_gaps_and_tombstones(run_kcli: Kcli, make_broker: Callable[..., BrokerProcess],
                                       tmp_path: Path) -> None:
    broker = make_broker(settings=FAST_CLEANER).start()
    bootstrap = broker.bootstrap
    create(bootstrap, "compacted", **COMPACT, **{"delete.retention.ms": "3600000"})
    produced = produce(bootstrap, "compacted",
                       keyed_updates(800, 30, seed=5, tombstones=0.1) + filler(6, "fill"))
    expected = survivors(produced)

    def offsets() -> list[int]:
        return [r.offset for r in read_all(bootstrap, "compacted")]

    wait_for(lambda: offsets() == [o for o, _k, _v in expected], what="compaction")
    kept = [o for o, _k, _v in expected]
    inside_gap = next(o for o in range(kept[0], kept[-1]) if o not in kept)
    commit(bootstrap, "reader", {("compacted", 0): (inside_gap, "in a gap")})

    archive = tmp_path / "archive"
    run_kcli("-b", bootstrap, "backup", "compacted", "--to", str(archive)).ok()
    run_kcli("backup", "verify", str(archive)).ok()
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    partition = manifest["topics"][0]["partitions"][0]
    assert partition["record_count"] == len(expected)
    assert partition["gaps"], "the compacted offsets are recorded as gaps"
    assert sum(b - a for a, b in partition["gaps"]) == len(produced) - len(expected)

    done = orjson.loads(run_kcli("-b", bootstrap, "restore", str(archive), "--topic",
                                 "compacted=copy", "--groups", "-o", "json").ok().out)
    assert done["topics"][0]["copied"] == len(expected)
    source = read_all(bootstrap, "compacted")
    copy = read_all(bootstrap, "copy")
    assert [r.content for r in copy] == [r.content for r in source]
    assert [r.offset for r in copy] == list(range(len(expected)))  # no gaps on the target
    assert any(r.value is None for r in copy), "tombstones are kept"
    # the group resumes at the first record that survived after its committed offset
    following = next(i for i, r in enumerate(source) if r.offset >= inside_gap)
    assert committed(bootstrap, "reader", "copy") == {0: (following, "in a gap")}
