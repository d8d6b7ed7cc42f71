"""The dashboard driven with a Pilot against the session broker: navigation, filters,
topic detail and the live tail, group lag and status, reset with a dry-run preview,
create and delete with confirmation."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka.admin import AdminClient
from textual import events
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Static, TabbedContent

from kcli.tui.app import KcliApp
from kcli.tui.screens.dialogs import ConfirmDialog, RecordDialog
from kcli.tui.screens.group import GroupScreen
from kcli.tui.screens.main import MainScreen
from kcli.tui.screens.reset import ResetDialog
from kcli.tui.screens.topic import TopicScreen
from kcli.tui.service import KafkaService
from tests.tui.conftest import (
    INTERVAL,
    committed,
    create_topic,
    drive,
    join_and_commit,
    produce,
    rendered_text,
    row,
    static_text,
    until,
)


def table(app: KcliApp, selector: str) -> DataTable[Any]:
    return app.screen.query_one(selector, DataTable)


def test_cluster_topics_filter_topic_detail_and_tail(
        service: KafkaService, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    topic = create_topic(admin, topic_name, 3)
    produce(bootstrap, topic, [f"v{i}".encode() for i in range(6)], partition=1)
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        assert isinstance(app.screen, MainScreen)
        summary = static_text(app.screen.query_one("#cluster-summary", Static))
        assert "Brokers 1" in summary
        host, port = bootstrap.rsplit(":", 1)
        brokers = table(app, "#brokers")
        assert [row(brokers, key)[:5] for key in brokers.rows] == [["1", host, port, "up", "●"]]
        status = static_text(app.screen.query_one("#status", Static))
        assert bootstrap in status
        assert "every 0.25 s" in status

        await pilot.press("2")
        assert app.screen.query_one(TabbedContent).active == "topics-tab"
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*topic[-6:])  # a part of the name is enough
        topics = table(app, "#topics")
        await until(pilot, "the filter", lambda: list(topics.rows) == [topic])
        assert row(topics, topic)[:4] == [topic, "3", "1", "6"]
        await pilot.press("enter", "enter")  # leave the filter, open the topic
        await until(pilot, "the topic screen", lambda: isinstance(app.screen, TopicScreen))

        parts = table(app, "#partitions")
        await until(pilot, "partition rows", lambda: len(parts.rows) == 3)
        assert [row(parts, str(p))[4:6] for p in range(3)] == [["0", "0"], ["0", "6"],
                                                                ["0", "0"]]
        tail = table(app, "#tail")
        await until(pilot, "the tail", lambda: len(tail.rows) == 6)
        assert row(tail, "1:5")[:2] == ["1", "5"]
        assert row(tail, "1:5")[4] == "v5"

        # new records show up; paused, they are held and shown on resume
        value = orjson.dumps({"order": 7, "items": [{"sku": "A-1", "qty": 2}]})
        produce(bootstrap, topic, [value], partition=2, headers=[("trace", b"abc")])
        await until(pilot, "a live record", lambda: "2:0" in tail.rows)
        assert row(tail, "2:0")[5] == "1"  # one header
        await pilot.press("p")
        produce(bootstrap, topic, [b"later"], partition=0)
        state = app.screen.query_one("#tail-state", Static)
        await until(pilot, "a held record", lambda: "1 new record(s) held" in static_text(state))
        assert "0:0" not in tail.rows
        await pilot.press("p")
        assert "0:0" in tail.rows

        # the JSON record in full, pretty-printed
        tail.focus()
        tail.move_cursor(row=list(tail.rows).index("2:0"))
        await pilot.press("enter")
        await until(pilot, "the record", lambda: isinstance(app.screen, RecordDialog))
        shown = rendered_text(app.screen.query_one("#record-body", Static))
        assert '"sku": "A-1"' in shown
        assert '\n  "items": [' in shown  # indented: pretty-printed
        assert "trace = abc" in shown
        await pilot.press("escape", "escape")
        await until(pilot, "the main screen", lambda: isinstance(app.screen, MainScreen))
        await pilot.press("q")

    drive(app, script)


def test_group_lag_status_and_reset_preview(
        service: KafkaService, admin: AdminClient, bootstrap: str, topic_name: str,
        group_name: str) -> None:
    topic = create_topic(admin, topic_name, 3)
    for p in range(3):
        produce(bootstrap, topic, [f"v{i}".encode() for i in range(10)], partition=p)
    member = join_and_commit(bootstrap, topic, group_name, {0: 4, 1: 4, 2: 4})
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        await pilot.press("3", "slash", *group_name[-6:], "enter")
        groups = table(app, "#groups")
        await until(pilot, "the group", lambda: list(groups.rows) == [group_name])
        cells = row(groups, group_name)
        assert cells[:4] == [group_name, "Stable", "1", "18"]
        # a live member holding its partitions while the committed offsets stand still
        await until(pilot, "STALLED", lambda: row(groups, group_name)[5] == "STALLED")

        await pilot.press("enter")
        await until(pilot, "the group screen", lambda: isinstance(app.screen, GroupScreen))
        parts = table(app, "#group-partitions")
        await until(pilot, "partition rows", lambda: len(parts.rows) == 3)
        lags = [row(parts, f"{topic}\0{p}") for p in range(3)]
        assert sum(int(r[4]) for r in lags) == 18
        assert all(r[3] == "10" for r in lags)  # end offsets
        assert all(r[7].startswith("tui-member/") for r in lags)
        members = table(app, "#members")
        assert [row(members, k)[0] for k in members.rows] == ["tui-member"]
        title = static_text(app.screen.query_one("#group-title", Static))
        assert "Lag 18" in title

        # the dry run: a plan, and no Execute while the group has a member
        group_screen = app.screen
        await pilot.press("o")
        await until(pilot, "the reset dialog", lambda: isinstance(app.screen, ResetDialog))
        await pilot.press(*"earliest", "enter")
        plan = table(app, "#reset-plan")
        await until(pilot, "the plan", lambda: len(plan.rows) == 3)
        assert {row(plan, f"{topic}\0{p}")[3] for p in range(3)} == {"0"}
        state = app.screen.query_one("#reset-state", Static)
        assert "stop its consumers" in static_text(state)
        assert app.screen.query_one("#execute", Button).disabled

        member.close()
        # nobody consumes, the offsets stand still, there is lag: stopped
        title = group_screen.query_one("#group-title", Static)
        await until(pilot, "STOPPED", lambda: "Empty" in static_text(title)
                    and "status STOPPED" in static_text(title))
        await pilot.click("#reset-to")
        await pilot.press("enter")  # preview again
        execute = app.screen.query_one("#execute", Button)
        await until(pilot, "Execute", lambda: not execute.disabled)
        assert "nothing changed yet" in static_text(state)
        assert sum(committed(admin, group_name).values()) == 12
        await pilot.click("#execute")
        await until(pilot, "the confirmation", lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, "the reset", lambda: committed(admin, group_name)
                    == {(topic, p): 0 for p in range(3)})
        await until(pilot, "the group screen", lambda: isinstance(app.screen, GroupScreen))
        await pilot.press("3")
        # moved back: Burrow calls a committed offset lower than before a rewind
        await until(pilot, "REWIND", lambda: row(table(app, "#groups"), group_name)
                    == [group_name, "Empty", "0", "30", row(table(app, "#groups"),
                                                           group_name)[4], "REWIND"])
        await pilot.press("q")

    try:
        drive(app, script)
    finally:
        member.close()


def test_create_and_delete_topic_with_confirmation(
        service: KafkaService, admin: AdminClient, topic_name: str) -> None:
    topic_name = topic_name[:10]  # typed key by key: short
    app = KcliApp(service, interval=INTERVAL)

    def exists() -> bool:
        return topic_name in admin.list_topics(timeout=10).topics

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        await pilot.press("2", "n")
        await pilot.press(*topic_name, "tab", "x", "enter")
        error = app.screen.query_one("#create-error", Static)
        assert "partitions must be a positive whole number" in static_text(error)
        await pilot.press("backspace", "2", "enter")
        await until(pilot, "the new topic", exists)
        await pilot.press("slash", *topic_name[-6:], "enter")
        topics = table(app, "#topics")
        await until(pilot, "the new row", lambda: row(topics, topic_name)[1] == "2")

        await pilot.press("d")
        await until(pilot, "the question", lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # No: nothing happens
        await pilot.press("d", "y")
        await until(pilot, "the topic to go", lambda: not exists())
        await until(pilot, "the row to go", lambda: topic_name not in topics.rows)
        await pilot.press("q")

    drive(app, script)


def burst(app: KcliApp, *keys: str) -> None:
    """Keys arriving together, as from `tmux send-keys` or a fast typist: all queued
    before the app handles the first (Pilot.press waits after each key)."""
    characters = {"tab": "\t", "enter": "\r"}
    driver = app._driver
    assert driver is not None
    for key in keys:
        event = events.Key(key, characters.get(key, key))
        event.set_sender(app)
        driver.send_message(event)


def test_fields_follow_tab_when_keys_arrive_together(
        service: KafkaService, admin: AdminClient, topic_name: str) -> None:
    name = f"t{topic_name[-8:]}"
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        await pilot.press("2", "n")
        burst(app, *name, "tab", "2", "tab", "1", "enter")
        await until(pilot, "the new topic",
                    lambda: name in admin.list_topics(timeout=10).topics)
        topic = admin.list_topics(name, timeout=10).topics[name]
        assert len(topic.partitions) == 2
        assert {len(p.replicas) for p in topic.partitions.values()} == {1}
        assert f"{name}21" not in admin.list_topics(timeout=10).topics
        await pilot.press("q")

    drive(app, script)


def test_a_consumer_protocol_group_shows_its_protocol_and_assignor(
        service: KafkaService, admin: AdminClient, bootstrap: str, topic_name: str,
        group_name: str) -> None:
    topic = create_topic(admin, topic_name, 2)
    member = join_and_commit(bootstrap, topic, group_name, {0: 0, 1: 0},
                             **{"group.protocol": "consumer"})
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        await pilot.press("3", "slash", *group_name[-6:], "enter")
        groups = table(app, "#groups")
        await until(pilot, "the group", lambda: list(groups.rows) == [group_name])
        await pilot.press("enter")
        await until(pilot, "the group screen", lambda: isinstance(app.screen, GroupScreen))
        title = app.screen.query_one("#group-title", Static)
        await until(pilot, "the title", lambda: "member(s)" in static_text(title))
        assert ("Stable · 1 member(s) · consumer protocol, uniform assignor, epoch 1 ·"
                in static_text(title))
        members = table(app, "#members")
        await until(pilot, "the member", lambda: len(members.rows) == 1)
        (key,) = members.rows
        assert row(members, key)[2] == f"{topic}[0],{topic}[1]"
        await pilot.press("q")

    try:
        drive(app, script)
    finally:
        member.close()


def test_open_transactions_and_the_last_stable_offset(
        service: KafkaService, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    from confluent_kafka import Producer

    topic = create_topic(admin, topic_name, 1)
    produce(bootstrap, topic, [b"before"], partition=0)
    transactional_id = f"dash-{topic_name}"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"open", partition=0)
    producer.flush(10)
    produce(bootstrap, topic, [b"after"], partition=0)
    app = KcliApp(service, interval=INTERVAL)

    async def script(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.snapshot is not None)
        txns = app.screen.query_one("#transactions", Static)
        await until(pilot, "the open transaction",
                    lambda: transactional_id in static_text(txns))
        assert f"{transactional_id}   producer " in static_text(txns)
        assert "Ongoing   coordinator 1" in static_text(txns)
        await pilot.press("2")
        topics = table(app, "#topics")
        await until(pilot, "the topic", lambda: topic in topics.rows)
        topics.move_cursor(row=list(topics.rows).index(topic))
        await pilot.press("enter")
        await until(pilot, "the topic screen", lambda: isinstance(app.screen, TopicScreen))
        parts = table(app, "#partitions")
        await until(pilot, "partition rows", lambda: len(parts.rows) == 1)
        assert row(parts, "0")[4:7] == ["0", "3", "1"]  # HIGH 3, LSO held at 1
        producer.commit_transaction(10)
        await until(pilot, "the LSO at the end", lambda: row(parts, "0")[6] == "")
        await pilot.press("escape")
        await until(pilot, "the main screen", lambda: isinstance(app.screen, MainScreen))
        await pilot.press("1")
        await until(pilot, "the transaction ended", lambda: transactional_id not in static_text(
            app.screen.query_one("#transactions", Static)))
        await pilot.press("q")

    drive(app, script)
