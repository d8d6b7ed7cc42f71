"""Builders and models shared by the log storage tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kcli.broker.log import PartitionLog, Record, decode_records, encode_batch, iter_batches

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def client_batch(
    count: int = 1,
    *,
    value_size: int = 10,
    timestamp: int = 1_000,
    compression: int = 0,
    timestamps: Sequence[int] | None = None,
    producer_id: int = -1,
) -> bytearray:
    """A batch as a producer sends it: base offset 0, one record per offset."""
    stamps = list(timestamps) if timestamps is not None else [timestamp + i for i in range(count)]
    records = [
        Record(i, stamps[i], f"k{i}".encode(), bytes([i % 251]) * value_size, [])
        for i in range(len(stamps))
    ]
    return bytearray(encode_batch(records, compression=compression, producer_id=producer_id))


def rebuilt(template: bytes, body: bytes, *, count: int | None = None,
            codec: int | None = None) -> bytes:
    """`template`'s header around the records section `body`, with the batch length, the
    count and lastOffsetDelta (if given), the codec (if given) and the CRC made right."""
    out = bytearray(template[:61]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    if codec is not None:
        struct.pack_into(">h", out, 21, codec)
    if count is not None:
        struct.pack_into(">i", out, 23, count - 1)
        struct.pack_into(">i", out, 57, count)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def patch(batch: bytes | bytearray, fmt: str, pos: int, value: int, *, fix_crc: bool) -> bytes:
    """A copy of `batch` with one field overwritten (and the CRC recomputed if asked)."""
    out = bytearray(batch)
    struct.pack_into(fmt, out, pos, value)
    if fix_crc:
        struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


@dataclass
class Stored:
    """One batch as the log should hold it."""

    base_offset: int
    last_offset: int
    data: bytes


class Model:
    """What a PartitionLog should contain, kept by the test alongside it."""

    def __init__(self) -> None:
        self.batches: list[Stored] = []
        self.log_start = 0
        self.end = 0

    def add(self, base_offset: int, last_offset: int, data: bytes) -> None:
        assert base_offset == self.end
        self.batches.append(Stored(base_offset, last_offset, data))
        self.end = last_offset + 1

    def truncate(self, offset: int) -> None:
        """truncate_to: whole batches go, one straddling `offset` too."""
        if offset >= self.end:
            return
        if offset < self.log_start:
            self.start_empty(offset)
            return
        dropped = [b for b in self.batches if b.last_offset >= offset]
        self.batches = [b for b in self.batches if b.last_offset < offset]
        if dropped:
            self.end = dropped[0].base_offset
        if self.end < self.log_start:
            self.start_empty(self.log_start)

    def cut_tail(self, offset: int) -> None:
        """Recovery cut the log at `offset` (a batch boundary); it keeps its start offset."""
        self.batches = [b for b in self.batches if b.last_offset < offset]
        self.end = offset
        if self.end < self.log_start:
            self.start_empty(self.log_start)

    def start_empty(self, offset: int) -> None:
        self.batches = []
        self.log_start = self.end = offset

    def read(self, offset: int, max_bytes: int, upper_bound: int | None = None) -> bytes:
        bound = self.end if upper_bound is None else min(upper_bound, self.end)
        out: list[bytes] = []
        total = 0
        for stored in self.batches:
            if stored.last_offset < offset:
                continue
            if stored.base_offset >= bound:
                break
            if out and total + len(stored.data) > max_bytes:
                break
            out.append(stored.data)
            total += len(stored.data)
        return b"".join(out)

    def records(self) -> list[Record]:
        result: list[Record] = []
        for stored in self.batches:
            (header,) = iter_batches(stored.data)
            result.extend(decode_records(stored.data, header))
        return result

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        for record in self.records():
            if record.offset >= self.log_start and record.timestamp >= timestamp:
                return record.offset, record.timestamp
        return None

    def max_timestamp(self, from_offset: int = 0) -> tuple[int, int] | None:
        """Over the records of batches from `from_offset` (the first segment) on."""
        best: tuple[int, int] | None = None
        for record in self.records():
            if record.offset < from_offset:
                continue
            if record.timestamp >= 0 and (best is None or record.timestamp > best[0]):
                best = (record.timestamp, record.offset)
        return best


def crash_copy(log: PartitionLog, destination: Path) -> Path:
    """The log's files as a killed process would leave them: no clean-shutdown marker,
    everything written to the OS present."""
    shutil.copytree(log.directory, destination)
    return destination


def all_bytes(log: PartitionLog) -> bytes:
    if log.log_end_offset == log.log_start_offset:
        return b""
    return log.read(log.log_start_offset, 1 << 40)


record_keys = st.one_of(st.none(), st.binary(max_size=20))
header_lists = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "é", "", "trace-id"]),
        st.one_of(st.none(), st.binary(max_size=8)),
    ),
    max_size=4,
)


@st.composite
def record_lists(draw: st.DrawFn, max_size: int = 12) -> list[Record]:
    """Records with rising offsets (gaps allowed) from 0 and arbitrary timestamps."""
    count = draw(st.integers(min_value=1, max_value=max_size))
    offset = 0
    base_ts = draw(st.integers(min_value=0, max_value=2**41))
    records = []
    for i in range(count):
        if i:
            offset += draw(st.integers(min_value=1, max_value=3))
        records.append(
            Record(
                offset,
                base_ts + draw(st.integers(min_value=-10_000, max_value=10_000)),
                draw(record_keys),
                draw(st.one_of(st.none(), st.binary(max_size=40))),
                draw(header_lists),
            )
        )
    return records


@contextlib.contextmanager
def closing_every_log() -> Iterator[None]:
    """Release the files of every PartitionLog opened meanwhile, when done (without writing
    anything: tests abandon logs mid-operation, as a crash would)."""
    opened: list[PartitionLog] = []
    original = PartitionLog.open.__func__  # type: ignore[attr-defined]

    def tracking(cls: type[PartitionLog], *args: object, **kwargs: object) -> PartitionLog:
        log = original(cls, *args, **kwargs)
        opened.append(log)
        return log

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PartitionLog, "open", classmethod(tracking))
        try:
            yield
        finally:
            for log in opened:
                if not log.closed:
                    log._close_files()
            for directory in {log.directory for log in opened}:
                _close_descriptors_under(directory)


def abandon(log: PartitionLog) -> None:
    """Close the log's files as a crash would: nothing written, no marker, and every
    descriptor under its directory closed (a cleaner's half-swapped output included)."""
    if not log.closed:
        log._close_files()
    _close_descriptors_under(log.directory)


def _close_descriptors_under(directory: Path) -> None:
    prefix = str(directory) + os.sep
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}").startswith(prefix):
                os.close(int(name))
