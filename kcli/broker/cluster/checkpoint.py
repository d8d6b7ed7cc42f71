"""``replication-offset-checkpoint``: each partition's high watermark, as Kafka keeps it.

One file per data dir, Kafka's format: a version line (0), a count line, then one
``topic partition offset`` line per partition. The broker rewrites it every few seconds
when a high watermark moved, and on a clean stop; on start a partition's high watermark
is the checkpointed one (never past its log end), so records that no in-sync replica
had confirmed stay invisible to consumers until the followers have them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from kcli.durable import write_atomically

FILE_NAME = "replication-offset-checkpoint"
_VERSION = "0"

log = logging.getLogger("kcli.broker")


def read_checkpoint(directory: Path) -> dict[tuple[str, int], int]:
    """The checkpointed high watermarks; empty when there is no (readable) file."""
    path = directory / FILE_NAME
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        log.warning("ignoring unreadable %s: %s", path, error)
        return {}
    try:
        if lines[0].strip() != _VERSION:
            raise ValueError(f"version {lines[0]!r}")
        count = int(lines[1])
        entries = {}
        for line in lines[2 : 2 + count]:
            topic, partition, offset = line.split()
            entries[(topic, int(partition))] = int(offset)
        if len(entries) != count:
            raise ValueError(f"{len(entries)} entries, {count} announced")
    except (IndexError, ValueError) as error:
        log.warning("ignoring garbled %s: %s", path, error)
        return {}
    return entries


def write_checkpoint(directory: Path, high_watermarks: Mapping[tuple[str, int], int]) -> None:
    """Replace the file with these high watermarks (atomically, fsynced)."""
    lines = [_VERSION, str(len(high_watermarks))]
    lines += [f"{topic} {partition} {offset}"
              for (topic, partition), offset in sorted(high_watermarks.items())]
    write_atomically(directory / FILE_NAME, ("\n".join(lines) + "\n").encode("ascii"))
