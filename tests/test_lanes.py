"""The `unit` lane's guard bites: a process, a connection or a Kafka client fails the test."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.support.lanes import UnitLaneViolation, unit_guard


def test_this_test_is_in_the_unit_lane(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None


def test_a_process_is_refused() -> None:
    with unit_guard("here") as seen:
        with pytest.raises(UnitLaneViolation, match="here is in the `unit` lane"):
            subprocess.run([sys.executable, "-c", "pass"], check=False)
        with pytest.raises(UnitLaneViolation):
            os.fork()
    assert seen == ["started a process", "called os.fork"]


def test_a_connection_is_refused() -> None:
    with unit_guard("here") as seen, socket.socket() as sock:
        with pytest.raises(UnitLaneViolation):
            sock.connect(("127.0.0.1", 9))
        with pytest.raises(UnitLaneViolation):
            sock.connect_ex(("127.0.0.1", 9))
    assert seen == ["connected a socket", "connected a socket"]


def test_a_kafka_client_is_refused() -> None:
    with unit_guard("here") as seen:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        with pytest.raises(UnitLaneViolation):
            Producer({"bootstrap.servers": "127.0.0.1:9"})
        with pytest.raises(UnitLaneViolation):
            AdminClient({"bootstrap.servers": "127.0.0.1:9"})
    assert seen == ["made a confluent_kafka Producer", "made a confluent_kafka AdminClient"]


def test_a_swallowed_attempt_is_still_seen() -> None:
    # as careless code under test might: the test still fails, at teardown
    with unit_guard("here") as seen, contextlib.suppress(Exception):
        subprocess.run(["true"], check=False)
    assert seen == ["started a process"]


def test_everything_is_back_afterwards() -> None:
    before = (subprocess.Popen.__init__, os.fork, socket.socket.connect)
    with unit_guard("here"):
        assert subprocess.Popen.__init__ is not before[0]
    assert (subprocess.Popen.__init__, os.fork, socket.socket.connect) == before


@pytest.mark.system  # starts `true`, to show the guard lets a thread from before through
def test_threads_from_before_are_not_the_tests_doing() -> None:
    started = threading.Event()
    go = threading.Event()
    result: list[object] = []

    def earlier_thread() -> None:
        started.set()
        go.wait(10)
        try:
            result.append(subprocess.run(["true"], check=False).returncode)
        except UnitLaneViolation as error:
            result.append(error)

    thread = threading.Thread(target=earlier_thread)
    with unit_guard("here") as seen:
        thread.start()  # new during the test: its process is refused
        started.wait(10)
        go.set()
        thread.join(10)
    assert isinstance(result[0], UnitLaneViolation)

    go.clear()
    result.clear()
    thread = threading.Thread(target=earlier_thread)
    thread.start()
    started.wait(10)
    with unit_guard("here") as seen:  # running before: passes through
        go.set()
        thread.join(10)
    assert result == [0]
    assert seen == []
