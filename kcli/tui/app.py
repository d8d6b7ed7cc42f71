"""`kcli tui`: the dashboard application.

The app owns one data service and one poller. The poller is a thread worker that calls
``service.refresh()`` (which talks to the cluster and folds the result into the
history), posts the snapshot as a message, then sleeps for the interval; a refresh
never starts while one is running, and ``r`` wakes it early. Screens watch the app's
``snapshot`` and ``poll_state`` and only render.

Quitting aborts every wait in progress (``service.close()``), so ``q`` returns at once
even while the cluster is not answering.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.worker import get_current_worker

from kcli.tui.messages import RefreshFailed, RefreshStarted, SnapshotReady
from kcli.tui.model import ClusterSnapshot
from kcli.tui.service import DataService, describe_error
from kcli.tui.widgets.status import PollState

DEFAULT_INTERVAL = 2.0
"""Seconds between two polls of the cluster."""


class KcliApp(App[None]):
    """The dashboard: a main screen with Cluster, Topics and Groups tabs, and detail
    screens for one topic or one group."""

    TITLE = "kcli"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("1", "tab('cluster')", "Cluster", show=False),
        Binding("2", "tab('topics')", "Topics", show=False),
        Binding("3", "tab('groups')", "Groups", show=False),
        Binding("r", "refresh_now", "Refresh"),
    ]

    snapshot: reactive[ClusterSnapshot | None] = reactive(None, always_update=True,
                                                          init=False)
    """The latest successful poll (None until the first one)."""
    poll_state: reactive[PollState] = reactive(PollState, always_update=True, init=False)
    """What the poller is doing: shown by every screen's status line."""

    def __init__(self, service: DataService, *, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self.service = service
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = False

    def on_mount(self) -> None:
        from kcli.tui.screens.main import MainScreen

        self.push_screen(MainScreen())
        self.poll()

    # -- polling

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        """Refresh, post the result, wait for the interval (or ``r``); until cancelled."""
        worker = get_current_worker()
        while not worker.is_cancelled and not self._stopping:
            self._wake.clear()
            self.post_message(RefreshStarted(time.monotonic()))
            try:
                snapshot = self.service.refresh()
            except Exception as error:  # shown in the status line, retried: never a crash
                if worker.is_cancelled or self._stopping:
                    return
                self.post_message(RefreshFailed(describe_error(error)))
            else:
                self.post_message(SnapshotReady(snapshot))
            self._wake.wait(self.interval)

    def refresh_now(self) -> None:
        """Poll again as soon as the current poll (if any) is done."""
        self._wake.set()

    def on_refresh_started(self, message: RefreshStarted) -> None:
        self.poll_state = replace(self.poll_state, in_flight_since=message.started)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.snapshot = message.snapshot
        self.poll_state = PollState("ok", None, None, last_ok=message.snapshot.t,
                                    took=message.snapshot.took)

    def on_refresh_failed(self, message: RefreshFailed) -> None:
        last = self.poll_state
        self.poll_state = PollState("failed", None, message.error, last_ok=last.last_ok,
                                    took=last.took)

    # -- actions

    def action_refresh_now(self) -> None:
        """Poll now."""
        self.refresh_now()
        self.notify("refreshing…", timeout=1)

    async def action_tab(self, tab: str) -> None:
        """Back to the main screen, on a tab."""
        from kcli.tui.screens.main import MainScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, MainScreen):
            await self.pop_screen()
        if isinstance(self.screen, MainScreen):
            self.screen.show_tab(tab)

    def exit(self, result: None = None, return_code: int = 0,
             message: RenderableType | None = None) -> None:
        """Stop polling and abort waits in progress first: the app's end waits for its
        worker threads, and none of them may sit out a slow request or an interval."""
        self.close_service()
        super().exit(result, return_code, message)

    def close_service(self) -> None:
        """End every worker's wait on the cluster (idempotent)."""
        if not self._stopping:
            self._stopping = True
            self.service.close()
            self.workers.cancel_all()
            self._wake.set()

    def on_unmount(self) -> None:
        self.close_service()
