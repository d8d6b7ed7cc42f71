"""Random sequences of every PartitionLog operation against a simple model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kcli.broker.log import LogConfig, PartitionLog, Record, encode_batch
from kcli.broker.log.descriptors import descriptors
from tests.broker.log.helpers import Model, all_bytes, client_batch

CONFIGS = [
    LogConfig(segment_bytes=800, index_interval_bytes=100),
    LogConfig(segment_bytes=2_500, index_interval_bytes=1),
    LogConfig(segment_bytes=1 << 20, index_interval_bytes=4096),
]


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.generation = 0
        self.config = CONFIGS[0]
        self.log = PartitionLog.open(self.root / "g0", self.config)
        self.model = Model()
        self.epoch = 0
        self.epochs: list[tuple[int, int]] = []
        self.ts = 1_000

    def teardown(self) -> None:
        self.log.close()
        self.tmp.cleanup()

    @rule(
        count=st.integers(1, 4),
        size=st.sampled_from([0, 30, 200, 700]),
        codec=st.integers(0, 4),
        append_time=st.booleans(),
        ts_step=st.integers(-50, 100),
        new_epoch=st.booleans(),
    )
    def append(
        self, count: int, size: int, codec: int, append_time: bool, ts_step: int, new_epoch: bool
    ) -> None:
        self.ts += ts_step
        self.epoch += new_epoch
        batch = client_batch(count, value_size=size, timestamp=self.ts, compression=codec)
        info = self.log.append(
            batch, leader_epoch=self.epoch, log_append_time=self.ts + 5 if append_time else None
        )
        assert info.base_offset == self.model.end
        self.model.add(info.base_offset, info.last_offset, bytes(batch))
        self._note_epoch(self.epoch, info.base_offset)

    @rule(count=st.integers(1, 3), batches=st.integers(1, 3), new_epoch=st.booleans())
    def append_replicated(self, count: int, batches: int, new_epoch: bool) -> None:
        self.epoch += new_epoch
        data = []
        offset = self.model.end
        for _ in range(batches):
            records = [Record(offset + i, self.ts + i, None, b"r", []) for i in range(count)]
            batch = encode_batch(records, base_offset=offset, partition_leader_epoch=self.epoch)
            self.model.add(offset, offset + count - 1, batch)
            self._note_epoch(self.epoch, offset)
            data.append(batch)
            offset += count
        self.log.append_replicated(b"".join(data))

    def _note_epoch(self, epoch: int, offset: int) -> None:
        if not self.epochs or epoch > self.epochs[-1][0]:
            self.epochs = [(e, s) for e, s in self.epochs if s < offset]
            self.epochs.append((epoch, offset))

    def _epochs_end_at(self, end: int) -> None:
        self.epochs = [(e, s) for e, s in self.epochs if s < end]

    def _epochs_start_at(self, start: int) -> None:
        before = [e for e in self.epochs if e[1] <= start]
        if before:
            self.epochs = [(before[-1][0], start)] + [e for e in self.epochs if e[1] > start]

    @rule(
        offset_seed=st.integers(0, 10**6),
        max_bytes=st.sampled_from([0, 100, 1_000, 5_000, 1 << 20]),
        bound_seed=st.integers(0, 10**6),
    )
    def read(self, offset_seed: int, max_bytes: int, bound_seed: int) -> None:
        model = self.model
        offset = model.log_start + offset_seed % (model.end - model.log_start + 1)
        bound = None if bound_seed % 3 == 0 else bound_seed % (model.end + 2)
        assert self.log.read(offset, max_bytes, upper_bound=bound) == model.read(
            offset, max_bytes, bound
        )

    @rule(target_seed=st.integers(-1, 10**6))
    def timestamps(self, target_seed: int) -> None:
        target = 900 + target_seed % 2_000 if target_seed >= 0 else -1
        assert self.log.offset_for_timestamp(target) == self.model.offset_for_timestamp(target)
        first_segment = self.log.segments()[0].base_offset
        assert self.log.max_timestamp() == self.model.max_timestamp(first_segment)

    @rule(seed=st.integers(0, 10**6))
    def delete_records(self, seed: int) -> None:
        model = self.model
        offset = model.log_start + seed % (model.end - model.log_start + 1)
        before = model.log_start
        assert self.log.delete_records_before(offset) == max(offset, before)
        if offset > before:
            model.log_start = offset
            self._epochs_start_at(offset)

    @rule(seed=st.integers(0, 10**6))
    def truncate(self, seed: int) -> None:
        offset = seed % (self.model.end + 1)
        self.log.truncate_to(offset)
        if offset >= self.model.end:  # only epochs starting at the end go
            self.epochs = [(e, start) for e, start in self.epochs if start < self.model.end]
            return
        if offset < self.model.log_start:
            self.epochs = []
        self.model.truncate(offset)
        self._epochs_end_at(self.model.end)

    @rule()
    def flush(self) -> None:
        self.log.flush()

    @rule(config=st.sampled_from(CONFIGS))
    def reconfigure(self, config: LogConfig) -> None:
        self.config = config
        self.log.update_config(config)

    def _next_directory(self) -> Path:
        self.generation += 1
        return self.root / f"g{self.generation}"

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.log.directory, self.config)
        self._epochs_end_at(self.model.end)  # as Kafka: an epoch without data is forgotten

    @rule(tear=st.integers(0, 10**6))
    def crash(self, tear: int) -> None:
        """Copy the files as a killed process leaves them, maybe tearing the last write."""
        target = self._next_directory()
        shutil.copytree(self.log.directory, target)
        self.log.close()
        shutil.rmtree(self.log.directory)
        segments = sorted(target.glob("*.log"))
        last = self.model.batches[-1] if self.model.batches else None
        segment = segments[-1]
        size = segment.stat().st_size
        if (
            tear % 2
            and last is not None
            and last.base_offset >= int(segment.stem)
            and last.last_offset + 1 == self.model.end
            and size >= len(last.data)
        ):
            cut = 1 + tear % len(last.data)
            os.truncate(segment, size - cut)
            self.model.cut_tail(last.base_offset)
        self._epochs_end_at(self.model.end)
        self._epochs_start_at(self.model.log_start)
        self.log = PartitionLog.open(target, self.config)

    @invariant()
    def offsets_agree(self) -> None:
        assert self.log.log_end_offset == self.model.end
        assert self.log.log_start_offset == self.model.log_start
        assert self.log.leader_epochs == self.epochs

    @precondition(lambda self: self.model.end - self.model.log_start < 200)
    @invariant()
    def everything_readable(self) -> None:
        model = self.model
        assert all_bytes(self.log) == model.read(model.log_start, 1 << 40)


LogMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogMachine = LogMachine.TestCase


TINY = 2


class TinyCacheLogMachine(LogMachine):
    """The same sequences with the process's descriptor cache holding two files, so
    that reads, appends, rolls, truncations and recoveries meet files it closed."""

    def __init__(self) -> None:
        self._capacity = descriptors.capacity
        descriptors.set_capacity(TINY)
        super().__init__()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            descriptors.set_capacity(self._capacity)

    @invariant()
    def within_the_bound(self) -> None:
        assert len(descriptors) <= TINY


TinyCacheLogMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTinyCacheLogMachine = TinyCacheLogMachine.TestCase
