"""Start the embedded Schema Registry (``python -m kcli.registry``) for tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.broker import free_port, kcli_env


class RegistryProcess:
    """One registry process against a broker, logging to a file."""

    def __init__(self, bootstrap: str, log_path: Path) -> None:
        self.bootstrap = bootstrap
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RegistryProcess:
        """Start it and wait until it answers GET /subjects."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kcli.registry", "--bootstrap", self.bootstrap,
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=log, env=kcli_env(), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"registry exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not answer in {timeout}s:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM and wait."""
        if self.process is None:
            return None
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def log(self) -> str:
        """What it wrote."""
        try:
            return self.log_path.read_text(errors="replace")[-10000:]
        except FileNotFoundError:
            return ""
