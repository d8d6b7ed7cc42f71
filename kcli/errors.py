"""Errors and exit codes: the one place that decides what a failure means to the shell.

Commands raise a :class:`KcliError` subclass; the entry point prints its message as one
line on stderr and exits with its code. Errors coming back from a Kafka cluster through
confluent-kafka are translated by :func:`from_kafka_error`, using the error's *name*
(``KafkaError.name()``) so this module never imports confluent-kafka itself.
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes, as listed in the CLI contract."""

    OK = 0
    """The command did what it was asked."""
    FAILED = 1
    """The operation ran and failed (a record was rejected, a broker refused)."""
    USAGE = 2
    """Bad usage or bad input: unknown option, malformed value, unreadable file."""
    UNREACHABLE = 3
    """The cluster could not be reached, or an operation timed out."""
    NOT_FOUND = 4
    """A named topic, group, profile or archive does not exist."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (SIGINT)."""
    TERMINATED = 143
    """Stopped by SIGTERM; consume first closes its consumer, leaving its group."""


class KcliError(Exception):
    """Base of every error kcli reports to a user as one line, without a traceback."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and hint as the single line the entry point prints."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class OperationFailed(KcliError):
    """The cluster or the data refused the operation."""

    exit_code = ExitCode.FAILED


class BadInput(KcliError):
    """Malformed arguments or input data."""

    exit_code = ExitCode.USAGE


class Unreachable(KcliError):
    """No broker answered, or the operation timed out."""

    exit_code = ExitCode.UNREACHABLE


class NotFound(KcliError):
    """The named thing does not exist."""

    exit_code = ExitCode.NOT_FOUND


class Interrupted(KcliError):
    """Stopped by Ctrl-C."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)


# Kafka error names (KafkaError.name(): broker codes and librdkafka's local "_" codes)
# grouped by what they mean to a user. Anything not listed is OperationFailed.
_UNREACHABLE = frozenset({
    "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT", "_TIMED_OUT_QUEUE",
    "_RESOLVE", "REQUEST_TIMED_OUT", "_WAIT_COORD", "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "LEADER_NOT_AVAILABLE",
    "NETWORK_EXCEPTION", "BROKER_NOT_AVAILABLE",
})
_NOT_FOUND = frozenset({
    "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION", "UNKNOWN_TOPIC_ID",
    "GROUP_ID_NOT_FOUND", "_NOENT", "RESOURCE_NOT_FOUND",
})
_BAD_INPUT = frozenset({
    "INVALID_PARTITIONS", "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT",
    "INVALID_CONFIG", "TOPIC_EXCEPTION", "INVALID_REQUEST", "_INVALID_ARG", "INVALID_MSG",
    "INVALID_RECORD", "INVALID_TIMESTAMP", "OFFSET_OUT_OF_RANGE",
    "INVALID_MSG_SIZE", "INVALID_GROUP_ID", "POLICY_VIOLATION", "_INVALID_TYPE", "_BAD_MSG",
})
# MSG_SIZE_TOO_LARGE and RECORD_LIST_TOO_LARGE are refusals (exit 1), not bad input:
# the record is well formed, and a setting (message.max.bytes) decides.

_CLASS_BY_NAME: dict[str, type[KcliError]] = {
    **dict.fromkeys(_UNREACHABLE, Unreachable),
    **dict.fromkeys(_NOT_FOUND, NotFound),
    **dict.fromkeys(_BAD_INPUT, BadInput),
}


def kafka_error_class(name: str) -> type[KcliError]:
    """The KcliError subclass for a Kafka error name such as ``UNKNOWN_TOPIC_OR_PART``."""
    return _CLASS_BY_NAME.get(name, OperationFailed)


def is_kafka_exception(error: object) -> bool:
    """Whether ``error`` is a confluent-kafka ``KafkaException`` (or a subclass). Never
    imports confluent-kafka: if nothing imported it, nothing can have raised its error."""
    module = sys.modules.get("confluent_kafka")
    kafka_exception = getattr(module, "KafkaException", None)
    return isinstance(kafka_exception, type) and isinstance(error, kafka_exception)


def from_kafka_error(error: Any, context: str | None = None) -> KcliError:
    """Translate a confluent-kafka ``KafkaError`` (or a ``KafkaException`` wrapping one)
    into the KcliError a user should see: ``context: broker's message``."""
    if is_kafka_exception(error) and error.args:
        error = error.args[0]
    if not hasattr(error, "name") or not hasattr(error, "str"):
        text = str(error)
        return OperationFailed(f"{context}: {text}" if context else text)
    name = error.name()
    text = error.str() or name
    cls = kafka_error_class(name)
    message = f"{context}: {text}" if context else text
    return cls(message)


def exit_code_for(error: BaseException) -> ExitCode:
    """Map any exception reaching the entry point to the exit code the shell sees."""
    if isinstance(error, KcliError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if is_kafka_exception(error):
        return from_kafka_error(error).exit_code
    return ExitCode.FAILED
