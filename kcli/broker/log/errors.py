"""Errors raised by the log storage, each carrying the Kafka error code a handler should send."""

from __future__ import annotations


class LogError(Exception):
    """Base of every error the log storage raises on purpose."""

    error_code: int = -1
    """Kafka protocol error code to answer with (-1 = UNKNOWN_SERVER_ERROR)."""


class BatchError(LogError):
    """A record batch was refused; `error_code` says how Kafka would answer."""


class CorruptBatch(BatchError):
    """Bad CRC, impossible or inconsistent length, truncated bytes, malformed records."""

    error_code = 2  # CORRUPT_MESSAGE


class InvalidBatch(BatchError):
    """Well-formed bytes that break a rule: several batches, bad counts, non-zero base offset."""

    error_code = 87  # INVALID_RECORD


class UnsupportedMagic(BatchError):
    """Not a magic v2 record batch."""

    error_code = 43  # UNSUPPORTED_FOR_MESSAGE_FORMAT


class MessageTooLarge(BatchError):
    """The batch is larger than the partition accepts."""

    error_code = 10  # MESSAGE_TOO_LARGE


class OffsetOutOfRange(LogError):
    """An offset outside [log_start_offset, log_end_offset]."""

    error_code = 1  # OFFSET_OUT_OF_RANGE

    def __init__(self, log_start_offset: int, log_end_offset: int, offset: int | None = None):
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        self.offset = offset
        where = "" if offset is None else f"offset {offset} "
        super().__init__(f"{where}outside the log [{log_start_offset}, {log_end_offset}]")
