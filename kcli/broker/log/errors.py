"""Errors raised by the log storage, each carrying the Kafka error code a handler should send."""

from __future__ import annotations

from kcli.broker.errors import ErrorCode


class LogError(Exception):
    """Base of every error the log storage raises on purpose."""

    error_code: int = ErrorCode.unknown_server_error
    """Kafka protocol error code to answer with."""


class BatchError(LogError):
    """A record batch was refused; `error_code` says how Kafka would answer."""


class CorruptBatch(BatchError):
    """Bad CRC, impossible or inconsistent length, truncated bytes, malformed records."""

    error_code = ErrorCode.corrupt_message


class InvalidBatch(BatchError):
    """Well-formed bytes that break a rule: several batches, bad counts, non-zero base offset."""

    error_code = ErrorCode.invalid_record


class UnsupportedMagic(BatchError):
    """Not a magic v2 record batch."""

    error_code = ErrorCode.unsupported_for_message_format


class MessageTooLarge(BatchError):
    """The batch is larger than the partition accepts."""

    error_code = ErrorCode.message_too_large


class StorageError(LogError):
    """Writing the log's files failed (disk full, I/O error): Kafka's KafkaStorageException.

    Unless it is a `LogOffline`, nothing of the failed append stays: the files and the log
    end offset are as they were before it, and a later append may succeed.
    """

    error_code = ErrorCode.kafka_storage_error


class LogOffline(StorageError):
    """The log takes no more writes: a failed append could not be undone, or an fsync
    failed (Kafka's offline log dir). What is in the log can still be read; reopening it
    (a restart) recovers it."""


class OffsetOutOfRange(LogError):
    """An offset outside [log_start_offset, log_end_offset]."""

    error_code = ErrorCode.offset_out_of_range

    def __init__(self, log_start_offset: int, log_end_offset: int, offset: int | None = None):
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        self.offset = offset
        where = "" if offset is None else f"offset {offset} "
        super().__init__(f"{where}outside the log [{log_start_offset}, {log_end_offset}]")
