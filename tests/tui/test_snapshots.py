"""Every screen at 80x24, pinned with pytest-textual-snapshot, from the made-up cluster of
fake.py (fixed data, fixed poll times, UTC). Update after a deliberate change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from kcli.formats.envelope import Record
from kcli.tui.app import KcliApp
from tests.tui.conftest import until
from tests.tui.fake import T0, FakeService, snapshots

SnapCompare = Callable[..., bool]

RECORDS = [
    Record(key=b"order-41", value=b'{"order": 41, "items": [{"sku": "A-1", "qty": 2}]}',
           headers=[("trace", b"7f3a"), ("source", None)], partition=0,
           timestamp=int(T0 * 1000), topic="orders", offset=1158,
           timestamp_type="CreateTime"),
    Record(key=None, value=b"plain text\nover two lines", partition=1,
           timestamp=int(T0 * 1000) + 1500, topic="orders", offset=2159,
           timestamp_type="CreateTime"),
    Record(key=b"\xff\xfe", value=b"\x00\x01\x02", partition=2, timestamp=None,
           topic="orders", offset=659),
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app() -> KcliApp:
    return KcliApp(FakeService([snapshots(5)[-1]], RECORDS), interval=2.0)


async def polled(pilot: Pilot[Any]) -> None:
    kapp = pilot.app
    assert isinstance(kapp, KcliApp)
    await until(pilot, "the first poll", lambda: kapp.poll_state.phase == "ok")


def test_cluster(snap_compare: SnapCompare) -> None:
    assert snap_compare(app(), run_before=polled)


def test_topics(snap_compare: SnapCompare) -> None:
    assert snap_compare(app(), press=["2"], run_before=polled)


def test_groups(snap_compare: SnapCompare) -> None:
    assert snap_compare(app(), press=["3"], run_before=polled)


def test_group_detail(snap_compare: SnapCompare) -> None:
    # billing: falling behind (WARNING), growing lag, interpolated time lag
    assert snap_compare(app(), press=["3", "down", "enter"], run_before=polled)


def test_topic_detail_with_tail(snap_compare: SnapCompare) -> None:
    async def tailed(pilot: Pilot[Any]) -> None:
        await polled(pilot)
        await pilot.press("2", "enter")
        await until(pilot, "the tail", lambda: "tail: following" in str(
            pilot.app.screen.query_one("#tail-state").render()))

    assert snap_compare(app(), run_before=tailed)


def test_record_detail(snap_compare: SnapCompare) -> None:
    async def opened(pilot: Pilot[Any]) -> None:
        await polled(pilot)
        await pilot.press("2", "enter")
        await until(pilot, "the tail", lambda: "3 record(s)" in str(
            pilot.app.screen.query_one("#tail-state").render()))
        await pilot.press("up", "up", "enter")

    assert snap_compare(app(), run_before=opened)


def test_reset_preview(snap_compare: SnapCompare) -> None:
    async def planned(pilot: Pilot[Any]) -> None:
        await polled(pilot)
        await pilot.press("3", "down", "enter", "o", *"earliest", "enter")
        await until(pilot, "the plan", lambda: "dry run" in str(
            pilot.app.screen.query_one("#reset-state").render()))

    assert snap_compare(app(), run_before=planned)
