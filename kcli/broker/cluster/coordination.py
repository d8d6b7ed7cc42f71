"""How the brokers of a local cluster coordinate: files and flocks in the cluster directory.

Every broker of a local cluster runs on the same machine and is started with the same
cluster directory C, so they coordinate through the filesystem::

    C/metadata.json        the cluster metadata (brokers, topics, leaders, ISRs): jq-able
    C/metadata.lock        flock held for the length of one metadata transaction
    C/controller.lock      flock held by the controller for as long as it runs
    C/brokers/<id>.lock    flock held by broker <id> for as long as it runs

This is the documented equivalent of Kafka's controller (KRaft), piece by piece:

- Broker registration and liveness. Kafka brokers register with the controller and
  heartbeat; one that misses ``broker.session.timeout.ms`` is fenced. Here a broker
  writes its endpoint into ``metadata.json`` and holds ``brokers/<id>.lock``: it is live
  exactly while the lock is held. The kernel releases a flock when its process dies,
  even by SIGKILL, so death is seen at the next probe, without a session timeout.
- Controller election. Kafka's controllers elect an active controller through Raft;
  here every broker tries ``controller.lock`` without blocking now and then, and the one
  that holds it is the controller. It watches liveness and elects partition leaders
  (``controller.elect_leaders``); ``controller_id`` in the metadata names it.
- The metadata log. Kafka brokers replay the controller's metadata log; here they poll
  ``metadata.json`` (a stat, every 100 ms and before answering Metadata) and apply the
  new version when its epoch moved.
- Metadata changes. Any broker may change the metadata, in a transaction under
  ``metadata.lock`` (``MetadataStore.locked``); so CreateTopics, DeleteTopics, configs
  and producer-id blocks work on every broker, and a partition leader changes its ISR
  itself with a partition-epoch check (Kafka's AlterPartition).

To see who is live from a shell: ``flock -n C/brokers/2.lock true`` fails while broker 2
runs (and succeeds, taking the lock for an instant, when it does not).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path

from kcli.durable import PRIVATE_FILE, make_private_dir

CONTROLLER_LOCK = "controller.lock"
BROKERS_DIR = "brokers"


class BrokerIdInUse(Exception):
    """Another running process already holds this broker id's lock."""


def _lock_nb(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class ClusterDirectory:
    """The coordination files of one cluster directory, from one broker's side."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._broker_fd: int | None = None
        self._controller_fd: int | None = None

    def broker_lock_path(self, node_id: int) -> Path:
        """The lock file whose holder is broker ``node_id``."""
        return self.directory / BROKERS_DIR / f"{node_id}.lock"

    def acquire_broker(self, node_id: int, timeout: float = 2.0) -> None:
        """Take this broker's liveness lock for the life of the process.

        Retries for ``timeout`` seconds (a prober holds it for an instant), then raises
        BrokerIdInUse: another process runs with this id.
        """
        path = self.broker_lock_path(node_id)
        make_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        deadline = time.monotonic() + timeout
        while not _lock_nb(fd, fcntl.LOCK_EX):
            if time.monotonic() > deadline:
                os.close(fd)
                raise BrokerIdInUse(f"broker {node_id} is already running ({path} is locked)")
            time.sleep(0.01)
        self._broker_fd = fd

    def try_acquire_controller(self) -> bool:
        """Become the controller if nobody is; True while this process is it."""
        if self._controller_fd is not None:
            return True
        path = self.directory / CONTROLLER_LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        if not _lock_nb(fd, fcntl.LOCK_EX):
            os.close(fd)
            return False
        self._controller_fd = fd
        return True

    @property
    def is_controller(self) -> bool:
        """Whether this process holds the controller lock."""
        return self._controller_fd is not None

    def release_controller(self) -> None:
        """Stop being the controller (another broker takes over at its next try)."""
        if self._controller_fd is not None:
            os.close(self._controller_fd)
            self._controller_fd = None

    def is_live(self, node_id: int) -> bool:
        """Whether broker ``node_id`` holds its lock (a probe: takes it for an instant
        when it is free)."""
        try:
            fd = os.open(self.broker_lock_path(node_id), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if _lock_nb(fd, fcntl.LOCK_SH):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return False
            return True
        finally:
            os.close(fd)

    def live_brokers(self, node_ids: Iterable[int], me: int) -> set[int]:
        """Which of ``node_ids`` are live; ``me`` (this broker) always is."""
        return {n for n in node_ids if n == me or self.is_live(n)} | {me}

    def close(self) -> None:
        """Release every lock this process holds."""
        self.release_controller()
        if self._broker_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._broker_fd)
            self._broker_fd = None
