"""Errors and exit codes: the one place that decides what a failure means to the shell."""

from __future__ import annotations

from enum import IntEnum


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


class KcliError(Exception):
    """Base of every error kcli reports to a user as one line, without a traceback."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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


def exit_code_for(error: BaseException) -> ExitCode:
    """Map any exception reaching the entry point to the exit code the shell sees."""
    if isinstance(error, KcliError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED
