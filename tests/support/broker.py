"""Start real broker processes for tests, through the real `kcli broker run` entry point."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"ready, listening on [^\s]+:(\d+)")


def kcli_env(source: Path | None = None) -> dict[str, str]:
    """Environment for kcli subprocesses: this checkout (or ``source``, another one: a
    benchmark's "before") first on the import path."""
    env = dict(os.environ)
    root = str(source or REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.pop("KCLI_BOOTSTRAP", None)
    return env


def kcli_command(*args: str) -> list[str]:
    """argv running the kcli entry point of this checkout."""
    return [sys.executable, "-m", "kcli", *args]


class BrokerProcess:
    """One `kcli broker run` process with its own data dir and log file."""

    def __init__(self, data_dir: Path, node_id: int = 1, settings: dict[str, str] | None = None,
                 port: int = 0, open_files: int | None = None,
                 source: Path | None = None) -> None:
        self.data_dir = data_dir
        self.source = source
        """Another checkout to run the broker from (None: this one)."""
        self.open_files = open_files
        """RLIMIT_NOFILE (soft and hard) for the process, None: inherited."""
        self.node_id = node_id
        self.settings = dict(settings or {})
        self.port = port
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BrokerProcess:
        """Start the process and wait until it answers Metadata; fails loudly otherwise."""
        args = ["broker", "run", "--node-id", str(self.node_id), "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}"]
        if self.settings:  # in a file, as server.properties: secrets stay out of `ps`
            from kcli.broker.properties import format_properties

            config_file = self.data_dir.parent / f"{self.data_dir.name}.properties"
            config_file.write_text(format_properties(self.settings), encoding="utf-8")
            args += ["--config-file", str(config_file)]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 (kept open by the child)
        start_offset = log_file.tell()
        self.process = subprocess.Popen(self._command(args), stdout=log_file, stderr=log_file,
                                        env=kcli_env(self.source), stdin=subprocess.DEVNULL)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                match = _READY.search(f.read().decode(errors="replace"))
            if match:
                self.port = int(match.group(1))
                self.wait_ready(deadline - time.monotonic())
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"broker did not start in {timeout}s:\n{self.log()}")

    def _command(self, args: list[str]) -> list[str]:
        command = kcli_command(*args)
        if self.open_files is None:
            return command
        # set the limit in the child and exec the broker (no preexec_fn: the tests' client
        # threads make forking with one unsafe)
        limit = (f"import os, resource, sys; n = {self.open_files}; "
                 "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
                 "os.execv(sys.argv[1], sys.argv[1:])")
        return [sys.executable, "-c", limit, *command]

    def wait_ready(self, timeout: float) -> None:
        """Wait until the broker answers a Metadata request from a real client."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.list_topics(timeout=max(timeout, 1.0))

    def log(self) -> str:
        """Everything the broker wrote to stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"broker did not stop in {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: a crash, as far as the data on disk is concerned."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive TCP ports that were free a moment ago.

    Chosen below Linux's ephemeral range (32768+): ports there are handed to outgoing
    connections, so the neighbours of a port the kernel picked can be taken by a client
    socket before a multi-broker cluster binds them."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def kill_local_cluster(directory: Path) -> None:
    """SIGKILL every broker (and the schema registry) a `kcli cluster` in `directory`
    recorded as running."""
    state = directory / "cluster.json"
    if state.exists():
        doc = json.loads(state.read_text())
        for process in [*doc["brokers"], doc.get("schema_registry") or {}]:
            if process.get("pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process["pid"], signal.SIGKILL)


def log_bytes(partition_dir: Path) -> int:
    """Bytes in a partition's segment files; one the broker deletes or swaps away while
    they are counted (retention, the cleaner) counts as gone."""
    total = 0
    for path in partition_dir.glob("*.log"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total
