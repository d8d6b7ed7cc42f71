"""The dashboard on a 3-broker cluster: a killed broker stays on the cluster screen,
marked down, instead of vanishing with the count going from 3 to 2."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from kcli.tui.app import KcliApp
from kcli.tui.service import KafkaService
from tests.cluster.conftest import MakeCluster
from tests.tui.conftest import INTERVAL, drive, row, static_text, until


def test_a_killed_broker_is_shown_down(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3).start()
    cluster.create_topic("spread", partitions=3, replication=1)  # a partition on each
    service = KafkaService({"bootstrap.servers": cluster.node(1).bootstrap, "log_level": 0},
                           timeout=10, interval=INTERVAL)
    app = KcliApp(service, interval=INTERVAL)

    def states() -> list[list[str]]:
        brokers = app.screen.query_one("#brokers", DataTable)
        return [[row(brokers, key)[0], row(brokers, key)[3]] for key in brokers.rows]

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "three brokers up",
                    lambda: states() == [["1", "up"], ["2", "up"], ["3", "up"]])
        cluster.node(3).kill()
        await until(pilot, "broker 3 down",
                    lambda: states() == [["1", "up"], ["2", "up"], ["3", "down"]], limit=30)
        summary = static_text(app.screen.query_one("#cluster-summary", Static))
        assert "Brokers 3 (1 down)" in summary

    try:
        drive(app, script, size=(100, 30))
    finally:
        service.close()
