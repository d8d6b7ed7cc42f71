"""Leader epoch cache: (epoch, start offset) pairs, persisted as `leader-epoch-checkpoint`.

Same file format and rules as Kafka's LeaderEpochFileCache: version line, count line, then
one `epoch start_offset` line per entry; epochs and start offsets both strictly rise.
"""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_right
from pathlib import Path

from kcli.broker.log._files import read_small_file, write_atomically

CHECKPOINT_NAME = "leader-epoch-checkpoint"
_VERSION = 0

log = logging.getLogger("kcli.broker.log")


class LeaderEpochCache:
    """The start offset of every leader epoch this log has data (or leadership) for."""

    __slots__ = ("_entries", "_on_disk", "path")

    def __init__(self, path: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = path
        self._entries: list[tuple[int, int]] = entries or []
        self._on_disk: list[tuple[int, int]] | None = list(self._entries) if entries else None
        """What the file holds (None: unknown or missing), so an unchanged list is not
        written again."""

    @classmethod
    def load(cls, directory: Path) -> LeaderEpochCache:
        path = directory / CHECKPOINT_NAME
        data = read_small_file(path)
        if data is None:
            return cls(path)
        entries = _parse(data)
        if entries is None:
            log.warning("%s: ignoring a garbled leader epoch checkpoint", path)
            return cls(path)
        return cls(path, entries)

    @property
    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The latest epoch, or -1 when the cache is empty."""
        return self._entries[-1][0] if self._entries else -1

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; True if the cache changed.

        Entries that would break monotonicity (epoch >= `epoch` or start offset >=
        `start_offset`) are dropped first, as Kafka does.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch {epoch} / start offset {start_offset}")
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if last_epoch == epoch and last_start <= start_offset:
                return False
        before = list(self._entries)
        entries = self._entries
        while entries and (entries[-1][0] >= epoch or entries[-1][1] >= start_offset):
            entries.pop()
        entries.append((epoch, start_offset))
        try:
            self._persist()
        except BaseException:
            self._entries = before  # memory keeps agreeing with the file
            raise
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest known epoch <= `epoch`, the offset where it ends), as Kafka answers
        OffsetForLeaderEpoch; (-1, -1) when unknown."""
        entries = self._entries
        if epoch < 0 or not entries:
            return -1, -1
        if entries[-1][0] == epoch:
            return epoch, log_end_offset
        i = bisect_right([e for e, _ in entries], epoch)  # first entry with a higher epoch
        if i >= len(entries):
            return -1, -1
        if i == 0:  # older than anything known: the first known epoch's start
            return epoch, entries[0][1]
        return entries[i - 1][0], entries[i][1]

    def truncate_from_end(self, end_offset: int, *, persist: bool = True) -> None:
        """Forget epochs that start at or after `end_offset` (log truncated there).
        Without `persist` the file keeps them until the next change: for the truncation
        a log repeats each time it is opened, after which a restarting leader usually
        assigns the very same epoch again (so the file need not change at all)."""
        keep = len(self._entries)
        while keep and self._entries[keep - 1][1] >= end_offset:
            keep -= 1
        if keep < len(self._entries):
            del self._entries[keep:]
            if persist:
                self._persist()

    def truncate_from_start(self, start_offset: int, *, persist: bool = True) -> None:
        """The log now starts at `start_offset`: earlier epochs go, the one spanning it is
        moved to start there (`persist` as in truncate_from_end)."""
        entries = self._entries
        drop = 0
        while drop < len(entries) and entries[drop][1] <= start_offset:
            drop += 1
        if drop == 0:
            return
        epoch, start = entries[drop - 1]
        if drop == 1 and start == start_offset:
            return
        self._entries = [(epoch, start_offset), *entries[drop:]]
        if persist:
            self._persist()

    def clear(self) -> None:
        if self._entries:
            self._entries = []
            self._persist()

    def _persist(self) -> None:
        if self._entries == self._on_disk:
            return
        lines = [str(_VERSION), str(len(self._entries))]
        lines += [f"{epoch} {start}" for epoch, start in self._entries]
        self._on_disk = None  # unknown until the write is done
        write_atomically(self.path, ("\n".join(lines) + "\n").encode("ascii"))
        self._on_disk = list(self._entries)


def _parse(data: bytes) -> list[tuple[int, int]] | None:
    try:
        lines = data.decode("ascii").split("\n")
        if int(lines[0]) != _VERSION:
            return None
        count = int(lines[1])
        if count < 0 or count > len(lines) - 2:
            return None
        entries: list[tuple[int, int]] = []
        for line in lines[2 : 2 + count]:
            epoch_text, start_text = line.split()
            entries.append((int(epoch_text), int(start_text)))
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    for (e1, s1), (e2, s2) in itertools.pairwise(entries):
        if e2 <= e1 or s2 <= s1:
            return None
    if any(e < 0 or s < 0 for e, s in entries):
        return None
    return entries
