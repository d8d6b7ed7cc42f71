"""Partition directories: their names, the topic id stamped in each, their deletion.

A partition's log lives in ``<data dir>/<topic>-<partition>`` (Kafka's layout). The
name alone does not say which topic the data belongs to: a topic deleted and created
again has the same name. So each directory holds ``partition.metadata`` (Kafka's
PartitionMetadataFile: ``version: 0`` and the ``topic_id``), and a directory stamped
with another topic's id is never opened as the new topic's log.

A directory is deleted by renaming it to ``<topic>-<partition>.<uuid>-delete`` first,
so that a crash midway never leaves a half-deleted log under the partition's name;
whatever is left with that suffix is removed when the broker starts. A deleted topic's
directories are removed in a thread of their own, as Kafka deletes them asynchronously.
As Kafka's ``logDeleteDirName`` does, the topic part is cut short so that the new name
fits in a file name (255 bytes): a 249-character topic plus the suffix would not. A
directory that no topic hosted here claims at start-up is renamed ``...-stray`` the same
way and kept for the operator, as Kafka keeps stray logs.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import shutil
import threading
import uuid
from pathlib import Path

from kcli.broker.log._files import fsync_dir, read_small_file, write_atomically

MAX_FILE_NAME = 255
"""NAME_MAX of the filesystems a broker runs on, in bytes (topic names are ASCII)."""
DELETE_SUFFIX = "-delete"
STRAY_SUFFIX = "-stray"
TOPIC_ID_FILE = "partition.metadata"
_PARTITION_DIR = re.compile(r"([a-zA-Z0-9._-]+)-([0-9]+)")


def partition_dir_name(topic: str, index: int) -> str:
    """Kafka's directory name for a partition."""
    return f"{topic}-{index}"


def renamed_dir_name(directory_name: str, suffix: str) -> str:
    """``<topic>-<partition>.<uuid><suffix>``, the topic cut so the name fits in
    MAX_FILE_NAME bytes (Kafka's logDirNameWithSuffixCappedLength)."""
    topic, dash, index = directory_name.rpartition("-")
    tail = f"{dash}{index}.{uuid.uuid4().hex}{suffix}"
    return topic[: max(MAX_FILE_NAME - len(tail.encode()), 0)] + tail


def is_partition_dir(path: Path) -> bool:
    """Whether ``path`` is a partition's log directory: named ``<topic>-<partition>``
    (not a deleted or stray one) and holding a topic id stamp or a segment."""
    if _PARTITION_DIR.fullmatch(path.name) is None or not path.is_dir():
        return False
    return (path / TOPIC_ID_FILE).exists() or any(path.glob("*.log"))


def delete_partition_dir(directory: Path, *, in_background: bool = False) -> None:
    """Delete a partition's directory (its log closed first): rename it to a ``-delete``
    name, make the rename durable, then remove it, at once or ``in_background``. Raises
    OSError when the rename fails: the directory then stays whole under its name. What
    the removal leaves is removed at the next start."""
    directory = Path(directory)
    if not directory.exists():
        return
    doomed = directory.with_name(renamed_dir_name(directory.name, DELETE_SUFFIX))
    os.rename(directory, doomed)
    fsync_dir(directory.parent)
    if in_background:
        _remover.remove(doomed)
    else:
        shutil.rmtree(doomed, ignore_errors=True)


class _BackgroundRemover:
    """Removes renamed-away directories in one daemon thread, in the order given.

    A deleted topic's segments can hold gigabytes: unlinking them (the kernel drops
    their cached pages as it goes) took the event loop's thread for as long, and every
    client of the broker waited. The rename has already freed the partition's name; a
    stop that cuts a removal short leaves a ``-delete`` directory for the next start."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remove(self, path: Path) -> None:
        """Queue ``path`` for removal (errors are ignored, as the next start retries)."""
        self._queue.put(path)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kcli-dir-remover",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            shutil.rmtree(self._queue.get(), ignore_errors=True)


_remover = _BackgroundRemover()


def set_aside(directory: Path) -> Path:
    """Rename a directory no topic claims to a ``-stray`` name; returns the new path."""
    stray = directory.with_name(renamed_dir_name(directory.name, STRAY_SUFFIX))
    os.rename(directory, stray)
    fsync_dir(directory.parent)
    return stray


def read_topic_id(directory: Path) -> uuid.UUID | None:
    """The topic id stamped in a partition directory; None when there is no (readable)
    stamp."""
    raw = read_small_file(directory / TOPIC_ID_FILE, limit=4096)
    if raw is None:
        return None
    fields = dict(line.partition(":")[::2] for line in raw.decode("ascii", "replace").splitlines())
    value = fields.get("topic_id", "").strip()
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return None


def write_topic_id(directory: Path, topic_id: uuid.UUID) -> None:
    """Stamp a partition directory with its topic's id, durably (Kafka's format: the id
    in url-safe base64 without padding)."""
    encoded = base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")
    write_atomically(directory / TOPIC_ID_FILE, f"version: 0\ntopic_id: {encoded}\n".encode())
