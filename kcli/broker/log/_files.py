"""Small file helpers on raw file descriptors for the log.

The generic durable-file helpers live in :mod:`kcli.durable`; they are imported here so
the log's modules take every file helper from one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from kcli.durable import (
    PRIVATE_FILE,
    fsync_dir,
    make_private_dir,
    write_all,
    write_atomically,
    writev_all,
)

__all__ = [
    "PRIVATE_FILE",
    "READ_WRITE_APPEND",
    "WRITE_APPEND",
    "fsync_dir",
    "make_private_dir",
    "read_int_file",
    "read_small_file",
    "read_whole",
    "sync_data",
    "write_all",
    "write_atomically",
    "writev_all",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
READ_WRITE_APPEND = os.O_RDWR | os.O_CREAT | os.O_APPEND | _O_CLOEXEC
WRITE_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_CLOEXEC

_sync_data = getattr(os, "fdatasync", os.fsync)


def sync_data(fd: int) -> None:
    """fdatasync where the platform has it: data and size, not timestamps."""
    _sync_data(fd)


def read_small_file(path: Path, limit: int = 1 << 20) -> bytes | None:
    """The content of a small file, or None if it is missing, unreadable or over `limit`
    bytes (nothing larger than the file, or than `limit`, is ever allocated)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            return None
        return read_whole(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int_file(path: Path) -> int | None:
    """A file holding one decimal integer, or None if missing or garbled."""
    data = read_small_file(path, 64)
    if data is None:
        return None
    try:
        return int(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def read_whole(fd: int, size: int) -> bytes:
    """Read `size` bytes from position 0 (shorter if the file is shorter)."""
    parts: list[bytes] = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(size - pos, 1 << 24), pos)
        if not chunk:
            break
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)
