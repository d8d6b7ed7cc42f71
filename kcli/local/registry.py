"""Where the running local cluster is: read by every command that needs a default bootstrap.

`kcli cluster start` writes ``cluster.json`` in the state directory
(``$KCLI_STATE_DIR`` if set, else ``platformdirs.user_state_dir("kcli")``)::

    {
      "bootstrap": "127.0.0.1:9092",          # what clients connect to
      "data_dir": "/home/me/.local/state/kcli/cluster",
      "brokers": [                             # one entry per broker process
        {"node_id": 1, "port": 9092, "pid": 12345}
      ]
    }

A cluster counts as running when at least one listed pid is alive. This module only
reads the file; the supervisor (``kcli cluster``) owns writing and removing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REGISTRY_FILE = "cluster.json"


def state_dir() -> Path:
    """The directory holding ``cluster.json``."""
    configured = os.environ.get("KCLI_STATE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_state_dir

    return Path(user_state_dir("kcli"))


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


def current_bootstrap() -> str | None:
    """bootstrap.servers of the running local cluster, or None when none is running
    (no file, an unreadable or malformed file, or no live broker process)."""
    path = state_dir() / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    bootstrap = data.get("bootstrap")
    brokers = data.get("brokers")
    if not isinstance(bootstrap, str) or not bootstrap or not isinstance(brokers, list):
        return None
    if any(isinstance(b, dict) and process_exists(b.get("pid")) for b in brokers):
        return bootstrap
    return None
