"""The local-cluster supervisor: start, stop, inspect and break broker processes.

A local cluster lives in one data directory::

    <data-dir>/cluster/          shared metadata of the cluster (metadata.json, locks)
    <data-dir>/broker-<id>/      each broker's partitions
    <data-dir>/logs/broker-<id>.log, registry.log
    <data-dir>/cluster.json      the supervisor's record: ports, pids, bootstrap

and the same record is registered in the state directory (see
:mod:`kcli.local.registry`) so every other kcli command finds the running cluster
without ``-b``. Brokers run as detached processes (their own session), so the cluster
outlives the command that started it, unless ``--foreground``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kcli.durable import PRIVATE_FILE, make_private_dir, write_atomically
from kcli.errors import BadInput, NotFound, OperationFailed
from kcli.local import registry, security
from kcli.local import schema_registry as sr
from kcli.local.registry import STATE_FILE, default_data_dir, process_exists
from kcli.local.schema_registry import RegistryProcess

DEFAULT_PORT = 9092
MAX_BROKERS = 9
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class BrokerProcess:
    """One broker of the local cluster, as the supervisor started it."""

    node_id: int
    port: int
    pid: int = 0

    @property
    def alive(self) -> bool:
        """Whether the broker's process is still running."""
        return pid_alive(self.pid)


@dataclass
class LocalCluster:
    """The supervisor's record of one local cluster."""

    data_dir: Path
    brokers: list[BrokerProcess] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    schema_registry: RegistryProcess | None = None
    """The cluster's Schema Registry; None when started with --no-registry."""
    secure: bool = False
    """SASL_SSL with SCRAM-SHA-512 and ACLs (kcli.local.security); fixed at creation."""

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients."""
        return ",".join(f"127.0.0.1:{b.port}" for b in self.brokers)

    @property
    def cluster_dir(self) -> Path:
        """The shared metadata directory."""
        return self.data_dir / "cluster"

    def broker(self, node_id: int) -> BrokerProcess:
        """A broker by id; NotFound names the ones that exist."""
        for broker in self.brokers:
            if broker.node_id == node_id:
                return broker
        ids = ", ".join(str(b.node_id) for b in self.brokers)
        raise NotFound(f"no broker {node_id} in this cluster (brokers: {ids})")

    def log_file(self, node_id: int) -> Path:
        """Where a broker's stderr goes."""
        return self.data_dir / "logs" / f"broker-{node_id}.log"

    def running(self) -> list[BrokerProcess]:
        """Brokers whose process is alive."""
        return [b for b in self.brokers if b.alive]

    def to_json(self) -> dict[str, object]:
        """The document written to cluster.json (the registry's format)."""
        return {
            "name": registry.name_for(self.data_dir),
            "bootstrap": self.bootstrap,
            "data_dir": str(self.data_dir),
            "brokers": [asdict(b) for b in self.brokers],
            "settings": self.settings,
            "schema_registry": self.schema_registry.to_json() if self.schema_registry else None,
            **({"secure": True} if self.secure else {}),
        }

    def save(self) -> None:
        """Record the cluster in its data dir and register it in the state directory."""
        doc = self.to_json()
        data = (json.dumps(doc, indent=2) + "\n").encode()
        make_private_dir(self.data_dir)
        write_atomically(self.data_dir / STATE_FILE, data)
        make_private_dir(registry.state_dir() / registry.CLUSTERS_DIR)
        write_atomically(registry.entry_path(str(doc["name"])), data)
        self._drop_legacy_pointer()

    def forget(self) -> None:
        """Remove the cluster's registry entry (after a purge or a failed first start)."""
        for entry in registry.known_clusters():
            if entry.data_dir == self.data_dir:
                with contextlib.suppress(FileNotFoundError):
                    registry.entry_path(entry.name).unlink()
        self._drop_legacy_pointer()

    def _drop_legacy_pointer(self) -> None:
        """Older versions kept one ``cluster.json`` in the state directory; once this
        cluster is registered by name, that pointer to it is stale."""
        path = registry.state_dir() / registry.LEGACY_FILE
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if Path(json.loads(path.read_text())["data_dir"]) == self.data_dir:
                path.unlink()

    @classmethod
    def load(cls, data_dir: Path) -> LocalCluster | None:
        """The cluster recorded in ``data_dir``, or None if there is none."""
        try:
            doc = json.loads((data_dir / STATE_FILE).read_text())
            return cls(
                data_dir=data_dir,
                brokers=[BrokerProcess(int(b["node_id"]), int(b["port"]), int(b.get("pid", 0)))
                         for b in doc["brokers"]],
                settings={str(k): str(v) for k, v in doc.get("settings", {}).items()},
                schema_registry=RegistryProcess.from_json(doc.get("schema_registry")),
                secure=bool(doc.get("secure", False)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OperationFailed(f"{data_dir / STATE_FILE} is damaged: {error}") from None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie of ours)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return process_exists(pid)


def resolve_data_dir(data_dir: Path | None, name: str | None = None) -> Path:
    """The data dir a cluster command means: ``--data-dir``, else ``--cluster NAME``,
    else the one running cluster, else (none running) the default cluster if it is
    known or the only known one; the default data dir when none is known."""
    if data_dir is not None:
        return data_dir.expanduser().resolve()
    if name:
        return registry.find(name).data_dir
    known = registry.known_clusters()
    running = [c for c in known if c.running]
    if len(running) == 1:
        return running[0].data_dir
    if running:
        listed = "; ".join(c.describe() for c in running)
        raise BadInput(f"{len(running)} local clusters are running: {listed}; "
                       "choose one with --cluster NAME or --data-dir DIR")
    default = default_data_dir()
    if len(known) == 1 or any(c.data_dir == default for c in known):
        return known[0].data_dir if len(known) == 1 else default
    if known:
        listed = "; ".join(c.describe() for c in known)
        raise BadInput(f"several local clusters are known: {listed}; "
                       "choose one with --cluster NAME or --data-dir DIR")
    return default


@contextlib.contextmanager
def supervisor_lock(data_dir: Path) -> Iterator[None]:
    """One supervisor command at a time per cluster."""
    make_private_dir(data_dir)
    fd = os.open(data_dir / ".supervisor.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def cluster_settings(brokers: int) -> dict[str, str]:
    """Broker settings of a local cluster: replicate internal and new topics to up to
    three brokers, as a production-like default; a follower that stopped keeping up
    leaves the ISR after 10 s (Kafka's replica.lag.time.max.ms is 30 s), and a broker
    back from a drill gets its leaderships back within 30 s (Kafka checks every 5
    minutes), so failure drills show their effect sooner."""
    from kcli.broker.configs import BROKER_SETTINGS

    replication = str(min(3, brokers))
    wanted = {"default.replication.factor": replication,
              "offsets.topic.replication.factor": replication,
              "transaction.state.log.replication.factor": replication,
              "replica.lag.time.max.ms": "10000",
              "leader.imbalance.check.interval.seconds": "30"}
    return {k: v for k, v in wanted.items() if k in BROKER_SETTINGS}


def kcli_argv() -> list[str]:
    """argv that runs this kcli in a new interpreter, whatever the current directory
    holds: ``-P`` keeps the current directory off sys.path (a ``kcli/`` folder there
    would shadow the package); PYTHONPATH, which tests use to run a checkout, still
    applies."""
    return [sys.executable, "-P", "-m", "kcli"]


def _spawn(cluster: LocalCluster, broker: BrokerProcess) -> None:
    log_file = cluster.log_file(broker.node_id)
    make_private_dir(log_file.parent)
    args = [*kcli_argv(), "broker", "run",
            "--node-id", str(broker.node_id),
            "--data-dir", str(cluster.data_dir / f"broker-{broker.node_id}"),
            "--listen", f"127.0.0.1:{broker.port}",
            "--cluster-dir", str(cluster.cluster_dir)]
    if cluster.secure:  # the settings holding the admin password stay in a 0600 file
        files = security.files_for(cluster.data_dir)
        args += ["--config-file", str(files.properties),
                 "-c", f"listeners=SASL_SSL://127.0.0.1:{broker.port}"]
    for key, value in sorted(cluster.settings.items()):
        args += ["-c", f"{key}={value}"]
    broker.pid = spawn_detached(args, log_file)


def spawn_detached(args: list[str], log_file: Path) -> int:
    """Start a process in its own session (it outlives the command that started it),
    stdout and stderr appended to ``log_file``; returns its pid."""
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE)
    with open(fd, "ab") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    return process.pid


def log_tail(path: Path) -> str:
    """The last non-empty line of a log: a broker that fails says why there."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _answers(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether a broker on this port answers an ApiVersions request (over TLS when a
    context is given: a SASL listener answers ApiVersions before any login)."""
    request = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04kcli"  # ApiVersions v0, id 1
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
            sock.sendall(len(request).to_bytes(4, "big") + request)
            header = sock.recv(10)
    except OSError:
        return False
    return len(header) >= 10 and header[4:8] == b"\x00\x00\x00\x01" and header[8:10] == b"\0\0"


def wait_until_ready(cluster: LocalCluster, brokers: list[BrokerProcess],
                     timeout: float = START_TIMEOUT) -> None:
    """Wait until every broker answers; a broker that exits is an error with its log."""
    deadline = time.monotonic() + timeout
    pending = list(brokers)
    tls = security.client_context(security.files_for(cluster.data_dir)) \
        if cluster.secure else None
    while pending:
        for broker in list(pending):
            if not broker.alive:
                log_file = cluster.log_file(broker.node_id)
                raise OperationFailed(
                    f"broker {broker.node_id} exited during start-up: {log_tail(log_file)} "
                    f"(log: {log_file})"
                )
            if _answers(broker.port, tls):
                pending.remove(broker)
        if pending and time.monotonic() > deadline:
            ids = ", ".join(str(b.node_id) for b in pending)
            raise OperationFailed(f"broker(s) {ids} did not answer within {timeout:.0f}s; "
                                  f"see {cluster.data_dir / 'logs'}")
        if pending:
            time.sleep(0.05)


def start(data_dir: Path, brokers: int | None, port: int | None,
          with_registry: bool = True, secure: bool = False) -> tuple[LocalCluster, bool]:
    """Start the cluster in ``data_dir`` (and its Schema Registry unless told not to);
    returns it and whether it was already running. A first start that fails before
    any broker ran leaves no directory behind. ``secure`` creates a SASL_SSL cluster
    (kcli.local.security); a secured cluster stays secured on later starts."""
    fresh = not data_dir.exists()
    try:
        with supervisor_lock(data_dir):
            return _start_locked(data_dir, brokers, port, with_registry, secure)
    except BaseException:
        if fresh and not (data_dir / "logs").exists():
            shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _start_locked(data_dir: Path, brokers: int | None, port: int | None,
                  with_registry: bool, secure: bool) -> tuple[LocalCluster, bool]:
    existing = LocalCluster.load(data_dir)
    if existing is not None and secure and not existing.secure:
        raise BadInput(f"the cluster in {data_dir} was created without --secure; purge it "
                       "first (kcli cluster purge) to start it secured")
    secure = secure or (existing is not None and existing.secure)
    if existing is not None and existing.running():
        _refuse_reshape(existing, brokers, port)
        if len(existing.running()) < len(existing.brokers):
            _start_stopped(existing)
            _ensure_registry(existing, with_registry)
            return existing, False
        _ensure_registry(existing, with_registry)
        existing.save()  # re-register it, in case its entry was lost
        return existing, True
    if existing is not None:
        count = len(existing.brokers) if brokers is None else brokers
        if count < len(existing.brokers):
            raise BadInput(
                f"this cluster has {len(existing.brokers)} brokers; start it with "
                f"--brokers {len(existing.brokers)} or purge it first"
            )
        base = existing.brokers[0].port if port is None else port
    else:
        count = brokers or 1
        base = DEFAULT_PORT if port is None else port
    if count < 1:
        raise BadInput("--brokers must be at least 1")
    if not 1 <= base <= 65535 - count:
        raise BadInput(f"--port {base} leaves no room for {count} broker port(s)")
    ports = list(range(base, base + count))
    busy = [p for p in ports if port_in_use(p)]
    if busy:
        raise OperationFailed(
            f"port {busy[0]} is already in use (another Kafka or kcli cluster?); "
            "choose another with --port"
        )
    cluster = LocalCluster(
        data_dir=data_dir,
        brokers=[BrokerProcess(node_id=i + 1, port=p) for i, p in enumerate(ports)],
        settings=cluster_settings(count),
        schema_registry=existing.schema_registry if existing is not None else None,
        secure=secure,
    )
    if secure:
        files = security.prepare(data_dir)
        security.seed_admin(cluster.cluster_dir, files)
    for broker in cluster.brokers:
        _spawn(cluster, broker)
    cluster.save()
    try:
        wait_until_ready(cluster, cluster.brokers)
        _ensure_registry(cluster, with_registry)
    except BaseException:
        if cluster.schema_registry is not None:
            sr.terminate(cluster.schema_registry, STOP_TIMEOUT)
        _terminate(cluster.running(), STOP_TIMEOUT)
        if existing is None:
            cluster.forget()
        else:
            for broker in cluster.brokers:
                broker.pid = 0
            cluster.save()
        raise
    return cluster, False


def _ensure_registry(cluster: LocalCluster, wanted: bool) -> None:
    """Start the cluster's Schema Registry if it should run and does not (or stop it
    when the cluster was started with --no-registry)."""
    current = cluster.schema_registry
    if not wanted:
        if current is not None:
            sr.terminate(current, STOP_TIMEOUT)
        cluster.schema_registry = None
        return
    if current is not None and current.alive:
        return
    chosen = RegistryProcess(sr.choose_port(cluster.brokers[0].port,
                                            current.port if current else None))
    cluster.schema_registry = chosen
    sr.spawn(cluster.data_dir, cluster.bootstrap, chosen,
             security.files_for(cluster.data_dir).client_config if cluster.secure else None)
    cluster.save()
    sr.wait_until_ready(cluster.data_dir, chosen)


def _refuse_reshape(cluster: LocalCluster, brokers: int | None, port: int | None) -> None:
    """A running cluster is not silently left as it is when the flags ask for another
    shape: say how to get that shape instead."""
    have = len(cluster.brokers)
    if brokers is not None and brokers != have:
        noun = "broker" if have == 1 else "brokers"
        how = ("add brokers to it with `kcli cluster add-broker`, or stop it (`kcli "
               f"cluster stop --data-dir {cluster.data_dir}`) and start it again with "
               f"--brokers {brokers}" if brokers > have else
               "purge it first (`kcli cluster purge`) to start a smaller one")
        raise BadInput(f"the cluster in {cluster.data_dir} is running with {have} {noun}; "
                       f"to have {brokers}, {how}")
    if port is not None and port != cluster.brokers[0].port:
        raise BadInput(f"the cluster in {cluster.data_dir} is running on port "
                       f"{cluster.brokers[0].port}; stop it first to move it to {port}, "
                       "or give another --data-dir for a second cluster")


def _start_stopped(cluster: LocalCluster) -> None:
    stopped = [b for b in cluster.brokers if not b.alive]
    for broker in stopped:
        if port_in_use(broker.port):
            raise OperationFailed(f"port {broker.port} of broker {broker.node_id} is in use")
        _spawn(cluster, broker)
    cluster.save()
    wait_until_ready(cluster, stopped)


def _terminate(brokers: list[BrokerProcess], timeout: float) -> list[int]:
    """SIGTERM, wait, then SIGKILL the stragglers; returns the ids that had to be killed."""
    for broker in brokers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(b.alive for b in brokers) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = []
    for broker in brokers:
        if broker.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker.pid, signal.SIGKILL)
            killed.append(broker.node_id)
    return killed


def require(data_dir: Path) -> LocalCluster:
    """The cluster recorded in ``data_dir``; NotFound when there is none."""
    cluster = LocalCluster.load(data_dir)
    if cluster is None:
        raise NotFound(f"no local cluster in {data_dir} (start one with `kcli cluster start`)")
    return cluster


def stop(data_dir: Path, timeout: float = STOP_TIMEOUT) -> tuple[LocalCluster, list[int]]:
    """Stop every broker cleanly; returns the cluster and the ids that had to be killed."""
    with supervisor_lock(data_dir):
        cluster = require(data_dir)
        if cluster.schema_registry is not None:  # first: it is a client of the brokers
            sr.terminate(cluster.schema_registry, timeout)
        killed = _terminate(cluster.running(), timeout)
        for broker in cluster.brokers:
            broker.pid = 0
        cluster.save()  # stays the current cluster (with no live pid) for status and start
        return cluster, killed


def kill(data_dir: Path, node_id: int) -> BrokerProcess:
    """SIGKILL one broker: a crash, for failure drills."""
    with supervisor_lock(data_dir):
        cluster = require(data_dir)
        broker = cluster.broker(node_id)
        if not broker.alive:
            raise OperationFailed(f"broker {node_id} is not running")
        os.kill(broker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while broker.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        return broker


def add_broker(data_dir: Path, port: int | None = None) -> BrokerProcess:
    """Grow a running cluster by one broker, the way a Kafka cluster grows: it joins
    with the next id and port (or ``port``), empty; partitions move to it only when
    asked (``kcli partition move``)."""
    with supervisor_lock(data_dir):
        cluster = require(data_dir)
        if not cluster.running():
            raise OperationFailed(f"the cluster in {data_dir} is stopped; start it first "
                                  "(`kcli cluster start`)")
        if len(cluster.brokers) >= MAX_BROKERS:
            raise BadInput(f"a local cluster has at most {MAX_BROKERS} brokers")
        taken = {b.port for b in cluster.brokers}
        chosen = port if port is not None else max(taken) + 1
        while port is None and (chosen in taken or port_in_use(chosen)):
            chosen += 1
        if chosen in taken or port_in_use(chosen):
            raise OperationFailed(f"port {chosen} is already in use; choose another with "
                                  "--port")
        broker = BrokerProcess(node_id=max(b.node_id for b in cluster.brokers) + 1,
                               port=chosen)
        cluster.brokers.append(broker)
        _spawn(cluster, broker)
        cluster.save()
        try:
            wait_until_ready(cluster, [broker])
        except BaseException:
            _terminate([broker], STOP_TIMEOUT)
            cluster.brokers.remove(broker)
            cluster.save()
            raise
        return broker


def restart(data_dir: Path, node_id: int) -> BrokerProcess:
    """Stop one broker if it runs, start it again and wait until it answers."""
    with supervisor_lock(data_dir):
        cluster = require(data_dir)
        broker = cluster.broker(node_id)
        if broker.alive:
            _terminate([broker], STOP_TIMEOUT)
        _spawn(cluster, broker)
        cluster.save()
        wait_until_ready(cluster, [broker])
        return broker


def purge(data_dir: Path) -> None:
    """Stop the cluster and delete its data directory."""
    cluster = LocalCluster.load(data_dir)
    if cluster is not None:
        stop(data_dir)
        cluster.forget()
    elif not data_dir.exists():
        raise NotFound(f"no local cluster in {data_dir}")
    elif not (data_dir / "cluster").exists():
        raise BadInput(f"{data_dir} does not look like a kcli cluster; not deleting it")
    shutil.rmtree(data_dir)


def log_files(cluster: LocalCluster, node_id: int | None) -> list[tuple[int, Path]]:
    """(broker id, log path) for one broker or all."""
    ids = [node_id] if node_id is not None else [b.node_id for b in cluster.brokers]
    if node_id is not None:
        cluster.broker(node_id)
    return [(i, cluster.log_file(i)) for i in ids]
