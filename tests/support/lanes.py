"""Test lanes: which markers a test gets, and the guard that keeps the `unit` lane honest.

A test's lanes come from where it lives, the fixtures it uses and the modules it
imports; a `pytestmark` or `@pytest.mark.<lane>` adds what none of those can show. A
test in no other lane is `unit`, and while a `unit` test runs, starting a process or
opening a connection fails it (see `unit_guard`), so a misfiled test shows up the first
time it runs instead of quietly slowing the quick loop. The lanes are registered, with
a line each, under ``markers`` in pyproject.toml.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

LANES = ("broker", "cluster", "pty", "docs", "system")
"""Every lane but `unit`, which is what a test in none of these gets."""

BY_FIXTURE = {
    "broker": "broker",        # the session broker (`bootstrap`, `kcli`, `topic` use it)
    "make_broker": "broker",   # private brokers: restarts and crashes
    "group_broker": "broker",  # tests/broker/groups' own broker
    "make_cluster": "cluster",  # tests/cluster/harness.py
    "cluster_dir": "cluster",  # `kcli cluster start` through the supervisor
    "run_kcli": "system",      # the kcli entry point as a child process
}
BY_DIRECTORY = {"docs": "docs"}
"""tests/<directory> -> lane, for every test under it."""
BY_IMPORT = {"pexpect": "pty"}
"""A test module importing this module at its top -> lane, for every test in it."""

TESTS = Path(__file__).resolve().parents[1]


def lanes_of(item: pytest.Item) -> set[str]:
    """The lanes a collected test belongs to, `unit` included."""
    lanes = {mark.name for mark in item.iter_markers() if mark.name in (*LANES, "unit")}
    if "unit" in lanes:
        raise pytest.UsageError(f"{item.nodeid}: `unit` is given to tests in no other lane "
                                "(tests/support/lanes.py), never by hand")
    fixtures = set(getattr(item, "fixturenames", ()))
    lanes |= {lane for name, lane in BY_FIXTURE.items() if name in fixtures}
    relative = item.path.resolve().relative_to(TESTS)
    lanes |= {lane for directory, lane in BY_DIRECTORY.items()
              if relative.parts[0] == directory}
    module = getattr(item, "module", None)
    names = vars(module) if module is not None else {}
    lanes |= {lane for name, lane in BY_IMPORT.items() if name in names}
    if "system" in lanes and len(lanes) > 1:
        lanes.discard("system")  # `system` is for what needs no broker, cluster or tty
    return lanes or {"unit"}


TMPFS = Path("/dev/shm")
TMPFS_ROOM = 512 * 1024 * 1024
"""Free bytes the tmpfs needs (a `-m unit` run leaves about 20 MB behind; pytest keeps
the last three runs)."""


def use_tmpfs_for_a_unit_run(config: pytest.Config) -> None:
    """`pytest -m unit` on its own keeps its temp files on a tmpfs when there is one with
    room: the storage tests fsync a lot, and on a busy disk those waits are most of the
    lane's time. TMPDIR, PYTEST_DEBUG_TEMPROOT or --basetemp, when given, win."""
    if (config.option.markexpr or "").strip() != "unit" or config.option.basetemp \
            or os.environ.get("TMPDIR") or os.environ.get("PYTEST_DEBUG_TEMPROOT"):
        return
    try:
        free = os.statvfs(TMPFS)
    except OSError:
        return
    if os.access(TMPFS, os.W_OK) and free.f_bavail * free.f_frsize >= TMPFS_ROOM:
        tempfile.tempdir = str(TMPFS)


class UnitLaneViolation(AssertionError):
    """A `unit` test started a process or opened a connection."""


@contextmanager
def unit_guard(nodeid: str) -> Iterator[list[str]]:
    """While it is entered, starting a process (subprocess, fork, spawn, pexpect),
    connecting a socket, or making a confluent-kafka client (librdkafka opens its own
    sockets, out of Python's sight) raises `UnitLaneViolation`. Each attempt is also
    listed in what it yields, so one that the code under test swallows is still seen.
    Threads that were running before (a client an earlier test left behind, say) are
    not the test's doing and pass through; the test's thread and its new ones do not."""
    import confluent_kafka
    import confluent_kafka.admin

    seen: list[str] = []
    earlier = {t.ident for t in threading.enumerate()} - {threading.get_ident()}

    def refuse(what: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def refused(*args: object, **kwargs: object) -> Any:
            if threading.get_ident() in earlier:
                return original(*args, **kwargs)
            seen.append(what)
            raise UnitLaneViolation(
                f"{nodeid} is in the `unit` lane but {what}: give it its lane "
                "(tests/support/lanes.py, or pytestmark = pytest.mark.<lane>)")
        return refused

    targets: list[tuple[object, str, str]] = [(subprocess.Popen, "__init__", "started a process")]
    targets += [(os, name, f"called os.{name}")
                for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")
                if hasattr(os, name)]
    targets += [(socket.socket, name, "connected a socket") for name in ("connect", "connect_ex")]
    targets += [(module, name, f"made a confluent_kafka {name}")
                for module, name in ((confluent_kafka, "Producer"), (confluent_kafka, "Consumer"),
                                     (confluent_kafka.admin, "AdminClient"))]
    with pytest.MonkeyPatch.context() as patch:
        for target, name, what in targets:
            patch.setattr(target, name, refuse(what, getattr(target, name)))
        yield seen
