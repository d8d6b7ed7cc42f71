"""Which local clusters exist and which one a command means when no ``-b`` is given.

Every local cluster that ``kcli cluster start`` has started has one entry in the state
directory (``$KCLI_STATE_DIR`` if set, else ``platformdirs.user_state_dir("kcli")``)::

    clusters/<name>.json
    {
      "name": "default",                       # what --cluster NAME selects
      "bootstrap": "127.0.0.1:9092",          # what clients connect to
      "data_dir": "/home/me/.local/share/kcli/cluster",
      "brokers": [                             # one entry per broker process
        {"node_id": 1, "port": 9092, "pid": 12345}
      ]
    }

A cluster counts as running when at least one listed pid is alive. An entry whose data
directory no longer holds the cluster (purged, or deleted by hand) is ignored. Names are
``default`` for the default data directory, else the data directory's base name (with a
numeric suffix when two directories share one).

A bare command (no ``-b``, ``$KCLI_BOOTSTRAP`` or profile) uses the one running local
cluster. It never guesses: with several running it asks for ``--cluster``, and when the
only known clusters are stopped it says so instead of falling back to localhost:9092,
where some other broker could be listening. This module only reads entries; the
supervisor writes and removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from kcli.errors import BadInput, KcliError, NotFound, Unreachable

CLUSTERS_DIR = "clusters"
STATE_FILE = "cluster.json"
"""The supervisor's record inside each cluster's data directory."""
LEGACY_FILE = "cluster.json"
"""The single-cluster pointer older versions kept in the state directory."""
DEFAULT_NAME = "default"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def state_dir() -> Path:
    """The directory holding the registry."""
    configured = os.environ.get("KCLI_STATE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_state_dir

    return Path(user_state_dir("kcli"))


def default_data_dir() -> Path:
    """Where `kcli cluster start` keeps its data unless told otherwise."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("kcli")) / "cluster"


def process_exists(pid: object) -> bool:
    """Whether `pid` is a positive int naming an existing process (anyone's)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class KnownCluster:
    """One registry entry: a local cluster and its broker processes."""

    name: str
    data_dir: Path
    bootstrap: str
    pids: tuple[int, ...]
    ports: tuple[tuple[int, int], ...] = ()
    """(node id, port) of every broker the supervisor started."""
    schema_registry: str | None = None
    """The URL of its Schema Registry, if it runs one."""
    secure: bool = False
    """Started with --secure: clients log in as its admin (kcli.local.security)."""

    def client_properties(self) -> dict[str, str]:
        """What a client needs to connect besides the bootstrap: the admin login of a
        secured cluster (read from its 0600 files), nothing for a plaintext one."""
        if not self.secure:
            return {}
        from kcli.broker.properties import PropertiesError, parse_properties

        try:
            return parse_properties((self.data_dir / "security" / "client.properties")
                                    .read_text(encoding="utf-8"))
        except (OSError, PropertiesError):
            return {}  # the command then fails to log in, and says so

    @property
    def running(self) -> bool:
        """Whether any of its broker processes is alive."""
        return any(process_exists(pid) for pid in self.pids)

    @property
    def start_command(self) -> str:
        """The command that starts this cluster again."""
        if self.data_dir == default_data_dir():
            return "kcli cluster start"
        return f"kcli cluster start --data-dir {self.data_dir}"

    def describe(self) -> str:
        """``name (bootstrap, data dir)`` for messages."""
        return f"{self.name} ({self.bootstrap}, {self.data_dir})"


def _parse(doc: object, fallback_name: str) -> KnownCluster | None:
    if not isinstance(doc, dict):
        return None
    bootstrap, brokers, data_dir = doc.get("bootstrap"), doc.get("brokers"), doc.get("data_dir")
    if not isinstance(bootstrap, str) or not bootstrap or not isinstance(brokers, list):
        return None
    if not isinstance(data_dir, str) or not data_dir:
        return None
    name = doc.get("name")
    pids = tuple(b["pid"] for b in brokers
                 if isinstance(b, dict) and isinstance(b.get("pid"), int))
    ports = tuple((b["node_id"], b["port"]) for b in brokers if isinstance(b, dict)
                  and isinstance(b.get("node_id"), int) and isinstance(b.get("port"), int))
    registry = doc.get("schema_registry")
    url = registry.get("url") if isinstance(registry, dict) else None
    return KnownCluster(name if isinstance(name, str) and name else fallback_name,
                        Path(data_dir), bootstrap, pids, ports,
                        url if isinstance(url, str) and url else None,
                        doc.get("secure") is True)


def _read(path: Path, fallback_name: str) -> KnownCluster | None:
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")), fallback_name)
    except (OSError, ValueError):
        return None


def entry_path(name: str) -> Path:
    """The registry file of the cluster called ``name``."""
    return state_dir() / CLUSTERS_DIR / f"{name}.json"


def known_clusters() -> list[KnownCluster]:
    """Every registered cluster whose data directory still holds it, sorted by name."""
    found: dict[Path, KnownCluster] = {}
    with contextlib.suppress(OSError):
        for path in sorted((state_dir() / CLUSTERS_DIR).glob("*.json")):
            entry = _read(path, path.stem)
            if entry is not None and entry.data_dir not in found:
                found[entry.data_dir] = entry
    legacy = _read(state_dir() / LEGACY_FILE, "")
    if legacy is not None and legacy.data_dir not in found:
        found[legacy.data_dir] = replace(legacy, name=name_for(legacy.data_dir, found.values()))
    return sorted((c for c in found.values() if (c.data_dir / STATE_FILE).is_file()),
                  key=lambda c: c.name)


def name_for(data_dir: Path, others: Iterable[KnownCluster] | None = None) -> str:
    """The registry name of the cluster in ``data_dir``: its existing name, else
    ``default`` or the directory's base name, made unique among ``others`` (default:
    every known cluster)."""
    existing = list(others) if others is not None else known_clusters()
    for entry in existing:
        if entry.data_dir == data_dir:
            return entry.name
    base = DEFAULT_NAME if data_dir == default_data_dir() else (
        _UNSAFE.sub("-", data_dir.name).strip(".-") or "cluster")
    taken = {entry.name for entry in existing}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def find(name: str) -> KnownCluster:
    """The cluster registered as ``name``; NotFound lists the names that exist."""
    clusters = known_clusters()
    for entry in clusters:
        if entry.name == name:
            return entry
    names = ", ".join(c.name for c in clusters) or "none"
    raise NotFound(f"no local cluster named {name!r} (known: {names})")


def choose(name: str | None = None) -> KnownCluster | None:
    """The local cluster a command without ``-b`` means: the named one, else the only
    running one; None when no local cluster is known at all. Raises when the choice
    is ambiguous (BadInput) or the cluster is stopped (Unreachable)."""
    if name:
        chosen = find(name)
        if not chosen.running:
            raise stopped_error([chosen])
        return chosen
    clusters = known_clusters()
    running = [c for c in clusters if c.running]
    if len(running) == 1:
        return running[0]
    if running:
        listed = "; ".join(c.describe() for c in running)
        raise BadInput(f"{len(running)} local clusters are running: {listed}; "
                       "choose one with --cluster NAME or -b HOST:PORT")
    if clusters:
        raise stopped_error(clusters)
    return None


def stopped_error(clusters: list[KnownCluster]) -> KcliError:
    """The error for a command that needs a local cluster when none of these runs."""
    if len(clusters) == 1:
        only = clusters[0]
        return Unreachable(f"the local cluster ({only.data_dir}) is stopped; start it with "
                           f"`{only.start_command}`, or give -b HOST:PORT")
    listed = "; ".join(c.describe() for c in clusters)
    return Unreachable(f"no local cluster is running (known: {listed}); start one with "
                       "`kcli cluster start`, or give -b HOST:PORT")


def current_bootstrap() -> str | None:
    """bootstrap.servers of the local cluster a bare command uses, or None when there
    is none to use (none known, none running, or several running)."""
    try:
        chosen = choose()
    except KcliError:
        return None
    return chosen.bootstrap if chosen is not None else None
