"""A bounded set of open file descriptors for the log's files, closed least recently used.

Every segment file and index writer would otherwise hold a descriptor for as long as it
exists, so a broker with many partitions, or partitions with many segments, could run
out of them and then refuse connections and fail to restart (issue 13 item 7). Kafka
keeps them all open and asks operators for a huge `ulimit -n`; a local broker should not
need that. Here a `LogFile` opens its file on first use and again after the cache closed
it to make room; the cache holds at most `capacity` open at once.

Threads: only the event loop thread opens, evicts and closes. A worker thread (the
segment fsyncs after a roll) uses `LogFile.pinned`, which keeps the descriptor from being
closed under it, or opens a private one when the file has none open; so no thread ever
uses a descriptor number that was closed and given to another file.

Closing a descriptor loses nothing: written bytes are in the page cache, and a later
fsync through any descriptor of the file syncs them (Linux reports a writeback error
that no descriptor has seen yet to the next fsync, whichever descriptor makes it).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kcli.broker.log._files import PRIVATE_FILE

__all__ = ["DEFAULT_CAPACITY", "DescriptorCache", "LogFile", "descriptors"]

DEFAULT_CAPACITY = 1024
"""Until the broker sets it from its open-file limit (kcli.broker.fd_budget)."""
MIN_CAPACITY = 1


class DescriptorCache:
    """At most `capacity` open descriptors across every `LogFile` made from this cache
    (more only while worker threads hold pins on all of them)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = max(MIN_CAPACITY, capacity)
        self._open: OrderedDict[LogFile, None] = OrderedDict()
        self.lock = threading.Lock()
        """Guards the files' descriptors and pins, and `_open`."""
        self.opens = 0
        """Descriptors opened so far (first opens and reopens): a measure of churn."""

    @property
    def capacity(self) -> int:
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        """Change the bound; closes the least recently used files that no longer fit."""
        with self.lock:
            self._capacity = max(MIN_CAPACITY, capacity)
            self._make_room(0)

    def __len__(self) -> int:
        """Descriptors open now."""
        return len(self._open)

    def file(self, path: Path, flags: int, reopen_flags: int | None = None) -> LogFile:
        """A file opened with `flags` on first use and with `reopen_flags` (default
        `flags`) after an eviction, so that O_TRUNC acts only the first time."""
        return LogFile(path, flags, self, reopen_flags)

    def _opened(self, file: LogFile) -> None:
        """Track a newly opened `file`, closing others to make room (lock held)."""
        self._make_room(1)
        self._open[file] = None
        self.opens += 1

    def _make_room(self, needed: int) -> None:
        if len(self._open) + needed <= self._capacity:
            return
        for file in list(self._open):
            if len(self._open) + needed <= self._capacity:
                break
            if file._pins == 0:  # a pinned one is in use by a worker thread
                file._close_locked()


_PRIVATE_LOCK = threading.Lock()
"""The lock of files that keep their own descriptor (no cache)."""


class LogFile:
    """One file of the log, opened through a `DescriptorCache` whenever it is needed.

    Take `fd` for each operation and do not keep it across calls that may open other
    files: they may close it. After `close` every use raises ValueError.
    """

    __slots__ = ("_fd", "_flags", "_pins", "_release_pending", "_reopen_flags", "cache",
                 "closed", "path")

    def __init__(self, path: Path, flags: int, cache: DescriptorCache | None,
                 reopen_flags: int | None = None) -> None:
        self.path = path
        self.cache = cache
        """None: the file keeps its own descriptor (a worker thread writes it) until
        `attach` hands it to a cache."""
        self._flags = flags
        self._reopen_flags = flags if reopen_flags is None else reopen_flags
        self._fd = -1
        self._pins = 0
        self._release_pending = False
        self.closed = False

    @property
    def _lock(self) -> threading.Lock:
        return self.cache.lock if self.cache is not None else _PRIVATE_LOCK

    @property
    def fd(self) -> int:
        """An open descriptor of the file (opened now if needed); ValueError once closed."""
        cache = self.cache
        fd = self._fd
        if fd >= 0 and not self._release_pending and not self.closed:
            # The hot path takes no lock: only the thread that uses `fd` (the loop) closes
            # descriptors or sets `_release_pending`, and a worker closes one only when
            # that is set; an OrderedDict operation is atomic under the GIL.
            if cache is not None:
                cache._open.move_to_end(self)
            return fd
        with self._lock:
            if self.closed:
                raise ValueError(f"{self.path}: closed")
            fd = self._fd
            if fd >= 0:
                self._release_pending = False  # in use again: the pinning thread keeps it
                if cache is not None:
                    cache._open.move_to_end(self)
                return fd
            fd = os.open(self.path, self._flags, PRIVATE_FILE)
            self._flags = self._reopen_flags
            self._fd = fd
            if cache is not None:
                cache._opened(self)
            return fd

    @property
    def is_open(self) -> bool:
        """Whether a descriptor is open now (no file operation is made to find out)."""
        return self._fd >= 0

    @contextmanager
    def pinned(self) -> Iterator[int]:
        """A descriptor for use in a worker thread: the cached one, kept open meanwhile,
        or a private one opened for the purpose (no O_CREAT: a file gone is an error)."""
        with self._lock:
            if self.closed:
                raise ValueError(f"{self.path}: closed")
            fd = self._fd
            if fd >= 0:
                self._pins += 1
        if fd < 0:
            fd = os.open(self.path, self._reopen_flags & ~(os.O_CREAT | os.O_TRUNC))
            try:
                yield fd
            finally:
                os.close(fd)
            return
        try:
            yield fd
        finally:
            with self._lock:
                self._pins -= 1
                if self._pins == 0 and self._release_pending:
                    self._close_locked()

    def attach(self, cache: DescriptorCache) -> None:
        """Hand a file that kept its own descriptor to `cache` (on the loop thread, when
        no worker thread uses it any more)."""
        if self.cache is not None:
            return
        with cache.lock:
            self.cache = cache
            if self._fd >= 0:
                cache._opened(self)

    def stat(self) -> os.stat_result:
        """The file's status, through the open descriptor if there is one."""
        with self._lock:
            if self._fd >= 0:
                return os.fstat(self._fd)
        return os.stat(self.path)

    def release(self) -> None:
        """Close the descriptor (it is opened again on next use); if a worker thread has
        it pinned, that thread closes it when done."""
        with self._lock:
            self._close_locked()

    def close(self) -> None:
        """Close the descriptor for good: later use raises ValueError."""
        with self._lock:
            self.closed = True
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fd < 0:
            return
        if self._pins:
            self._release_pending = True
            return
        fd, self._fd = self._fd, -1
        self._release_pending = False
        if self.cache is not None:
            self.cache._open.pop(self, None)
        os.close(fd)


descriptors = DescriptorCache()
"""The process's cache: the open-file limit is per process, whatever brokers it runs."""
