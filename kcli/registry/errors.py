"""Confluent Schema Registry's error codes: an HTTP status and a five-digit code whose
first three digits are the status (io.confluent.kafka.schemaregistry.rest.exceptions)."""

from __future__ import annotations

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
SUBJECT_CONFIG_NOT_FOUND = 40408
SUBJECT_MODE_NOT_FOUND = 40409
INCOMPATIBLE_SCHEMA = 40901
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
INVALID_MODE = 42204
OPERATION_NOT_PERMITTED = 42205
REFERENCE_EXISTS = 42206
STORE_ERROR = 50001
STORE_TIMEOUT = 50002


class RegistryError(Exception):
    """An API error as Confluent reports it: ``{"error_code": code, "message": ...}``
    with the HTTP status the code starts with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status: the code's first three digits (400 and 500 stay as they are)."""
        return self.code if self.code < 1000 else self.code // 100

    def body(self) -> dict[str, object]:
        """The JSON error body."""
        return {"error_code": self.code, "message": self.message}


def subject_not_found(subject: str) -> RegistryError:
    """40401."""
    return RegistryError(SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryError:
    """40402."""
    return RegistryError(VERSION_NOT_FOUND, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    """40403."""
    what = f"Schema {schema_id} not found" if schema_id is not None else "Schema not found"
    return RegistryError(SCHEMA_NOT_FOUND, what)
