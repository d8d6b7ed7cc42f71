"""The small files beside a partition's segments that say where its log stands.

    log-start-offset            the log start offset (raised by DeleteRecords and retention)
    recovery-point-offset       the recovery point: segments below it are fsynced; then a
                                manifest line for each of them
    .kcli-clean-shutdown        a header line, then a manifest line for every segment:
                                written by a clean close, removed on open
    offset-gaps-below           batches below this offset may skip offsets (compacted);
                                above it offsets follow on exactly
    cleaner-offset-checkpoint   first dirty offset, next tombstone deadline

A manifest line is a segment's base offset and its digest (log size, index lengths and
CRCs): what lets the loader trust a segment byte for byte instead of scanning it. Every
file is ASCII, replaced atomically; a missing or garbled one reads as None. (The leader
epoch checkpoint is epoch.py's.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kcli.broker.log._files import read_int_file, read_small_file, write_atomically
from kcli.broker.log.segment import Segment

__all__ = [
    "CLEANER_CHECKPOINT_FILE",
    "CLEAN_SHUTDOWN_FILE",
    "GAPS_BELOW_FILE",
    "LOG_START_OFFSET_FILE",
    "RECOVERY_POINT_FILE",
    "Digest",
    "read_clean_shutdown",
    "read_cleaner_checkpoint",
    "read_gap_limit",
    "read_log_start_offset",
    "read_recovery_point",
    "remove_clean_shutdown",
    "write_clean_shutdown",
    "write_cleaner_checkpoint",
    "write_gap_limit",
    "write_log_start_offset",
    "write_recovery_point",
]

LOG_START_OFFSET_FILE = "log-start-offset"
RECOVERY_POINT_FILE = "recovery-point-offset"
CLEAN_SHUTDOWN_FILE = ".kcli-clean-shutdown"
GAPS_BELOW_FILE = "offset-gaps-below"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"

_MARKER_HEADER = "kcli-log-clean-shutdown 1"

Digest = tuple[int, int, int, int, int]
"""Segment.digest(): log size, offset index length and CRC, time index length and CRC."""


# ---------------------------------------------------------------------- log start offset

def read_log_start_offset(directory: Path) -> int | None:
    return read_int_file(directory / LOG_START_OFFSET_FILE)


def write_log_start_offset(directory: Path, offset: int) -> None:
    write_atomically(directory / LOG_START_OFFSET_FILE, f"{offset}\n".encode("ascii"))


# ---------------------------------------------------------------------- recovery point

def read_recovery_point(directory: Path) -> tuple[int | None, dict[int, Digest]]:
    """(recovery point, the digests of the segments below it); (None, {}) if missing."""
    lines = _read_lines(directory / RECOVERY_POINT_FILE) or []
    point = _parse_int(lines[0]) if lines else None
    return point, _parse_manifest(lines[1:])


def write_recovery_point(directory: Path, offset: int, segments: Iterable[Segment]) -> None:
    """Record that every segment below `offset` is on disk, with the digest of each of
    `segments` (those below it)."""
    lines = [str(offset), *_manifest(segments)]
    write_atomically(directory / RECOVERY_POINT_FILE, _text(lines))


# ---------------------------------------------------------------------- clean shutdown

def read_clean_shutdown(directory: Path) -> tuple[bool, dict[int, Digest] | None]:
    """(whether a marker could be read, the digests it vouches for); the digests are None
    when there is no sound marker: the last stop was not clean."""
    lines = _read_lines(directory / CLEAN_SHUTDOWN_FILE)
    if lines is None:
        return False, None
    if lines[:1] != [_MARKER_HEADER]:
        return True, None
    return True, _parse_manifest(lines[1:])


def write_clean_shutdown(directory: Path, segments: Iterable[Segment]) -> None:
    """Mark the log cleanly closed, vouching for `segments` (all of them, fsynced)."""
    write_atomically(directory / CLEAN_SHUTDOWN_FILE, _text([_MARKER_HEADER, *_manifest(segments)]))


def remove_clean_shutdown(directory: Path) -> bool:
    """Remove the marker (from here on, a crash must not look like a clean shutdown);
    whether there was one."""
    try:
        (directory / CLEAN_SHUTDOWN_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


# ---------------------------------------------------------------------- compaction

def read_gap_limit(directory: Path) -> int | None:
    """The offset below which batches may skip offsets: 0 without the file, None if it is
    garbled."""
    path = directory / GAPS_BELOW_FILE
    if not path.exists():
        return 0
    value = read_int_file(path)
    return None if value is None or value < 0 else value


def write_gap_limit(directory: Path, offset: int) -> None:
    write_atomically(directory / GAPS_BELOW_FILE, f"{offset}\n".encode("ascii"))


def read_cleaner_checkpoint(directory: Path) -> tuple[int | None, int | None]:
    """(first dirty offset, tombstone deadline), each None if missing or garbled."""
    lines = _read_lines(directory / CLEANER_CHECKPOINT_FILE) or []
    values = [_parse_int(line) for line in lines[:2]]
    values += [None] * (2 - len(values))
    return values[0], values[1]


def write_cleaner_checkpoint(
    directory: Path, first_dirty_offset: int, tombstone_deadline: int
) -> None:
    write_atomically(
        directory / CLEANER_CHECKPOINT_FILE,
        f"{first_dirty_offset}\n{tombstone_deadline}\n".encode("ascii"),
    )


# ---------------------------------------------------------------------- text

def _manifest(segments: Iterable[Segment]) -> list[str]:
    """One line per segment: base offset, then its digest."""
    return [" ".join(map(str, (s.base_offset, *s.digest()))) for s in segments]


def _parse_manifest(lines: list[str]) -> dict[int, Digest]:
    manifest: dict[int, Digest] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and all(f.isdigit() for f in fields):
            base, size, index_len, index_crc, time_len, time_crc = map(int, fields)
            manifest[base] = (size, index_len, index_crc, time_len, time_crc)
    return manifest


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _read_lines(path: Path) -> list[str] | None:
    data = read_small_file(path, 1 << 26)
    if data is None:
        return None
    try:
        return data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return []


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("ascii")
