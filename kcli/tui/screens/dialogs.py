"""Modal dialogs: confirm, create a topic, record detail. They only collect input or
render; the screens that open them run the cluster calls in workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import orjson
from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from kcli.errors import BadInput
from kcli.formats.envelope import Record
from kcli.tui.service import parse_count

FIELD_KEYS = (Binding("tab", "app.focus_next", show=False, priority=True),
              Binding("shift+tab", "app.focus_previous", show=False, priority=True))
"""Tab moves between a form's fields at once. Without priority, Tab reaches the screen
by bubbling up from the field as a message, after the keys typed behind it were already
given to the field it leaves: "t", Tab, "2" typed in one burst all landed in the name."""


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; Cancel has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, confirm: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question), classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.confirm} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        """Close with an answer."""
        self.dismiss(answer)


@dataclass(frozen=True)
class NewTopic:
    """What the create dialog collected."""

    name: str
    partitions: int | None
    replication: int | None


class CreateTopicDialog(ModalScreen[NewTopic | None]):
    """Name, partitions and replication of a new topic (empty: the cluster's default)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"),
                                              *FIELD_KEYS]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Create topic", classes="title")
            yield Input(placeholder="name", id="name")
            yield Input(placeholder="partitions (default: the cluster's)", id="partitions")
            yield Input(placeholder="replication factor (default: the cluster's)",
                        id="replication")
            yield Static("", id="create-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without creating."""
        self.dismiss(None)

    def submit(self) -> None:
        """Validate and close with the request."""
        name = self.query_one("#name", Input).value.strip()
        try:
            if not name:
                raise BadInput("a topic needs a name")
            partitions = parse_count(self.query_one("#partitions", Input).value, "partitions")
            replication = parse_count(self.query_one("#replication", Input).value,
                                      "replication factor")
        except BadInput as error:
            self.query_one("#create-error", Static).update(Text(error.message))
            return
        self.dismiss(NewTopic(name, partitions, replication))


def preview(data: bytes | None, limit: int = 200) -> str:
    """One line for a table cell: text as is (newlines shown as ⏎), binary as a size."""
    if data is None:
        return "null"
    try:
        text = data[:limit * 4].decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes, binary>"
    return text[:limit].replace("\r", "").replace("\n", "⏎")


def body(data: bytes | None) -> RenderableType:
    """A key or value in full: JSON pretty-printed, text as is, binary as hex."""
    if data is None:
        return Text("null", style="italic")
    try:
        return JSON.from_data(orjson.loads(data), indent=2)
    except orjson.JSONDecodeError:
        pass
    try:
        return Text(data.decode("utf-8"))
    except UnicodeDecodeError:
        return Text(data.hex(" "), style="italic")


def record_time(record: Record) -> str:
    """ISO time of a record (UTC), or '-'."""
    if record.timestamp is None:
        return "-"
    stamp = datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RecordDialog(ModalScreen[None]):
    """One record in full."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        r = self.record
        head = Text()
        head.append(f"{r.topic}[{r.partition}] @ {r.offset}", style="bold")
        head.append(f"   {record_time(r)} ({r.timestamp_type or 'no timestamp'})")
        parts: list[RenderableType] = [head, Text("")]
        parts.append(Text("key", style="bold"))
        parts.append(body(r.key))
        if r.headers:
            parts.append(Text("headers", style="bold"))
            for name, value in r.headers:
                parts.append(Text(f"  {name} = {preview(value)}"))
        parts.append(Text("value", style="bold"))
        parts.append(body(r.value))
        with Vertical(classes="dialog record"):
            with VerticalScroll():
                yield Static(Group(*parts), id="record-body")
            yield Static(Text("esc close"), classes="hint")

    def action_close(self) -> None:
        """Back to the tail."""
        self.dismiss(None)
