"""How a broker's open files are shared between client connections and its logs.

Both the listener (``max.connections``) and the controller (``max.broker.partitions`` at
-1) take their default caps from here, so together they stay within one open-file limit:
connections may use half of it, the partitions' segment and index files the other half.
"""

from __future__ import annotations

import resource

FILES_PER_PARTITION = 3
"""Descriptors a partition keeps open: its active segment's log, offset and time index."""
LOG_SHARE = 2
"""One descriptor in this many is kept for the logs: connections that took them all
would stop the broker rolling a segment, or accepting the connection that closes one."""
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


def partitions_allowed(open_files: int | None) -> int:
    """Most partitions a broker hosts under ``open_files`` (the brokers of a local cluster
    share one limit, so the controller's own stands for theirs)."""
    if open_files is None:
        return UNLIMITED
    return max(1, open_files // LOG_SHARE // FILES_PER_PARTITION)
