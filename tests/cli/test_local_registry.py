"""The local cluster registry: a bootstrap only while a listed broker process lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcli.local.registry import current_bootstrap


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KCLI_STATE_DIR", str(tmp_path))
    return tmp_path / "cluster.json"


def test_no_file(state: Path) -> None:
    assert current_bootstrap() is None


def test_live_and_dead_pids(state: Path) -> None:
    state.write_text('{"bootstrap": "127.0.0.1:9092", "data_dir": "d", "brokers": '
                     f'[{{"node_id": 1, "port": 9092, "pid": {2**22 + 1}}}, '
                     f'{{"node_id": 2, "port": 9093, "pid": {os.getpid()}}}]}}')
    assert current_bootstrap() == "127.0.0.1:9092"
    state.write_text('{"bootstrap": "127.0.0.1:9092", "brokers": '
                     f'[{{"node_id": 1, "port": 9092, "pid": {2**22 + 1}}}]}}')
    assert current_bootstrap() is None


@pytest.mark.parametrize("text", ["not json", "[]", '{"bootstrap": 1, "brokers": []}',
                                  '{"bootstrap": "x:1", "brokers": [{"pid": "12"}]}'])
def test_malformed(state: Path, text: str) -> None:
    state.write_text(text)
    assert current_bootstrap() is None
