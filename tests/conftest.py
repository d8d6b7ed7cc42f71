"""Session fixtures: one real broker over TCP for the whole run, a fresh topic per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """The session broker: started on a free port in a temp dir, answering Metadata."""
    process = BrokerProcess(tmp_path_factory.mktemp("session") / "broker")
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker exited with {code}:\n{process.log()}"


@pytest.fixture
def bootstrap(broker: BrokerProcess) -> str:
    """bootstrap.servers of the session broker."""
    return broker.bootstrap


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[object]:
    """Factory for private brokers (restart and crash tests); all are stopped at the end."""
    started: list[BrokerProcess] = []

    def factory(name: str = "private", **kwargs: object) -> BrokerProcess:
        process = BrokerProcess(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process

    yield factory
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def kcat() -> str:
    """Path of kcat; the suite fails (never skips) without it."""
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed: scripts/test installs it (apt-get install kcat)")
    return path
