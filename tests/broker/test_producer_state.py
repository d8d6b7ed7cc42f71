"""Producer-state snapshots: written when they change, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.broker import producer_state
from kcli.broker.producer_state import ProducerStateTable


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    written: list[Path] = []
    real = producer_state.write_atomically

    def counting(path: Path, data: bytes) -> None:
        written.append(path)
        real(path, data)

    monkeypatch.setattr(producer_state, "write_atomically", counting)
    return written


def test_an_unchanged_snapshot_is_not_written_again(tmp_path: Path, writes: list[Path]) -> None:
    table = ProducerStateTable()
    table.update(7, 0, 0, 2, 10, 1_000)
    table.save(tmp_path, 13)
    assert len(writes) == 1
    table.save(tmp_path, 13)  # a stop with nothing new: two fsyncs saved per partition
    loaded = ProducerStateTable.load(tmp_path, 13)
    assert loaded is not None
    loaded.save(tmp_path, 13)  # nor after a restart
    assert len(writes) == 1

    loaded.save(tmp_path, 14)  # the log moved on
    assert len(writes) == 2
    loaded.update(7, 0, 3, 0, 14, 2_000)  # a producer wrote
    loaded.save(tmp_path, 15)
    assert len(writes) == 3
    again = ProducerStateTable.load(tmp_path, 15)
    assert again is not None
    assert again.entries[7].batches[-1].first_offset == 14
