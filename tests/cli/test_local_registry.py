"""The local cluster registry: which cluster a command without -b means, or why none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kcli.errors import BadInput, NotFound, Unreachable
from kcli.local import registry
from kcli.local.registry import choose, current_bootstrap, known_clusters, name_for

DEAD_PID = 2**22 + 1  # beyond pid_max: never alive


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KCLI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "state"


def register(state: Path, data_dir: Path, port: int, pid: int, name: str | None = None,
             ) -> None:
    """What the supervisor writes: the data dir's record and the registry entry."""
    doc = {"name": name or name_for(data_dir), "bootstrap": f"127.0.0.1:{port}",
           "data_dir": str(data_dir), "brokers": [{"node_id": 1, "port": port, "pid": pid}]}
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "cluster.json").write_text(json.dumps(doc))
    (state / "clusters").mkdir(parents=True, exist_ok=True)
    (state / "clusters" / f"{doc['name']}.json").write_text(json.dumps(doc))


def test_none_known(state: Path) -> None:
    assert choose() is None
    assert current_bootstrap() is None


def test_the_one_running_cluster(state: Path, tmp_path: Path) -> None:
    register(state, registry.default_data_dir(), 9092, os.getpid())
    register(state, tmp_path / "other", 19092, DEAD_PID)
    chosen = choose()
    assert chosen is not None
    assert chosen.name == "default"
    assert current_bootstrap() == "127.0.0.1:9092"
    assert [c.name for c in known_clusters()] == ["default", "other"]


def test_several_running_is_a_question_not_a_guess(state: Path, tmp_path: Path) -> None:
    register(state, tmp_path / "a", 1001, os.getpid())
    register(state, tmp_path / "b", 1002, os.getpid())
    with pytest.raises(BadInput, match=r"2 local clusters are running.*--cluster NAME"):
        choose()
    assert current_bootstrap() is None
    chosen = choose("b")
    assert chosen is not None
    assert chosen.bootstrap == "127.0.0.1:1002"
    with pytest.raises(NotFound, match=r"no local cluster named 'c' \(known: a, b\)"):
        choose("c")


def test_a_stopped_cluster_is_not_replaced_by_localhost(state: Path, tmp_path: Path) -> None:
    register(state, tmp_path / "mine", 19092, DEAD_PID)
    with pytest.raises(Unreachable, match=r"the local cluster \(.*mine\) is stopped; start it "
                                          r"with `kcli cluster start --data-dir .*mine`"):
        choose()
    register(state, registry.default_data_dir(), 9092, DEAD_PID)
    with pytest.raises(Unreachable, match=r"no local cluster is running \(known: default"):
        choose()
    with pytest.raises(Unreachable, match=r"start it with `kcli cluster start`"):
        choose("default")


def test_purged_and_malformed_entries_are_ignored(state: Path, tmp_path: Path) -> None:
    register(state, tmp_path / "gone", 1, os.getpid())
    (tmp_path / "gone" / "cluster.json").unlink()  # purged by hand
    for text in ["not json", "[]", '{"bootstrap": 1, "brokers": []}',
                 '{"bootstrap": "x:1", "data_dir": 3, "brokers": []}']:
        (state / "clusters" / "bad.json").write_text(text)
        assert known_clusters() == []
        assert choose() is None


def test_the_old_single_pointer_is_still_read(state: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    doc = {"bootstrap": "127.0.0.1:9", "data_dir": str(data_dir),
           "brokers": [{"node_id": 1, "port": 9, "pid": os.getpid()}]}
    (data_dir / "cluster.json").write_text(json.dumps(doc))
    state.mkdir()
    (state / "cluster.json").write_text(json.dumps(doc))
    chosen = choose()
    assert chosen is not None
    assert (chosen.name, chosen.bootstrap) == ("old", "127.0.0.1:9")


def test_names_are_unique_and_safe(state: Path, tmp_path: Path) -> None:
    register(state, tmp_path / "x" / "dev", 1, DEAD_PID)
    assert name_for(tmp_path / "x" / "dev") == "dev"  # its own name again
    assert name_for(tmp_path / "y" / "dev") == "dev-2"
    assert name_for(tmp_path / "my cluster!") == "my-cluster"
    assert name_for(registry.default_data_dir()) == "default"
