"""Finding records by timestamp, for ListOffsets: the first record at or after a time,
and the first record with the largest timestamp.

The segments' time indexes and max timestamps narrow the search to one batch; only that
batch is decoded, and not even that when all its records carry the batch's LogAppendTime.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kcli.broker.log.batch import ATTR_LOG_APPEND_TIME, BatchHeader
from kcli.broker.log.errors import BatchError
from kcli.broker.log.records import Record, decode_records
from kcli.broker.log.segment import Segment

__all__ = ["max_timestamp", "offset_for_timestamp"]

log = logging.getLogger("kcli.broker.log")


def offset_for_timestamp(
    segments: Sequence[Segment], timestamp: int, start: int
) -> tuple[int, int] | None:
    """(offset, timestamp) of the first record in `segments` at or after offset `start`
    whose timestamp is >= `timestamp`; None if there is none."""
    for segment in segments:
        if segment.max_timestamp < timestamp:
            continue
        base = segment.base_offset
        before = segment.time_index.relative_before(timestamp)
        from_offset = max(base + before + 1 if before >= 0 else base, start)
        position = segment.offset_index.lookup(from_offset - base)
        for header in segment.scan(position):
            if header.base_offset + header.last_offset_delta < from_offset:
                continue
            if header.max_timestamp < timestamp:
                continue
            found = _first_record_from(segment, header, timestamp, start)
            if found is not None:
                return found
    return None


def _first_record_from(
    segment: Segment, header: BatchHeader, timestamp: int, start: int
) -> tuple[int, int] | None:
    """First record of the batch with timestamp >= `timestamp` and offset >= `start`."""
    if _all_stamped(header):
        return max(header.base_offset, start), header.max_timestamp
    records = _decode(segment, header)
    if records is None:
        return max(header.base_offset, start), header.max_timestamp
    for record in records:
        if record.offset >= start and record.timestamp >= timestamp:
            return record.offset, record.timestamp
    return None


def max_timestamp(segments: Sequence[Segment]) -> tuple[int, int] | None:
    """(timestamp, offset) of the first record with the largest timestamp in `segments`,
    None when no record carries a timestamp."""
    best: Segment | None = None
    for segment in segments:
        if segment.offset_of_max_timestamp >= 0 and (
            best is None or segment.max_timestamp > best.max_timestamp
        ):
            best = segment
    if best is None:
        return None
    top = best.max_timestamp
    header = best.locate(best.offset_of_max_timestamp)
    if header is None:
        return top, best.offset_of_max_timestamp
    if _all_stamped(header):
        return top, header.base_offset
    for record in _decode(best, header) or []:
        if record.timestamp == top:
            return top, record.offset
    return top, header.base_offset + header.last_offset_delta


def _all_stamped(header: BatchHeader) -> bool:
    """Whether every record of the batch has its maxTimestamp at its own offset: a
    LogAppendTime batch that compaction left whole."""
    return bool(header.attributes & ATTR_LOG_APPEND_TIME) and (
        header.records_count == header.last_offset_delta + 1
    )


def _decode(segment: Segment, header: BatchHeader) -> list[Record] | None:
    """The batch's records; None (logged) if they cannot be decoded."""
    try:
        return decode_records(segment.read_batch(header), header._replace(position=0))
    except BatchError as exc:
        log.warning(
            "%s: cannot decode the batch at offset %d: %s",
            segment.log_path.parent,
            header.base_offset,
            exc,
        )
        return None
