"""A cluster that cannot be reached, or goes away: the dashboard says so in its status
line, keeps the last data it had (and says how old it is), stays responsive, comes back
when the cluster does, and quits at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from kcli.tui.app import KcliApp
from kcli.tui.service import KafkaService
from kcli.tui.widgets.status import StatusBar
from tests.support.broker import BrokerProcess, free_port
from tests.tui.conftest import INTERVAL, drive, static_text, until


def status(app: KcliApp) -> str:
    return static_text(app.screen.query_one(StatusBar))


@pytest.mark.system  # a real client against a closed port
def test_unreachable_from_the_start() -> None:
    address = f"127.0.0.1:{free_port()}"
    service = KafkaService({"bootstrap.servers": address, "log_level": 0}, timeout=5,
                           interval=INTERVAL)
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the failure", lambda: app.poll_state.phase == "failed")
        bar = app.screen.query_one(StatusBar)
        assert bar.has_class("-failed")
        assert status(app).startswith(f"✖ cannot reach {address}: Connection refused")
        assert "retrying every 0.25 s" in status(app)
        assert "waiting for the first poll" in static_text(app.screen.query_one(
            "#cluster-summary", Static))
        await pilot.press("3")  # still answers keys
        assert app.screen.query_one(TabbedContent).active == "groups-tab"
        started = time.monotonic()
        await pilot.press("q")
        assert time.monotonic() - started < 2

    drive(app, script)
    service.close()


def test_cluster_going_away_and_coming_back(
        make_broker: Callable[..., BrokerProcess]) -> None:
    private = make_broker("going-away", port=free_port()).start()
    service = KafkaService({"bootstrap.servers": private.bootstrap, "log_level": 0},
                           timeout=2, interval=INTERVAL)
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.poll_state.phase == "ok")
        brokers = app.screen.query_one("#brokers", DataTable)
        assert len(brokers.rows) == 1
        private.stop()
        await until(pilot, "the failure", lambda: app.poll_state.phase == "failed")
        assert f"{private.bootstrap}" in status(app)
        assert "data from " in status(app)  # the last good poll, still on screen
        assert len(brokers.rows) == 1
        private.start()  # same port, same data
        await until(pilot, "the cluster back", lambda: app.poll_state.phase == "ok", 20)
        assert status(app).startswith(f"● {private.bootstrap} · polled")
        await pilot.press("q")

    drive(app, script)
    service.close()
