"""The Schema Registry process of a local cluster: one per cluster, started after the
brokers, stopped before them, its state in the cluster's ``_schemas`` topic.

Its port is 8081 (Confluent's) for a cluster on 9092, else the broker port shifted the
same way (19092 -> 18081), else any free port; the one it got is kept in
``cluster.json`` and reused on the next start when it is still free.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kcli.durable import make_private_dir
from kcli.errors import OperationFailed

DEFAULT_PORT = 8081
BROKER_DEFAULT_PORT = 9092
START_TIMEOUT = 60.0


@dataclass
class RegistryProcess:
    """The registry process of one local cluster."""

    port: int
    pid: int = 0

    @property
    def url(self) -> str:
        """The URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether its process runs."""
        from kcli.local.supervisor import pid_alive

        return pid_alive(self.pid)

    def to_json(self) -> dict[str, object]:
        """Its entry in cluster.json."""
        return {"url": self.url, "port": self.port, "pid": self.pid}

    @classmethod
    def from_json(cls, doc: object) -> RegistryProcess | None:
        """The entry read back; None when there is none."""
        if not isinstance(doc, dict) or not isinstance(doc.get("port"), int):
            return None
        pid = doc.get("pid")
        return cls(int(doc["port"]), pid if isinstance(pid, int) else 0)


def choose_port(broker_port: int, previous: int | None = None) -> int:
    """The registry's port: the one it had, else 8081 shifted like the broker port,
    else one the kernel picks."""
    from kcli.local.supervisor import port_in_use

    shifted = DEFAULT_PORT + broker_port - BROKER_DEFAULT_PORT
    for candidate in (previous, shifted):
        if candidate is not None and 1024 <= candidate <= 65535 and not port_in_use(candidate):
            return candidate
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_file(data_dir: Path) -> Path:
    """Where the registry's stderr goes."""
    return data_dir / "logs" / "registry.log"


def spawn(data_dir: Path, bootstrap: str, registry: RegistryProcess,
          client_config: Path | None = None) -> None:
    """Start the registry process, detached like the brokers; ``client_config`` holds
    its login to the brokers (a secured cluster)."""
    path = log_file(data_dir)
    make_private_dir(path.parent)
    args = [sys.executable, "-P", "-m", "kcli.registry", "--bootstrap", bootstrap,
            "--listen", f"127.0.0.1:{registry.port}"]
    if client_config is not None:
        args += ["--client-config", str(client_config)]
    from kcli.local.supervisor import spawn_detached

    registry.pid = spawn_detached(args, path)


def answers(url: str) -> bool:
    """Whether a registry at ``url`` answers ``GET /subjects``."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def wait_until_ready(data_dir: Path, registry: RegistryProcess,
                     timeout: float = START_TIMEOUT) -> None:
    """Wait until the registry has read ``_schemas`` and answers; an exit is an error
    with the last line of its log."""
    deadline = time.monotonic() + timeout
    while not answers(registry.url):
        if not registry.alive:
            from kcli.local.supervisor import log_tail

            raise OperationFailed(f"the schema registry exited during start-up: "
                                  f"{log_tail(log_file(data_dir))} "
                                  f"(log: {log_file(data_dir)})")
        if time.monotonic() > deadline:
            raise OperationFailed(f"the schema registry did not answer within {timeout:.0f}s; "
                                  f"see {log_file(data_dir)}")
        time.sleep(0.1)


def terminate(registry: RegistryProcess, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    if not registry.alive:
        registry.pid = 0
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(registry.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while registry.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    if registry.alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(registry.pid, signal.SIGKILL)
    registry.pid = 0
