"""Group detail: members and assignments; per partition committed, end, lag, time lag
and status; offset reset with a dry-run preview."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from kcli.tui.lag import format_seconds, sparkline
from kcli.tui.model import ClusterSnapshot, GroupView
from kcli.tui.screens.base import KcliScreen
from kcli.tui.widgets import cells
from kcli.tui.widgets.status import StatusBar
from kcli.tui.widgets.tables import Col, SyncTable

TREND_WIDTH = 30
DRAINING = -0.5
"""Lag slope (records/s) below which a group is shown as draining; above -DRAINING,
growing; between the two, steady."""


def trend_badge(slope: float | None, lag: int | None) -> tuple[str, str]:
    """('growing' | 'draining' | 'steady' | '', theme colour) and, when draining, how
    long until caught up at that pace."""
    if slope is None or lag is None:
        return "", ""
    if slope > -DRAINING:
        return f"growing +{cells.human_rate(slope)}/s", "warning"
    if slope < DRAINING:
        eta = format_seconds(lag / -slope) if lag else "0 s"
        return f"draining {cells.human_rate(-slope)}/s, caught up in ~{eta}", "success"
    return "steady", ""


class GroupScreen(KcliScreen[None]):
    """One consumer group."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "reset", "Reset offsets"),
    ]

    def __init__(self, group: str) -> None:
        super().__init__()
        self.group = group
        self.view: GroupView | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Group {self.group}", style="bold"), id="group-title")
        yield SyncTable([Col("CLIENT", "client", 20), Col("HOST", "host", 16),
                         Col("PARTITIONS", "assignments")], id="members")
        yield SyncTable([Col("TOPIC", "topic"), Col("P", "partition", 3),
                         Col("COMMITTED", "committed", 10), Col("END", "end", 10),
                         Col("LAG", "lag", 8), Col("TIME LAG", "time_lag", 9),
                         Col("STATUS", "status", 7), Col("MEMBER", "member")],
                        id="group-partitions")
        yield Static("", id="group-caption", classes="caption")
        yield StatusBar(bootstrap=self.kapp.service.bootstrap, interval=self.kapp.interval)
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show, init=True)
        self.query_one("#group-partitions", SyncTable).focus()

    def show(self, snapshot: ClusterSnapshot | None) -> None:
        """Render the group from a snapshot."""
        if snapshot is None:
            return
        view = self.view = snapshot.group_views.get(self.group)
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f"Group {self.group}", style="bold")
        if view is None:
            title.append("   not listed by the cluster (deleted, or no offsets yet)",
                         style=cells.theme_color(self.app, "error"))
            self.query_one("#group-title", Static).update(title)
            return
        row = view.row
        protocol = view.protocol or row.protocol_type or "-"
        if view.group_protocol == "consumer":  # KIP-848: the coordinator runs the assignor
            protocol = f"consumer protocol, {protocol} assignor"
            if view.group_epoch is not None:
                protocol += f", epoch {view.group_epoch}"
                if view.assignment_epoch != view.group_epoch:
                    protocol += f" (assigned {view.assignment_epoch})"
        title.append(f"   {row.state} · {row.members} member(s) · {protocol} · coordinator "
                     f"{'-' if view.coordinator is None else view.coordinator}\n")
        title.append(f"Lag {cells.number(row.lag).plain} (max {cells.number(row.max_lag).plain})"
                     f" · consuming {cells.human_rate(row.consume_rate)} rec/s · status ")
        title.append_text(cells.status(self.app, row.status))
        badge, color = trend_badge(row.slope, row.lag)
        if badge:
            title.append(" · ")
            title.append(badge, style=cells.theme_color(self.app, color) if color else "")
        title.append("\n")
        title.append(sparkline(row.trend, TREND_WIDTH) or "(no lag history yet)",
                     style=cells.theme_color(self.app, "accent"))
        self.query_one("#group-title", Static).update(title)

        self.query_one("#members", SyncTable).sync([
            (m.member_id, [m.client_id or "-", m.host.lstrip("/") or "-", m.owned_text()])
            for m in view.members
        ])
        error = cells.theme_color(self.app, "error")
        rows = []
        for p in view.partitions:
            lag = cells.number(p.lag)
            if p.lost:
                lag = Text(f"{lag.plain} LOST", style=f"bold {error}", justify="right")
            rows.append((f"{p.topic}\0{p.partition}", [
                p.topic, cells.number(p.partition), cells.number(p.committed),
                cells.number(p.end), lag, str(p.time_lag), cells.status(self.app, p.status),
                p.member or "-"]))
        self.query_one("#group-partitions", SyncTable).sync(rows)
        lost = sum(1 for p in view.partitions if p.lost)
        caption = (f"status by poll time: {row.window} of {snapshot.window} polls in the "
                   f"window · time lag from end-offset history")
        if lost:
            caption = f"{lost} partition(s) LOST: committed below the earliest offset · " + caption
        self.query_one("#group-caption", Static).update(
            Text(caption, no_wrap=True, overflow="ellipsis"))

    def action_reset(self) -> None:
        """Open the reset dialog (a dry run first; executing asks again)."""
        from kcli.tui.screens.reset import ResetDialog

        topics: tuple[str, ...] = ()
        if self.view is not None:
            topics = tuple(sorted({p.topic for p in self.view.partitions}))
        self.app.push_screen(ResetDialog(self.group, topics))

