"""Opening a partition's log from its directory: Kafka's LogLoader.

In order: settle what a crash left half done (`*.deleted`, `*.cleaned` and `*.swap`
files, stray `.tmp` files and orphan indexes); open the segments; trust what the clean
shutdown marker (or, after a crash, the recovery point file) vouches for byte for byte and
scan everything else, cutting the log at the first torn or corrupt batch; then reconcile
the log start offset, the leader epoch cache and the cleaner checkpoint with what is left.
The result is the state a PartitionLog starts from.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kcli.broker.log import checkpoints
from kcli.broker.log._files import fsync_dir
from kcli.broker.log.checkpoints import GAPS_BELOW_FILE, Digest
from kcli.broker.log.epoch import CHECKPOINT_NAME, LeaderEpochCache
from kcli.broker.log.errors import CorruptBatch
from kcli.broker.log.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    LONG_MAX,
    SWAP_SUFFIX,
    Segment,
    parse_segment_name,
    segment_name,
)

__all__ = ["LoadedLog", "load_log"]

log = logging.getLogger("kcli.broker.log")


class LoadedLog(NamedTuple):
    """What `load_log` found and settled."""

    segments: list[Segment]
    """Oldest first; never empty."""
    log_start_offset: int
    log_end_offset: int
    recovery_point: int | None
    """From the recovery point file; None without one."""
    epochs: LeaderEpochCache
    gaps_below: int
    first_dirty_offset: int
    tombstone_deadline: int
    unsynced: list[Segment]
    """Segments whose files recovery rewrote: not yet fsynced."""
    dir_dirty: bool
    """Files were created, renamed or removed since the directory's last fsync."""
    clean_marker: bool
    """The clean shutdown marker was left in place: it vouches for every file as it is."""


def load_log(directory: Path, index_interval_bytes: int, clock: Callable[[], int]) -> LoadedLog:
    """Load the log in `directory` (which exists), recovering it after an unclean stop.

    The clean shutdown marker is removed, so from here on a crash does not look like a
    clean stop; the caller fsyncs what `unsynced` and `dir_dirty` say is pending.
    """
    loader = _LogLoader(directory, index_interval_bytes, clock)
    try:
        return loader.load()
    except BaseException:
        for segment in loader.segments:
            segment.close()
        raise


class _LogLoader:
    def __init__(
        self, directory: Path, index_interval_bytes: int, clock: Callable[[], int]
    ) -> None:
        self.directory = directory
        self.index_interval_bytes = index_interval_bytes
        self.clock = clock
        self.segments: list[Segment] = []
        self.bases: list[int] = []
        self.unsynced: list[Segment] = []
        self.dir_dirty = False
        self.epochs = LeaderEpochCache(directory / CHECKPOINT_NAME)  # read in load()
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.recovery_point: int | None = None
        self.gaps_below = 0

    def load(self) -> LoadedLog:
        directory = self.directory
        marker_seen, clean_manifest = checkpoints.read_clean_shutdown(directory)
        clean = clean_manifest is not None
        if marker_seen and not clean:
            log.warning("%s: unreadable clean shutdown marker: recovering", directory)
        start_checkpoint = checkpoints.read_log_start_offset(directory)
        self.recovery_point, recovery_manifest = checkpoints.read_recovery_point(directory)
        manifest = clean_manifest if clean_manifest is not None else recovery_manifest
        self.gaps_below = self._load_gap_limit()
        for swapped in _finish_interrupted_work(directory, self.clock()):
            manifest.pop(swapped, None)  # swapped in by a crash recovery: scan it
        names = os.listdir(directory)
        bases: list[int] = []
        for name in names:
            base = parse_segment_name(name)
            if base is not None:
                bases.append(base)
            elif name.endswith(".tmp"):
                (directory / name).unlink(missing_ok=True)
        bases.sort()
        stems = {segment_name(base) for base in bases}
        for name in names:
            stem, _, suffix = name.partition(".")
            if suffix in ("index", "timeindex") and stem not in stems:
                (directory / name).unlink(missing_ok=True)
        self.epochs = LeaderEpochCache.load(directory)
        now = self.clock()
        for base in bases:
            self.segments.append(Segment.open(directory, base, now))
            self.bases.append(base)

        self.log_start_offset = max(start_checkpoint or 0, 0)  # provisional, for recovery
        if not self.segments:
            self._add_segment(self.log_start_offset)
            self.log_end_offset = self.bases[0]
        else:
            self._load_segments(clean, manifest)

        start = max(start_checkpoint if start_checkpoint is not None else 0, self.bases[0])
        if start > self.log_end_offset:
            log.warning(
                "%s: log ends at %d, before its start offset %d: starting empty at %d",
                directory,
                self.log_end_offset,
                start,
                start,
            )
            self._start_empty_at(start)
        self.log_start_offset = start
        # the file may keep what these drop: every open drops it again
        self.epochs.truncate_from_end(self.log_end_offset, persist=False)
        self.epochs.truncate_from_start(self.log_start_offset, persist=False)
        first_dirty_offset, tombstone_deadline = self._load_cleaner_checkpoint()
        # After a clean stop with nothing to repair, the marker stays until the log's
        # files first change (PartitionLog removes it then): a clean restart then writes
        # and fsyncs nothing per partition. Anything repaired here removes it now.
        clean_marker = clean and not self.unsynced and not self.dir_dirty
        if not clean_marker and checkpoints.remove_clean_shutdown(directory):
            self.dir_dirty = True
        return LoadedLog(
            segments=self.segments,
            log_start_offset=self.log_start_offset,
            log_end_offset=self.log_end_offset,
            recovery_point=self.recovery_point,
            epochs=self.epochs,
            gaps_below=self.gaps_below,
            first_dirty_offset=first_dirty_offset,
            tombstone_deadline=tombstone_deadline,
            unsynced=self.unsynced,
            dir_dirty=self.dir_dirty,
            clean_marker=clean_marker,
        )

    def _load_segments(self, clean: bool, manifest: dict[int, Digest]) -> None:
        """Trust what the clean shutdown marker (or, after a crash, the recovery point file)
        vouches for, byte for byte; scan and rebuild everything else."""
        segments = self.segments
        if clean:
            first_recover = len(segments)
        elif self.recovery_point is None:
            first_recover = 0
        else:
            first_recover = max(bisect_right(self.bases, self.recovery_point) - 1, 0)
        last = len(segments) - 1
        for i, segment in enumerate(segments):
            expected = manifest.get(segment.base_offset)
            recover = i >= first_recover
            if not recover:
                recover = expected is None or not segment.load_indexes(expected)
                if not recover and i == last:
                    next_offset = segment.read_next_offset(self.gaps_below)
                    time_entry = segment.time_index.last()
                    if next_offset is None or (
                        time_entry is not None
                        and time_entry[1] >= next_offset - segment.base_offset
                    ):
                        recover = True
                    else:
                        segment.next_offset = next_offset
                if recover:
                    log.info(
                        "%s: rebuilding the indexes of segment %d",
                        self.directory,
                        segment.base_offset,
                    )
            if not recover:
                continue
            cut = segment.recover(
                self.index_interval_bytes, self._recovered_batch, gaps_below=self.gaps_below
            )
            self.unsynced.append(segment)
            if cut is not None:
                later = segments[i + 1 :]
                dropped = cut.dropped_bytes + sum(s.size for s in later)
                for doomed in later:
                    doomed.delete()
                del segments[i + 1 :]
                del self.bases[i + 1 :]
                self.dir_dirty = True
                log.warning(
                    "%s: cut the log at offset %d (segment %d, position %d: %s), dropping %d bytes",
                    self.directory,
                    cut.offset,
                    segment.base_offset,
                    cut.position,
                    cut.reason,
                    dropped,
                )
                break
        self.log_end_offset = segments[-1].next_offset

    def _recovered_batch(self, epoch: int, base_offset: int, last_offset: int) -> None:
        """Recovery saw a sound batch: make sure the epoch cache knows its epoch (the
        checkpoint may be older than the data), unless the batch is below the log start."""
        if last_offset >= self.log_start_offset and epoch > self.epochs.latest_epoch:
            self.epochs.assign(epoch, base_offset)

    def _load_gap_limit(self) -> int:
        """The offset below which batches may skip offsets (0 when nothing was compacted).

        A garbled file is read as "anywhere": a scan must never cut a compacted log at a
        legitimate gap; only the exact-continuity check on a garbled base offset is lost.
        """
        value = checkpoints.read_gap_limit(self.directory)
        if value is None:
            log.warning("%s: garbled %s: offsets may have gaps anywhere", self.directory,
                        GAPS_BELOW_FILE)
            return LONG_MAX
        return value

    def _load_cleaner_checkpoint(self) -> tuple[int, int]:
        """(first dirty offset, tombstone deadline), checked against the log as loaded."""
        first, deadline = checkpoints.read_cleaner_checkpoint(self.directory)
        if first is None:
            first = self.log_start_offset
        if first > self.log_end_offset:
            log.warning("%s: cleaner checkpoint %d is past the log end %d: cleaning it all again",
                        self.directory, first, self.log_end_offset)
            first = self.log_start_offset
        return first, -1 if deadline is None else deadline

    def _add_segment(self, base_offset: int) -> None:
        self.segments.append(Segment.create(self.directory, base_offset, self.clock()))
        self.bases.append(base_offset)
        self.dir_dirty = True

    def _start_empty_at(self, offset: int) -> None:
        """Drop every segment (the log ended before its start offset); one empty segment
        at `offset` remains."""
        for segment in reversed(self.segments):
            segment.delete()
        self.segments.clear()
        self.bases.clear()
        self.unsynced.clear()
        self._add_segment(offset)
        self.log_end_offset = offset


def _finish_interrupted_work(directory: Path, now_ms: int) -> list[int]:
    """Settle what a crash left half done; returns the base offsets of segments it
    swapped in.

    `*.deleted` files are garbage (a delete or a swap had begun). `*.cleaned` files are
    a cleaner output never committed: removed. A `<base>.log.swap` is a committed
    cleaner output (it is renamed last, after its indexes, and only once fsynced):
    it replaces every segment whose base offset lies in [base, its next offset), as
    Kafka's LogLoader does; `*.index.swap` files without their log are uncommitted.
    The directory is fsynced if anything changed.
    """
    names = os.listdir(directory)
    swaps: list[int] = []
    removed = False
    for name in names:
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX)):
            (directory / name).unlink(missing_ok=True)
            removed = True
        elif name.endswith(SWAP_SUFFIX):
            base = parse_segment_name(name[: -len(SWAP_SUFFIX)])
            if base is not None:
                swaps.append(base)
    swaps.sort()
    live = sorted(b for b in map(parse_segment_name, names) if b is not None)
    for base in swaps:
        swapped = Segment.open(directory, base, now_ms, SWAP_SUFFIX)
        try:
            next_offset = base
            try:
                for header in swapped.scan():
                    next_offset = header.base_offset + header.last_offset_delta + 1
            except CorruptBatch:
                pass  # recovery will cut it where it breaks
            for old in live:
                if base < old < next_offset:
                    for suffix in (".log", ".index", ".timeindex"):
                        (directory / f"{segment_name(old)}{suffix}").unlink(missing_ok=True)
            swapped.rename("")
        finally:
            swapped.close()
        log.warning("%s: completed the swap of cleaned segment %d after a crash",
                    directory, base)
    swap_names = {f"{segment_name(b)}.log{SWAP_SUFFIX}" for b in swaps}
    for name in names:
        if name.endswith(SWAP_SUFFIX) and name not in swap_names:
            (directory / name).unlink(missing_ok=True)  # an index swap never committed
    if swaps or removed:
        fsync_dir(directory)
    return swaps
