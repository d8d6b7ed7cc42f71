"""Small file helpers on raw file descriptors."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
READ_WRITE_APPEND = os.O_RDWR | os.O_CREAT | os.O_APPEND | _O_CLOEXEC
WRITE_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_CLOEXEC

_sync_data = getattr(os, "fdatasync", os.fsync)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written (regular files rarely write short)."""
    written = os.write(fd, data)
    total = len(data)
    if written == total:
        return
    with memoryview(data) as view:
        while written < total:
            written += os.write(fd, view[written:])


def sync_data(fd: int) -> None:
    """fdatasync where the platform has it: data and size, not timestamps."""
    _sync_data(fd)


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in `directory` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves the old or the new file, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


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
