"""How the engines tell a command what is happening, without knowing about terminals."""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    """Receives warnings, notes and progress from backup, restore and migrate."""

    def warn(self, message: str) -> None:
        """Something the user must know (data that could not be kept exactly, ...)."""

    def info(self, message: str) -> None:
        """A step worth a line on stderr (resuming, creating a topic, ...)."""

    def start(self, description: str, total: int | None) -> None:
        """A new phase moving ``total`` records (None: unknown or unbounded)."""

    def advance(self, records: int) -> None:
        """``records`` more records done in the current phase."""


class NoEvents:
    """Events that go nowhere, but remember warnings (tests, library use)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []
        self.done = 0

    def warn(self, message: str) -> None:
        """Remember it."""
        self.warnings.append(message)

    def info(self, message: str) -> None:
        """Remember it."""
        self.infos.append(message)

    def start(self, description: str, total: int | None) -> None:
        """Ignored."""

    def advance(self, records: int) -> None:
        """Counted."""
        self.done += records
