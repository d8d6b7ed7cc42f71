"""Local clusters of real `kcli broker run` processes sharing one cluster directory."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import free_port, kcli_command, kcli_env

T = TypeVar("T")

# Short timeouts keep failure drills quick; the defaults are Kafka's.
FAST_SETTINGS = {
    "replica.lag.time.max.ms": "3000",
    "default.replication.factor": "3",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.num.partitions": "6",
    "offsets.topic.num.partitions": "6",
    "group.min.session.timeout.ms": "1000",
}
_READY = re.compile(r"broker (\d+) ready, listening on")


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except Exception as error:  # a client error while the cluster moves: poll again
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")
        time.sleep(interval)


@dataclass
class PartitionView:
    """One partition as Metadata describes it."""

    leader: int
    replicas: list[int]
    isr: list[int]


class Node:
    """One broker process of a test cluster."""

    def __init__(self, cluster: TestCluster, node_id: int, port: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = port
        self.data_dir = cluster.root / f"broker-{node_id}"
        self.log_path = cluster.root / f"broker-{node_id}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def bootstrap(self) -> str:
        """host:port of this broker."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        """Start the process (see ``wait_ready``)."""
        args = ["broker", "run", "--node-id", str(self.node_id), "--data-dir",
                str(self.data_dir), "--listen", self.bootstrap,
                "--cluster-dir", str(self.cluster.cluster_dir)]
        for key, value in self.cluster.settings.items():
            # {port} and {port2}: this broker's port and the one after it (a second
            # listener), so that one settings dict serves every broker
            given = value.replace("{port}", str(self.port)).replace("{port2}",
                                                                  str(self.port + 1))
            args += ["-c", f"{key}={given}"]
        self.cluster.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._log_start = log_file.tell()
            self.process = subprocess.Popen(kcli_command(*args), stdout=log_file,
                                            stderr=log_file, env=kcli_env(),
                                            stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the broker logged that it is ready; fail with its log otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"broker {self.node_id} exited:\n{self.log()}")
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                if _READY.search(f.read().decode(errors="replace")):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker {self.node_id} did not start:\n{self.log()}")
            time.sleep(0.02)

    def log(self) -> str:
        """The broker's log (the end of it)."""
        try:
            return self.log_path.read_text(errors="replace")[-30000:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the clean exit; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def pause(self) -> None:
        """SIGSTOP: the broker is alive (its lock held) but does nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class TestCluster:
    """N brokers on consecutive free ports with one shared cluster directory."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, root: Path, size: int = 3, settings: dict[str, str] | None = None) -> None:
        self.root = root
        self.cluster_dir = root / "cluster"
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.nodes = {i: Node(self, i, free_port(2)) for i in range(1, size + 1)}

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers naming every broker."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def node(self, node_id: int) -> Node:
        """A broker by id."""
        return self.nodes[node_id]

    def start(self, *node_ids: int) -> TestCluster:
        """Start the given brokers (default: all) together and wait until each is ready."""
        nodes = [self.nodes[i] for i in node_ids] if node_ids else list(self.nodes.values())
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_ready()
        return self

    def stop(self) -> None:
        """Stop every running broker cleanly, all at once (as `kcli cluster stop` does)."""
        running = [n for n in self.nodes.values() if n.running]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        for node in running:
            assert node.process is not None
            code = node.process.wait(20)
            assert code == 0, f"broker {node.node_id} exited with {code}:\n{node.log()}"

    def kill_all(self) -> None:
        """SIGKILL whatever still runs (teardown)."""
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.resume()
                node.kill()

    def logs(self) -> str:
        """Every broker's log, for failure messages."""
        return "\n".join(f"===== broker {i}\n{n.log()}" for i, n in self.nodes.items())

    # ================================================================== metadata

    def admin(self) -> AdminClient:
        """An AdminClient on the running brokers."""
        running = ",".join(n.bootstrap for n in self.nodes.values() if n.running)
        return AdminClient({"bootstrap.servers": running or self.bootstrap})

    def metadata_file(self) -> dict[str, Any]:
        """The shared metadata document."""
        doc: dict[str, Any] = json.loads((self.cluster_dir / "metadata.json").read_text())
        return doc

    def partitions(self, topic: str, via: int | None = None) -> dict[int, PartitionView]:
        """A topic's partitions as a broker's Metadata answer describes them."""
        if via is not None:
            admin = AdminClient({"bootstrap.servers": self.nodes[via].bootstrap})
        else:
            admin = self.admin()
        meta = admin.list_topics(topic, timeout=5).topics[topic]
        if meta.error is not None:
            raise RuntimeError(str(meta.error))
        return {p.id: PartitionView(p.leader, list(p.replicas), list(p.isrs))
                for p in meta.partitions.values()}

    def leader(self, topic: str, partition: int) -> int:
        """The current leader per the shared metadata."""
        state = self.metadata_file()["topics"][topic]["partitions"][partition]
        return int(state["leader"])

    def create_topic(self, name: str, partitions: int = 1, replication: int = 3,
                     configs: dict[str, str] | None = None) -> None:
        """Create a topic and wait until every partition has a leader and a full ISR."""
        admin = self.admin()  # kept alive until the answer came
        futures = admin.create_topics(
            [NewTopic(name, partitions, replication, config=configs or {})],
            operation_timeout=10)
        futures[name].result(15)
        self.wait_in_sync(name, partitions, replication)

    def wait_in_sync(self, topic: str, partitions: int, replication: int = 3,
                     timeout: float = 30.0) -> None:
        """Wait until Metadata shows every partition led and with ``replication`` in-sync
        replicas."""
        def ready() -> bool:
            views = self.partitions(topic)
            return len(views) == partitions and all(
                v.leader >= 0 and len(v.isr) == replication for v in views.values())

        wait_for(ready, timeout, f"{topic} fully in sync")
