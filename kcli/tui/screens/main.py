"""The main screen: Cluster, Topics and Groups tabs."""

from __future__ import annotations

import fnmatch
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from kcli.tui.lag import sparkline
from kcli.tui.messages import ActionDone
from kcli.tui.model import ClusterSnapshot, GroupRow, TopicRow
from kcli.tui.screens.base import KcliNode, KcliScreen
from kcli.tui.service import describe_error
from kcli.tui.widgets import cells
from kcli.tui.widgets.status import StatusBar
from kcli.tui.widgets.tables import Col, OpenTable, SyncTable

TREND_WIDTH = 12


def matches(name: str, pattern: str) -> bool:
    """Filter: a glob when the text has * ? or [, else a case-insensitive substring."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return pattern.lower() in name.lower()


class View(KcliNode, Vertical):
    """A tab's content: renders snapshots, nothing else."""

    def show(self, snapshot: ClusterSnapshot) -> None:
        """Render a snapshot."""
        raise NotImplementedError

    def focus_main(self) -> None:
        """Focus the widget keys should go to when the tab opens."""
        self.query(DataTable).first().focus()

    def rerender(self) -> None:
        """Render the latest snapshot again (after a filter change)."""
        if self.kapp.snapshot is not None:
            self.show(self.kapp.snapshot)


class ClusterView(View):
    """Brokers, controller, partition health, rates and groups by state."""

    def compose(self) -> ComposeResult:
        yield Static(Text("waiting for the first poll…"), id="cluster-summary")
        yield SyncTable([Col("BROKER", "id", 8), Col("HOST", "host"), Col("PORT", "port", 6),
                         Col("STATE", "state", 6), Col("CONTROLLER", "controller", 10),
                         Col("LEADERS", "leaders", 8), Col("REPLICAS", "replicas", 8)],
                        id="brokers")
        # text, not a table: the cluster tab keeps one focusable widget
        yield Static("", id="transactions")

    def show(self, snapshot: ClusterSnapshot) -> None:
        s = snapshot
        user_topics = sum(1 for t in s.topics if not t.internal)
        summary = Text(no_wrap=True, overflow="ellipsis")
        summary.append("Cluster ", style="bold")
        summary.append(f"{s.cluster_id or '-'}   controller {s.controller}\n"
                       if s.controller is not None else f"{s.cluster_id or '-'}   no controller\n")
        internal = len(s.topics) - user_topics
        down = sum(1 for b in s.brokers if not b.up)
        summary.append(f"Brokers {len(s.brokers)}")
        if down:
            summary.append(f" ({down} down)", style=cells.theme_color(self.app, "error"))
        summary.append(f"   Topics {user_topics:,}"
                       + (f" (+{internal} internal)" if internal else "") + "   "
                       f"Partitions {s.partition_count:,}\n")
        bad = cells.theme_color(self.app, "error")
        summary.append(f"Under-replicated {s.under_replicated}",
                       style=bad if s.under_replicated else "")
        summary.append("   ")
        summary.append(f"Offline {s.offline}\n", style=bad if s.offline else "")
        summary.append(f"Produce {cells.human_rate(s.produce_rate)} rec/s   "
                       f"Consume {cells.human_rate(s.consume_rate)} rec/s   "
                       "(from offset deltas)\n")
        states = "   ".join(f"{state} {count}" for state, count in s.groups_by_state)
        summary.append(f"Groups {len(s.groups)}" + (f":  {states}" if states else ""))
        lagging = sum(1 for g in s.groups if g.status is not None and g.status.severity)
        if lagging:
            summary.append(f"   ({lagging} not OK)", style=cells.theme_color(self.app, "warning"))
        self.query_one("#cluster-summary", Static).update(summary)
        self.query_one("#brokers", SyncTable).sync([
            (str(b.id), [cells.text(b.id), b.host, cells.text(b.port) if b.port else "?",
                         Text("up") if b.up else Text("down", style=bad),
                         "●" if b.controller else "", cells.number(b.leaders),
                         cells.number(b.replicas)])
            for b in s.brokers
        ])
        self.query_one("#transactions", Static).update(_transactions(s))


SHOWN_TRANSACTIONS = 5


def _transactions(snapshot: ClusterSnapshot) -> Text:
    """The open transactions, the longest-known first few, one line each."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if snapshot.transactions is None:
        out.append("Transactions: unknown (the cluster does not list them)", style="dim")
        return out
    txns = snapshot.transactions
    out.append(f"Open transactions {len(txns)}", style="bold")
    for txn in txns[:SHOWN_TRANSACTIONS]:
        out.append(f"\n  {txn.transactional_id}   producer {txn.producer_id}   {txn.state}"
                   f"   coordinator {txn.coordinator}")
    if len(txns) > SHOWN_TRANSACTIONS:
        out.append(f"\n  … and {len(txns) - SHOWN_TRANSACTIONS} more (kcli txn list)")
    return out


class TopicsView(View):
    """Every topic, with a filter; create and delete with confirmation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("n", "create", "New"),
        Binding("d,delete", "delete", "Delete"),
        Binding("i", "toggle_internal", "Internal"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_internal = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter topics (text or glob)", id="topic-filter",
                    classes="filter")
        yield OpenTable([Col("TOPIC", "name"), Col("PARTS", "partitions", 5),
                         Col("RF", "replication", 3), Col("RECORDS", "records", 11),
                         Col("SIZE", "size", 10), Col("REC/S", "rate", 7),
                         Col("!", "health", 3)], id="topics")
        yield Static("", id="topics-caption", classes="caption")

    def rows(self, snapshot: ClusterSnapshot) -> list[TopicRow]:
        """The topics the filter and the internal toggle let through."""
        pattern = self.query_one("#topic-filter", Input).value
        return [t for t in snapshot.topics
                if (self.show_internal or not t.internal) and matches(t.name, pattern)]

    def show(self, snapshot: ClusterSnapshot) -> None:
        shown = self.rows(snapshot)
        warn = cells.theme_color(self.app, "error")
        rows = []
        for t in shown:
            health = ""
            if t.offline:
                health = "off"
            elif t.under_replicated:
                health = "ur"
            rows.append((t.name, [Text(t.name, style="dim" if t.internal else "", no_wrap=True),
                                  cells.number(t.partitions), cells.number(t.replication),
                                  cells.number(t.records), cells.size(t.size), cells.rate(t.rate),
                                  Text(health, style=f"bold {warn}")]))
        self.query_one("#topics", SyncTable).sync(rows)
        total = sum(1 for t in snapshot.topics if self.show_internal or not t.internal)
        internal = "shown" if self.show_internal else "hidden"
        self.query_one("#topics-caption", Static).update(Text(
            f"{len(shown):,} of {total:,} topics · internal {internal} · "
            "ur: under-replicated, off: offline", no_wrap=True, overflow="ellipsis"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.rerender()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#topics", SyncTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        from kcli.tui.screens.topic import TopicScreen

        if event.row_key.value is not None:
            self.app.push_screen(TopicScreen(event.row_key.value))

    def action_filter(self) -> None:
        """Focus the filter box."""
        self.query_one("#topic-filter", Input).focus()

    def action_toggle_internal(self) -> None:
        """Show or hide internal topics (__consumer_offsets...)."""
        self.show_internal = not self.show_internal
        self.rerender()

    def action_create(self) -> None:
        """Ask for a new topic, then create it in a worker."""
        from kcli.tui.screens.dialogs import CreateTopicDialog, NewTopic

        def created(request: NewTopic | None) -> None:
            if request is not None:
                self.create_topic(request.name, request.partitions, request.replication)

        self.app.push_screen(CreateTopicDialog(), created)

    def action_delete(self) -> None:
        """Ask, then delete the selected topic in a worker."""
        from kcli.tui.screens.dialogs import ConfirmDialog

        name = self.query_one("#topics", SyncTable).selected_key()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete_topic(name)

        self.app.push_screen(ConfirmDialog(
            f"Delete topic {name!r} and all its records? This cannot be undone."), answered)

    @work(thread=True, group="topic-admin")
    def create_topic(self, name: str, partitions: int | None, replication: int | None) -> None:
        """Create a topic off the UI thread."""
        try:
            self.kapp.service.create_topic(name, partitions, replication)
        except Exception as error:  # shown to the user, never a traceback
            self.post_message(ActionDone(f"create {name}: {describe_error(error)}", error=True))
        else:
            self.post_message(ActionDone(f"created topic {name}"))

    @work(thread=True, group="topic-admin")
    def delete_topic(self, name: str) -> None:
        """Delete a topic off the UI thread."""
        try:
            self.kapp.service.delete_topic(name)
        except Exception as error:  # shown to the user, never a traceback
            self.post_message(ActionDone(f"delete {name}: {describe_error(error)}", error=True))
        else:
            self.post_message(ActionDone(f"deleted topic {name}"))

    def on_action_done(self, message: ActionDone) -> None:
        self.app.notify(message.text, severity="error" if message.error else "information")
        self.kapp.refresh_now()


class GroupsView(View):
    """Every consumer group with lag, trend and a Burrow-like status."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "filter", "Filter")]

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter groups (text or glob)", id="group-filter",
                    classes="filter")
        yield OpenTable([Col("GROUP", "group"), Col("STATE", "state", 11),
                         Col("MEMB", "members", 4), Col("LAG", "lag", 9),
                         Col("TREND", "trend", TREND_WIDTH), Col("STATUS", "status", 7)],
                        id="groups")
        yield Static("", id="groups-caption", classes="caption")

    def rows(self, snapshot: ClusterSnapshot) -> list[GroupRow]:
        """The groups the filter lets through."""
        pattern = self.query_one("#group-filter", Input).value
        return [g for g in snapshot.groups if matches(g.group, pattern)]

    def show(self, snapshot: ClusterSnapshot) -> None:
        shown = self.rows(snapshot)
        rows = []
        for g in shown:
            trend_style = ""
            if g.status is not None and g.status.severity:
                trend_style = cells.theme_color(self.app, "warning")
            rows.append((g.group, [g.group, g.state, cells.number(g.members), cells.number(g.lag),
                                   Text(sparkline(g.trend, TREND_WIDTH), style=trend_style),
                                   cells.status(self.app, g.status)]))
        self.query_one("#groups", SyncTable).sync(rows)
        self.query_one("#groups-caption", Static).update(Text(
            f"{len(shown):,} of {len(snapshot.groups):,} groups · status like Burrow, "
            f"by poll time: window of {snapshot.window} polls "
            f"(~{snapshot.window * snapshot.interval:.0f} s)", no_wrap=True, overflow="ellipsis"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.rerender()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#groups", SyncTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        from kcli.tui.screens.group import GroupScreen

        if event.row_key.value is not None:
            self.app.push_screen(GroupScreen(event.row_key.value))

    def action_filter(self) -> None:
        """Focus the filter box."""
        self.query_one("#group-filter", Input).focus()


class MainScreen(KcliScreen[None]):
    """Tabs over the cluster, its topics and its groups."""

    TABS = ("cluster", "topics", "groups")

    def compose(self) -> ComposeResult:
        app = self.kapp
        with TabbedContent(initial="cluster", id="tabs"):
            with TabPane("1 Cluster", id="cluster"):
                yield ClusterView(id="cluster-view")
            with TabPane("2 Topics", id="topics-tab"):
                yield TopicsView()
            with TabPane("3 Groups", id="groups-tab"):
                yield GroupsView()
        yield StatusBar(bootstrap=app.service.bootstrap, interval=app.interval)
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show, init=True)

    def active_view(self) -> View:
        """The view of the open tab."""
        pane = self.query_one(TabbedContent).active_pane
        assert pane is not None
        return pane.query_one(View)

    def show(self, snapshot: ClusterSnapshot | None) -> None:
        """Render the open tab (the others render when opened)."""
        if snapshot is not None and self.is_current:
            self.active_view().show(snapshot)

    def on_screen_resume(self) -> None:
        self.show(self.kapp.snapshot)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.show(self.kapp.snapshot)
        self.active_view().focus_main()

    def show_tab(self, tab: str) -> None:
        """Open a tab by name: cluster, topics or groups."""
        pane = {"cluster": "cluster", "topics": "topics-tab", "groups": "groups-tab"}[tab]
        self.query_one(TabbedContent).active = pane
