"""Keys and mouse on the made-up cluster (no broker needed): tabs by number and by click,
rows open with enter or a click on the highlighted row, glob filters, internal topics,
back with escape."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent

from kcli.tui.app import KcliApp
from kcli.tui.screens.group import GroupScreen
from kcli.tui.screens.main import MainScreen, matches
from kcli.tui.screens.topic import TopicScreen
from tests.tui.conftest import drive, until
from tests.tui.fake import FakeService, snapshots


def make_app() -> KcliApp:
    return KcliApp(FakeService(snapshots(3)), interval=0.2)


def keys(table: DataTable[Any]) -> list[str | None]:
    return [key.value for key in table.rows]


def test_filter_matches_text_or_glob() -> None:
    assert matches("orders", "")
    assert matches("Orders-EU", "ders")  # substring, any case
    assert matches("orders-eu", "ord*-eu")
    assert not matches("orders-eu", "ord*-us")
    assert matches("payments", "pay?ents")


def test_tabs_rows_and_filters_by_keyboard_and_mouse() -> None:
    app = make_app()

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        tabs = app.screen.query_one(TabbedContent)
        await pilot.click("Tab#--content-tab-groups-tab")
        assert tabs.active == "groups-tab"
        groups = app.screen.query_one("#groups", DataTable)
        await until(pilot, "the groups", lambda: keys(groups) == ["audit", "billing",
                                                                  "reports"])
        await pilot.click(groups, offset=(3, 2))  # the second row, billing: highlighted
        assert groups.cursor_row == 1
        await pilot.click(groups, offset=(3, 2))  # clicked again: opened
        await until(pilot, "the group", lambda: isinstance(app.screen, GroupScreen))
        assert isinstance(app.screen, GroupScreen)
        assert app.screen.group == "billing"
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)

        await pilot.press("2")
        assert tabs.active == "topics-tab"
        topics = app.screen.query_one("#topics", DataTable)
        await until(pilot, "the topics", lambda: keys(topics) == ["orders", "payments"])
        await pilot.press("i")  # internal topics too
        assert keys(topics) == ["__consumer_offsets", "orders", "payments"]
        await pilot.press("slash", *"p*s", "enter")
        assert keys(topics) == ["payments"]
        await pilot.press("enter")
        await until(pilot, "the topic", lambda: isinstance(app.screen, TopicScreen))
        await pilot.press("1")  # a tab key from a detail screen goes back to the tabs
        assert isinstance(app.screen, MainScreen)
        assert tabs.active == "cluster"
        await pilot.press("r", "q")

    drive(app, script)
