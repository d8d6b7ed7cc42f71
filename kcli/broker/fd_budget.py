"""How a broker's open files are shared between client connections and its logs.

The listener (``max.connections``), the log's descriptor cache and the controller
(``max.broker.partitions`` at -1) take their default caps from here, so together they
stay within one open-file limit: connections may use half of it, the log files the other
half.
"""

from __future__ import annotations

import resource

LOG_SHARE = 2
"""One descriptor in this many is kept for the logs: connections that took them all
would stop the broker rolling a segment, or accepting the connection that closes one."""
TRANSIENT_FILES = 64
"""Of the logs' share, kept for files opened for a moment: checkpoints, directory
fsyncs, metadata writes, the cleaner's duplicated descriptors."""
UNLIMITED = 2147483647


def open_files_limit() -> int | None:
    """This process's soft limit on open files (None: no limit)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connections_allowed(open_files: int | None) -> int:
    """Most client connections the listener takes under ``open_files``."""
    if open_files is None:
        return UNLIMITED
    return max(1, open_files - open_files // LOG_SHARE)


def log_files_allowed(open_files: int | None) -> int:
    """Most segment and index files the log's descriptor cache keeps open at once."""
    if open_files is None:
        return 1 << 20
    return max(1, open_files // LOG_SHARE - TRANSIENT_FILES)


def partitions_allowed(open_files: int | None) -> int:
    """Most partitions a broker hosts under ``open_files``: as many as the descriptor
    cache holds files, so each partition's active segment can stay open; past that every
    write round would reopen files. (The brokers of a local cluster share one limit, so
    the controller's own stands for theirs.)"""
    if open_files is None:
        return UNLIMITED
    return log_files_allowed(open_files)
