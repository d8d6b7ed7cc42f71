"""Reset a group's committed offsets: type a position, see the dry-run plan (exactly what
`kcli group reset` prints without --execute), then execute after a confirmation.

Planning and executing run in workers; the dialog only collects input and renders."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from kcli.tui.messages import ActionDone, ResetFailed, ResetPlanned
from kcli.tui.screens.base import KcliModalScreen
from kcli.tui.screens.dialogs import FIELD_KEYS
from kcli.tui.service import ResetPlan, describe_error
from kcli.tui.widgets import cells
from kcli.tui.widgets.tables import Col, SyncTable

POSITIONS = "earliest | latest | OFFSET | TIME (ISO-8601) | shift:N"


class ResetDialog(KcliModalScreen[None]):
    """Preview, then execute, an offset reset of one group."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close"),
                                              *FIELD_KEYS]

    def __init__(self, group: str, topics: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.group = group
        self.topics = topics
        self.plan: ResetPlan | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog reset"):
            yield Label(Text(f"Reset offsets of {self.group}", style="bold"), classes="title")
            yield Input(placeholder=f"to: {POSITIONS}", id="reset-to")
            yield Input(value=",".join(self.topics),
                        placeholder="topics, comma-separated (default: every committed topic)",
                        id="reset-topics")
            yield Static(Text("enter: preview (nothing changes until Execute)"),
                         id="reset-state")
            yield SyncTable([Col("TOPIC", "topic"), Col("P", "partition", 3),
                             # NEW as wide as its cells: "1,000 (clamped)" is never cut
                             Col("CURRENT", "current", 9), Col("NEW", "target"),
                             Col("END", "high", 9), Col("LAG AFTER", "lag_after", 9)],
                            id="reset-plan")
            with Horizontal(classes="buttons"):
                yield Button("Preview", variant="primary", id="preview")
                yield Button("Execute", variant="error", id="execute", disabled=True)
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#reset-to", Input).focus()

    # -- input

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.plan = None  # the preview no longer matches what is typed
        self.query_one("#execute", Button).disabled = True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "preview":
            self.preview()
        elif event.button.id == "execute":
            self.confirm()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without changing anything (or after executing)."""
        self.dismiss(None)

    def _say(self, text: str, style: str = "") -> None:
        color = cells.theme_color(self.app, style) if style else ""
        self.query_one("#reset-state", Static).update(Text(text, style=color))

    # -- preview

    def preview(self) -> None:
        """Ask for the dry-run plan of what is typed."""
        to = self.query_one("#reset-to", Input).value.strip()
        if not to:
            self._say(f"say where to: {POSITIONS}", "error")
            return
        topics = [t.strip() for t in self.query_one("#reset-topics", Input).value.split(",")
                  if t.strip()]
        self._say("planning…")
        self.make_plan(to, topics)

    @work(thread=True, exclusive=True, group="reset-plan", exit_on_error=False)
    def make_plan(self, to: str, topics: list[str]) -> None:
        """Plan off the UI thread."""
        try:
            plan = self.kapp.service.plan_reset(self.group, to, topics)
        except Exception as error:  # shown in the dialog, never a traceback
            self.post_message(ResetFailed(describe_error(error)))
        else:
            self.post_message(ResetPlanned(plan))

    def on_reset_planned(self, message: ResetPlanned) -> None:
        message.stop()
        plan = self.plan = message.plan
        self.query_one("#reset-plan", SyncTable).sync([
            (f"{c.topic}\0{c.partition}", [
                c.topic, cells.number(c.partition), cells.number(c.current),
                Text(f"{c.target:,}" + (" (clamped)" if c.clamped else ""), justify="right"),
                cells.number(c.high), cells.number(c.to_dict()["lag_after"])])
            for c in plan.changes
        ])
        blocked = plan.blocked
        self.query_one("#execute", Button).disabled = blocked is not None or not plan.changes
        if blocked:
            self._say(f"dry run of {len(plan.changes)} partition(s); cannot execute: {blocked}",
                      "warning")
        else:
            self._say(f"dry run: {len(plan.changes)} partition(s) would move to {plan.to}; "
                      "nothing changed yet")

    def on_reset_failed(self, message: ResetFailed) -> None:
        message.stop()
        self.plan = None
        self.query_one("#execute", Button).disabled = True
        self._say(message.error, "error")

    # -- execute

    def confirm(self) -> None:
        """Ask once more, then apply the plan shown."""
        from kcli.tui.screens.dialogs import ConfirmDialog

        plan = self.plan
        if plan is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._say("resetting…")
                self.query_one("#execute", Button).disabled = True
                self.execute(plan)

        self.app.push_screen(ConfirmDialog(
            f"Move the committed offsets of group {plan.group!r} on "
            f"{len(plan.changes)} partition(s) to {plan.to}?", confirm="Reset"), answered)

    @work(thread=True, exclusive=True, group="reset-apply", exit_on_error=False)
    def execute(self, plan: ResetPlan) -> None:
        """Apply off the UI thread."""
        try:
            self.kapp.service.apply_reset(plan)
        except Exception as error:  # shown in the dialog, never a traceback
            self.post_message(ResetFailed(describe_error(error)))
        else:
            self.post_message(ActionDone(
                f"reset {len(plan.changes)} partition(s) of group {plan.group} to {plan.to}"))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        self.app.notify(message.text)
        self.kapp.refresh_now()
        self.dismiss(None)
