"""Messages posted by the workers: small dataclasses, one module.

A newer poll result supersedes an older one still waiting in the queue
(``can_replace(newer)`` is True), so an app that fell behind renders the latest poll
once instead of every stale one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from kcli.formats.envelope import Record
from kcli.tui.model import ClusterSnapshot
from kcli.tui.service import ResetPlan


@dataclass
class RefreshStarted(Message):
    """A poll of the cluster began (monotonic time)."""

    started: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RefreshStarted | SnapshotReady | RefreshFailed)


@dataclass
class SnapshotReady(Message):
    """A poll succeeded."""

    snapshot: ClusterSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)


@dataclass
class RefreshFailed(Message):
    """A poll failed; the poller retries after the interval."""

    error: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RefreshFailed | SnapshotReady)


@dataclass
class TailRecords(Message):
    """Records that arrived on the tailed topic (never replaced: each batch counts)."""

    records: list[Record] = field(default_factory=list)


@dataclass
class TailState(Message):
    """The tail started, or failed (and retries)."""

    text: str
    error: bool = False


@dataclass
class ActionDone(Message):
    """A create, delete or reset finished."""

    text: str
    error: bool = False


@dataclass
class ResetPlanned(Message):
    """A dry run of a group reset is ready."""

    plan: ResetPlan


@dataclass
class ResetFailed(Message):
    """Planning or applying a reset failed."""

    error: str
