"""What one partition knows of transactions: which producers have one open here and
from which offset, the last stable offset, and the aborted-transaction index.

Kafka keeps this in its ``ProducerStateManager`` (``currentTxnFirstOffset`` per
producer, the ongoing and unreplicated transactions) and its ``TransactionIndex``: a
``<base offset>.txnindex`` file beside the segment that holds each ABORT marker, of
34-byte entries (i16 version 0, producer id, first offset, last offset, last stable
offset). The same layout here. Only aborts are indexed: a read_committed consumer asks
which producers' data in a range it must drop.

Durability follows the producer state: a snapshot of the open transactions is written
on a clean close and used only when it matches the log end; otherwise everything,
index files included, is rebuilt from the log (``rebuild``).
"""

from __future__ import annotations

import json
import logging
import os
import struct
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kcli.broker.log import iter_batches
from kcli.broker.txn.markers import read_marker
from kcli.durable import write_atomically

if TYPE_CHECKING:
    from kcli.broker.log import PartitionLog

log = logging.getLogger("kcli.broker")

INDEX_SUFFIX = ".txnindex"
SNAPSHOT_FILE = "transaction-state.json"
_ENTRY = struct.Struct(">hqqqq")  # 34 bytes, as Kafka's AbortedTxn


class AbortedTxn(NamedTuple):
    """One aborted transaction on this partition: its data lies in
    [first_offset, last_offset], the last offset being its ABORT marker's."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


@dataclass(slots=True)
class PartitionTxns:
    """Open and aborted transactions of one partition replica."""

    directory: Path
    open: dict[int, int] = field(default_factory=dict)
    """Producer id -> first offset of its transaction open on this partition."""
    coordinator_epochs: dict[int, int] = field(default_factory=dict)
    """Producer id -> the highest coordinator epoch of a marker written for it: a marker
    from an older coordinator is refused (TRANSACTION_COORDINATOR_FENCED)."""
    decided: list[tuple[int, int]] = field(default_factory=list)
    """(first offset, marker offset) of ended transactions whose marker may still be
    above the high watermark: they hold the last stable offset until it is not."""
    aborted: list[AbortedTxn] = field(default_factory=list)
    """In marker order."""
    snapshot: bytes | None = None
    """The snapshot file's content as last read or written: a close that would write the
    same bytes writes nothing (an fsync per partition)."""

    # ------------------------------------------------------------------ queries

    def first_unstable_offset(self, high_watermark: int) -> int | None:
        """The first offset of the earliest transaction not yet stable: open, or ended
        by a marker the in-sync replicas do not all have yet."""
        if self.decided:
            self.decided = [(first, end) for first, end in self.decided if end >= high_watermark]
        firsts = [first for first, _ in self.decided]
        firsts.extend(self.open.values())
        return min(firsts) if firsts else None

    def aborted_in(self, start: int, upper: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a read of
        [start, upper) must know: those ending at or after ``start`` and starting below
        ``upper`` (Kafka's ``collectAbortedTxns``)."""
        # in marker order, so in last-offset order: skip the ones that ended before start
        first = bisect_left(self.aborted, start, key=lambda a: a.last_offset)
        return [(a.producer_id, a.first_offset) for a in self.aborted[first:]
                if a.first_offset < upper]

    # ------------------------------------------------------------------ changes

    def on_data(self, producer_id: int, base_offset: int) -> None:
        """A transactional batch of ``producer_id`` was appended at ``base_offset``."""
        self.open.setdefault(producer_id, base_offset)

    def on_marker(self, producer_id: int, commit: bool, coordinator_epoch: int,
                  marker_offset: int, last_stable_offset: int, segment_base: int,
                  *, write_index: bool = True) -> None:
        """A marker for ``producer_id`` was appended at ``marker_offset``, in the segment
        starting at ``segment_base``."""
        if coordinator_epoch > self.coordinator_epochs.get(producer_id, -1):
            self.coordinator_epochs[producer_id] = coordinator_epoch
        first = self.open.pop(producer_id, None)
        if first is None:
            return  # nothing of the transaction reached this partition
        self.decided.append((first, marker_offset))
        if commit:
            return
        entry = AbortedTxn(producer_id, first, marker_offset, last_stable_offset)
        self.aborted.append(entry)
        if write_index:
            self._append_to_index(segment_base, entry)

    def forget_before(self, log_start_offset: int) -> None:
        """Drop the index entries of aborted transactions wholly below the log start
        (retention or DeleteRecords removed their data)."""
        if not self.aborted or self.aborted[0].last_offset >= log_start_offset:
            return
        self.aborted = [a for a in self.aborted if a.last_offset >= log_start_offset]
        self._rewrite_index()

    # ------------------------------------------------------------------ index files

    def _index_path(self, segment_base: int) -> Path:
        return self.directory / f"{segment_base:020d}{INDEX_SUFFIX}"

    def _append_to_index(self, segment_base: int, entry: AbortedTxn) -> None:
        try:
            with open(self._index_path(segment_base), "ab") as file:
                file.write(_ENTRY.pack(0, *entry))
        except OSError as error:  # the index is rebuilt from the log after a restart
            log.error("%s: cannot write the transaction index: %s", self.directory, error)

    def _index_files(self) -> Iterator[tuple[int, Path]]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            stem = name[:-len(INDEX_SUFFIX)]
            if name.endswith(INDEX_SUFFIX) and stem.isdigit():
                yield int(stem), self.directory / name

    def _rewrite_index(self, segment_bases: list[int] | None = None) -> None:
        """Write the index files anew from ``aborted``: each entry in the file of the
        segment its marker is in (given the segments' base offsets), else in the file
        it is in now."""
        current: dict[int, int] = {}  # marker offset -> file it is in
        for base, path in self._index_files():
            for entry in _read_index(path):
                current[entry.last_offset] = base
        files: dict[int, list[AbortedTxn]] = {}
        for entry in self.aborted:
            if segment_bases:
                base = max((b for b in segment_bases if b <= entry.last_offset),
                           default=segment_bases[0])
            else:
                base = current.get(entry.last_offset, 0)
            files.setdefault(base, []).append(entry)
        try:
            for base, path in list(self._index_files()):
                if base not in files:
                    path.unlink(missing_ok=True)
            for base, entries in files.items():
                write_atomically(self._index_path(base),
                                 b"".join(_ENTRY.pack(0, *e) for e in entries))
        except OSError as error:
            log.error("%s: cannot rewrite the transaction index: %s", self.directory, error)

    # ------------------------------------------------------------------ durability

    def save(self, log_end_offset: int) -> None:
        """Snapshot the open transactions for a log ending at ``log_end_offset``."""
        doc = {"log_end_offset": log_end_offset,
               "open": {str(p): first for p, first in self.open.items()},
               "coordinator_epochs": {str(p): e for p, e in self.coordinator_epochs.items()},
               "decided": self.decided}
        data = json.dumps(doc).encode()
        if data == self.snapshot:
            return
        try:
            write_atomically(self.directory / SNAPSHOT_FILE, data)
            self.snapshot = data
        except OSError as error:
            log.error("%s: cannot write the transaction snapshot: %s", self.directory, error)

    @classmethod
    def load(cls, directory: Path, log_start_offset: int, log_end_offset: int
             ) -> PartitionTxns | None:
        """The state a clean close left for exactly this log end, with the index files;
        None when there is none (rebuild). A log that grew since (a crash) ends
        elsewhere; one cut back removes the snapshot (``truncated``)."""
        path = directory / SNAPSHOT_FILE
        try:
            data = path.read_bytes()
            doc = json.loads(data)
            if int(doc["log_end_offset"]) != log_end_offset:
                return None
            txns = cls(directory,
                       {int(p): int(f) for p, f in doc["open"].items()},
                       {int(p): int(e) for p, e in doc["coordinator_epochs"].items()},
                       [(int(a), int(b)) for a, b in doc["decided"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: ignoring an unreadable transaction snapshot: %s", directory, error)
            return None
        entries = [entry for _, index_path in sorted(txns._index_files())
                   for entry in _read_index(index_path)]
        txns.aborted = sorted((e for e in entries
                               if log_start_offset <= e.last_offset < log_end_offset),
                              key=lambda e: e.last_offset)
        txns.snapshot = data
        return txns

    @classmethod
    def rebuild(cls, directory: Path, log: PartitionLog) -> PartitionTxns:
        """Replay the log's transactional batches and markers (reading only the control
        batches), and write the index files anew."""
        txns = cls(directory)
        for header in log.batch_headers():
            if not header.is_transactional:
                continue
            if not header.is_control:
                txns.on_data(header.producer_id, header.base_offset)
                continue
            data = log.read(header.base_offset, header.size, upper_bound=header.next_offset)
            stored = next(iter_batches(data), None)
            marker = read_marker(data, stored) if stored is not None else None
            if marker is not None:
                txns.on_marker(header.producer_id, marker.commit, marker.coordinator_epoch,
                               header.base_offset, header.base_offset, 0, write_index=False)
        txns.decided = []  # rebuilt from a log whose replicas are not known: see rebuilt()
        txns._rewrite_index([s.base_offset for s in log.segments()])
        return txns

    def truncated(self, partition_log: PartitionLog) -> PartitionTxns:
        """The state after the log was cut back (a follower's divergence): rebuilt. The
        snapshot goes: the log may grow back to its end with other batches."""
        try:
            (self.directory / SNAPSHOT_FILE).unlink(missing_ok=True)
        except OSError as error:
            log.warning("%s: cannot remove the transaction snapshot: %s", self.directory,
                        error)
        return PartitionTxns.rebuild(self.directory, partition_log)


def _read_index(path: Path) -> list[AbortedTxn]:
    try:
        data = path.read_bytes()
    except OSError as error:
        log.warning("cannot read %s: %s", path, error)
        return []
    entries = []
    for start in range(0, len(data) - _ENTRY.size + 1, _ENTRY.size):
        version, *fields = _ENTRY.unpack_from(data, start)
        if version == 0:
            entries.append(AbortedTxn(*fields))
    return entries
