"""The files on disk are Kafka's: names, index entry formats, epoch checkpoint."""

from __future__ import annotations

import struct
from pathlib import Path

from kcli.broker.log import LogConfig, PartitionLog, iter_batches
from tests.broker.log.helpers import client_batch


def test_files_match_kafkas_layout(tmp_path: Path) -> None:
    directory = tmp_path / "orders-3"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=1_500, index_interval_bytes=1))
    stamps = [500, 400, 900, 900, 1_200, 50, 1_300, 1_250]
    for i, ts in enumerate(stamps):
        log.append(
            client_batch(2, value_size=90, timestamp=ts), leader_epoch=i // 4, log_append_time=None
        )
    segments = log.segments()
    log.close()
    assert len(segments) > 1
    for info in segments:
        name = f"{info.base_offset:020d}"
        data = (directory / f"{name}.log").read_bytes()
        batches = list(iter_batches(data))
        assert sum(b.size for b in batches) == len(data)
        # .index: (last offset - base, position) for every batch after the first (interval 1)
        raw = (directory / f"{name}.index").read_bytes()
        entries = list(struct.iter_unpack(">ii", raw))
        assert entries == [(b.last_offset - info.base_offset, b.position) for b in batches[1:]]
        # .timeindex: (max timestamp so far, offset of the batch that set it), rising
        raw = (directory / f"{name}.timeindex").read_bytes()
        times = list(struct.iter_unpack(">qi", raw))
        running: list[tuple[int, int]] = []
        best = -1
        for b in batches:
            if b.max_timestamp > best:
                best = b.max_timestamp
                running.append((best, b.last_offset - info.base_offset))
        assert times
        assert times[-1] == running[-1]  # sealed with the segment's largest timestamp
        assert set(times) <= set(running)
        assert [t for t, _ in times] == sorted({t for t, _ in times})
    assert (directory / "leader-epoch-checkpoint").read_text() == "0\n2\n0 0\n1 8\n"
