"""Durable files: whole writes, atomic replacement, directory fsync.

The one copy of these helpers for the broker's logs and cluster metadata, the local
cluster's state files, backup archives and the profile file. A leaf module: it imports
nothing from kcli, so every package may use it.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

PRIVATE_DIR = 0o700
"""Mode of every directory kcli creates for a broker's or a local cluster's data."""
PRIVATE_FILE = 0o600
"""Mode of every file kcli creates there, and of the profile file: data is the user's."""

_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})
"""errno values of a filesystem that cannot fsync a directory (some network and FUSE
filesystems): there is nothing better to do there, so it is not an error."""


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode PRIVATE_DIR (less the
    umask); Path.mkdir gives parents the default mode instead. An existing one is left
    as it is."""
    missing: list[Path] = []
    path = directory
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not path.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                         str(path)) from None


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written (a single write may write fewer)."""
    written = os.write(fd, data)
    total = len(data)
    if written == total:
        return
    with memoryview(data) as view:
        while written < total:
            written += os.write(fd, view[written:])


def writev_all(fd: int, parts: Sequence[bytes | bytearray | memoryview]) -> int:
    """os.writev until every byte of ``parts``, in order, is written; the total."""
    total = sum(len(part) for part in parts)
    written = os.writev(fd, parts)
    if written < total:  # the rest, from where the short write stopped
        rest = b"".join(parts)[written:]
        write_all(fd, rest)
    return total


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable.

    A filesystem that does not support fsync on a directory is accepted, and so is a
    directory that no longer exists (nothing in it is left to make durable); any other
    error, such as EIO, is raised: the rename it was to make durable may be lost.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a
    mix: a temp file beside it (``.<name>.<random>.tmp``), written whole and fsynced,
    renamed over ``path``, then the directory fsynced. ``mode`` is as for open(2), so
    the umask applies and the file is never more open than ``mode``. Concurrent writers
    each use their own temp file; the last rename wins. On failure the temp file is
    removed, and an OSError names ``path``, not the temp file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    except OSError as error:
        if error.filename is not None and os.fsdecode(error.filename) != str(tmp):
            raise
        raise type(error)(error.errno, error.strerror, str(path)) from error
