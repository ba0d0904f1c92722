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

The two nodes of a pair (a venue and its standby, the tickerplant pair) follow their lease,
not the role they were started in: the node whose process holds the lease (its holder ends
in ``:<pid>``) is ``primary``, the other ``standby``, both with the lease's epoch
(``lease_role``). The supervisor reads the lease file on its own beat and rewrites the
status when a role changed, so a takeover shows within a fraction of a second.
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


def lease_role(lease_file: Path, pid: int) -> tuple[str, int] | None:
    """(role, epoch) of process ``pid``, a node of the pair whose lease is ``lease_file``:
    ``primary`` when it holds the lease, ``standby`` otherwise; None before any lease."""
    try:
        lease = json.loads(lease_file.read_text())
        holder, epoch = str(lease["holder"]), int(lease["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    held_by = holder.rsplit(":", 1)[-1]
    return ("primary" if held_by == str(pid) else "standby"), epoch


def read_status(data_dir: str | Path) -> dict[str, Any] | None:
    """The last status ``tickdb up`` wrote under ``data_dir``; None when there is none.

    A venue of a pair also keeps its role and epoch in ``run/<name>.role.json``: those
    override a status whose supervisor did not follow the lease (no ``lease`` key)."""
    try:
        status = dict(json.loads(status_path(data_dir).read_text()))
    except (OSError, ValueError):
        return None
    for component in status.get("components", []):
        if component.get("lease"):
            continue  # the supervisor read the lease itself: the truth, even for a frozen node
        try:
            own = json.loads(
                (Path(data_dir) / "run" / f"{component['name']}.role.json").read_text()
            )
            component["role"], component["epoch"] = own["role"], own["epoch"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return status
