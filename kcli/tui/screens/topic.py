"""Topic detail: partitions (leader, replicas, ISR, offsets, rate) and a live tail."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from kcli.errors import NotFound
from kcli.formats.envelope import Record
from kcli.tui.messages import TailRecords, TailState
from kcli.tui.model import ClusterSnapshot
from kcli.tui.screens.base import KcliScreen
from kcli.tui.screens.dialogs import RecordDialog, preview
from kcli.tui.service import describe_error
from kcli.tui.widgets import cells
from kcli.tui.widgets.status import StatusBar
from kcli.tui.widgets.tables import Col, OpenTable, SyncTable

TAIL_KEEP = 500
"""Records the tail table keeps (the oldest go first)."""
READ_TIMEOUT = 0.2


def _ids(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values) or "-"


class TopicScreen(KcliScreen[None]):
    """One topic."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p,space", "toggle_pause", "Pause/resume"),
    ]

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic
        self.paused = False
        self.records: dict[str, Record] = {}
        self._pending: list[Record] = []  # the newest TAIL_KEEP of those held
        self._held = 0  # records read while paused
        self._tail_text = "tail: starting…"

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Topic {self.topic}", style="bold"), id="topic-title")
        yield SyncTable([Col("P", "partition", 4), Col("LEADER", "leader", 6),
                         Col("REPLICAS", "replicas", 10), Col("ISR", "isr", 10),
                         Col("LOW", "low", 10), Col("HIGH", "high", 10),
                         Col("LSO", "stable", 10), Col("REC/S", "rate", 7)], id="partitions")
        yield Static("", id="tail-state")
        yield OpenTable([Col("P", "partition", 3), Col("OFFSET", "offset", 8),
                         Col("TIME", "time", 8), Col("KEY", "key", 12),
                         Col("VALUE", "value", 30), Col("HDRS", "headers", 4)], id="tail")
        yield StatusBar(bootstrap=self.kapp.service.bootstrap, interval=self.kapp.interval)
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self.show, init=True)
        self.query_one("#tail", SyncTable).focus()
        self._render_tail_state()
        self.tail()

    # -- partitions

    def show(self, snapshot: ClusterSnapshot | None) -> None:
        """Render the topic's partitions from a snapshot."""
        if snapshot is None:
            return
        row = snapshot.topic(self.topic)
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f"Topic {self.topic}", style="bold")
        if row is None:
            title.append("   not in the cluster's metadata (deleted?)",
                         style=cells.theme_color(self.app, "error"))
        else:
            title.append(f"   {row.partitions} partitions · RF {row.replication} · "
                         f"{cells.number(row.records).plain} records · "
                         f"{cells.human_size(row.size)} · {cells.human_rate(row.rate)} rec/s")
        self.query_one("#topic-title", Static).update(title)
        self.query_one("#partitions", SyncTable).sync([
            (str(p.partition), [cells.number(p.partition), cells.text(p.leader),
                                _ids(p.replicas),
                                Text(_ids(p.isr), style=cells.theme_color(self.app, "error")
                                     if p.under_replicated else ""),
                                cells.number(p.low), cells.number(p.high),
                                # only where a transaction holds read_committed back
                                cells.number(p.stable) if p.stable not in (None, p.high)
                                else Text(""), cells.rate(p.rate)])
            for p in snapshot.partitions.get(self.topic, ())
        ])

    # -- tail

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False)
    def tail(self) -> None:
        """Read the topic's newest records until the screen closes; retry on errors."""
        worker = get_current_worker()
        service = self.kapp.service
        while not worker.is_cancelled:
            try:
                source = service.open_tail(self.topic)
            except Exception as error:  # shown in the tail line; retried
                self.post_message(TailState(f"tail: {describe_error(error)}", error=True))
                if isinstance(error, NotFound):
                    return
                worker.cancelled_event.wait(self.kapp.interval)
                continue
            self.post_message(TailState("tail: following"))
            try:
                while not worker.is_cancelled:
                    records = source.read(READ_TIMEOUT)
                    if records:
                        self.post_message(TailRecords(records))
            except Exception as error:  # shown in the tail line; retried
                self.post_message(TailState(f"tail: {describe_error(error)}", error=True))
                worker.cancelled_event.wait(self.kapp.interval)
            finally:
                source.close()

    def on_tail_records(self, message: TailRecords) -> None:
        message.stop()
        if self.paused:  # keep reading, show later: the count stays true
            self._held += len(message.records)
            self._pending = (self._pending + message.records)[-TAIL_KEEP:]
        else:
            self._add(message.records)
        self._render_tail_state()

    def on_tail_state(self, message: TailState) -> None:
        message.stop()
        self._tail_text = message.text
        self._render_tail_state(error=message.error)

    def _add(self, records: list[Record]) -> None:
        table = self.query_one("#tail", SyncTable)
        follow = table.cursor_row >= table.row_count - 1
        for record in records[-TAIL_KEEP:]:  # older ones would be dropped at once
            key = f"{record.partition}:{record.offset}"
            if key in self.records:
                continue
            self.records[key] = record
            stamp = (datetime.fromtimestamp(record.timestamp / 1000).strftime("%H:%M:%S")  # noqa: DTZ006
                     if record.timestamp is not None else "-")
            table.append(key, [cells.number(record.partition), cells.number(record.offset),
                               stamp, preview(record.key, 40), preview(record.value),
                               cells.number(len(record.headers)) if record.headers else ""],
                         keep=TAIL_KEEP)
        shown = set(table.keys)
        for key in [k for k in self.records if k not in shown]:
            del self.records[key]
        if follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def _render_tail_state(self, error: bool = False) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        if self.paused:
            line.append("⏸ paused", style=f"bold {cells.theme_color(self.app, 'warning')}")
            waiting = self._held
            line.append(f" · {waiting} new record(s) held · p to resume" if waiting
                        else " · p to resume")
        else:
            style = cells.theme_color(self.app, "error") if error else ""
            line.append(self._tail_text, style=style)
            line.append(f" · {len(self.records)} record(s) shown · p to pause · enter: record")
        self.query_one("#tail-state", Static).update(line)

    def action_toggle_pause(self) -> None:
        """Stop or resume the tail. A paused tail keeps reading and counts what it
        holds (the newest TAIL_KEEP are shown on resume), so no record slips by unseen."""
        self.paused = not self.paused
        if not self.paused:
            pending, self._pending, self._held = self._pending, [], 0
            if pending:
                self._add(pending)
        self._render_tail_state()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id != "tail" or event.row_key.value is None:
            return
        record = self.records.get(event.row_key.value)
        if record is not None:
            self.app.push_screen(RecordDialog(record))
