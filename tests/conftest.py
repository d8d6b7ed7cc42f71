"""Session fixtures: one real broker over TCP for the whole run, a fresh topic per test;
and the test lanes (tests/support/lanes.py): every test gets its markers here."""

from __future__ import annotations

import functools
import gc
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from tests.support.broker import BrokerProcess
from tests.support.lanes import lanes_of, unit_guard, use_tmpfs_for_a_unit_run
from tests.support.registry import RegistryProcess

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient


def pytest_configure(config: pytest.Config) -> None:
    use_tmpfs_for_a_unit_run(config)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its lanes: `unit`, or any of the others."""
    for item in items:
        for lane in sorted(lanes_of(item)):
            item.add_marker(lane)


@pytest.fixture(autouse=True)
def _unit_lane_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """A `unit` test that starts a process or opens a connection fails."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with unit_guard(request.node.nodeid) as seen:
        yield
    if seen:
        pytest.fail(f"{request.node.nodeid} is in the `unit` lane but "
                    f"{', '.join(sorted(set(seen)))}", pytrace=False)


@functools.cache
def _uses_kafka_python(module: ModuleType) -> bool:
    return any(getattr(value, "__module__", "").startswith(("kafka.", "aiokafka"))
               for value in vars(module).values())


@pytest.fixture(autouse=True)
def _kafka_python_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """kafka-python and aiokafka leave the sockets of some connection attempts to the
    garbage collector. Collected here, quietly, after each test of a module that uses
    them; otherwise their ResourceWarning (an error under filterwarnings) lands in
    whatever test the same worker runs next."""
    yield
    if _uses_kafka_python(request.module):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """The session broker: started on a free port in a temp dir, answering Metadata."""
    process = BrokerProcess(tmp_path_factory.mktemp("session") / "broker")
    process.start()
    yield process
    code = process.stop()
    assert code == 0, f"broker exited with {code}:\n{process.log()}"


@pytest.fixture(scope="session")
def schema_registry(broker: BrokerProcess,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an embedded Schema Registry on the session broker (its `_schemas`)."""
    process = RegistryProcess(broker.bootstrap,
                              tmp_path_factory.mktemp("registry") / "registry.log").start()
    yield process.url
    code = process.stop()
    assert code == 0, f"registry exited with {code}:\n{process.log()}"


@pytest.fixture
def registry_clients() -> Iterator[Callable[[str], SchemaRegistryClient]]:
    """confluent-kafka SchemaRegistryClient factory; their connections close at the end."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    made: list[SchemaRegistryClient] = []

    def make(url: str) -> SchemaRegistryClient:
        made.append(SchemaRegistryClient({"url": url}))
        return made[-1]

    yield make
    for client in made:
        client.close()


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
