"""What ``tickdb up`` says about its components: ``<data>/run/stack.json``.

The supervisor (``tickdb.supervise``) rewrites the file whenever a component starts, is
ready, exits or is restarted; ``tickdb status`` reads it beside the gateway's view of the
backends. One JSON object::

    {"pid": <tickdb up's pid>, "updated": <time.time()>,
     "components": [{"name": "rdb-0-r1", "role": "replica", "pid": 4242, "alive": true,
                     "ready": true, "epoch": 0, "restarts": 1, "started": <time.time()>,
                     "last_exit": "killed by SIGKILL", "address": "tcp://127.0.0.1:5022"}, ...]}

``role`` is ``primary`` (the one instance of its kind: tickerplant, gateway, venue),
``replica`` (one of a shard's RDBs or HDBs, all serving) or ``client`` (the demo feed and
strategy); ``standby`` is a venue's hot standby (``stack.venue_standby``) or a tickerplant
pair's second node (``--tp-standby``); ``active`` is each of several gateways
(``stack.gateways``), all serving. ``epoch`` counts takeovers: for a venue pair, the epoch
of the shard's lease (``tickdb.lease``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tickdb.durable import write_atomic

STATUS_FILE = "stack.json"


def status_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "run" / STATUS_FILE


def write_status(path: Path, pid: int, components: list[dict[str, Any]]) -> None:
    # Atomic, not fsynced: it describes running processes, which a crash ends anyway.
    body = {"pid": pid, "updated": time.time(), "components": components}
    write_atomic(path, json.dumps(body), durable=False)


def read_status(data_dir: str | Path) -> dict[str, Any] | None:
    """The last status ``tickdb up`` wrote under ``data_dir``; None when there is none.

    A component that changes role by itself (a venue of a primary/standby pair) keeps its
    role and epoch in ``run/<name>.role.json``: those override the supervisor's."""
    try:
        status = dict(json.loads(status_path(data_dir).read_text()))
    except (OSError, ValueError):
        return None
    for component in status.get("components", []):
        try:
            own = json.loads(
                (Path(data_dir) / "run" / f"{component['name']}.role.json").read_text()
            )
            component["role"], component["epoch"] = own["role"], own["epoch"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return status
