"""The HDB process: the query service over the catalog's views, plus RELOAD."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from hdb.catalog import Catalog
from hdb.protocol import RELOAD, RELOADED
from queries.service import QueryServer
from tickdb import curve_links
from tickdb.config import Config
from tickdb.ready import write_ready
from tickdb.types import BackendInfo, Shard

log = logging.getLogger("tickdb.hdb")


class Hdb:
    """A catalog and the query server in front of it; ``serve()`` runs until stopped."""

    def __init__(
        self,
        config: Config,
        *,
        shard: Shard | None,
        address: str | None = None,
        workers: int = 2,
        memory_limit: str = "2GB",
        threads: int | None = None,
    ) -> None:
        self.config = config
        self.shard = shard
        self.catalog = Catalog(
            config.hdb_dir, config.tables, shard, memory_limit=memory_limit, threads=threads
        )
        self.server = QueryServer(
            address or config.hdb.address,
            lambda _request: self.catalog.cursor(),
            info=self.info,
            timeout_s=config.hdb.query_timeout_s,
            max_rows=config.hdb.max_rows,
            workers=workers,
            extra_handlers={RELOAD: self._reload},
            on_error=self.catalog.retry_after,
            setting="hdb.address (--address)",
            curve=curve_links.for_config(config),
            tables=config.tables,
        )
        self._stop = threading.Event()

    def info(self) -> dict[str, Any]:
        """The INFO reply (``tickdb.types.BackendInfo``)."""
        generation, tables = self.catalog.generation, self.catalog.tables()
        return BackendInfo(
            role="hdb",
            shard=self.shard,
            tables=tables,
            extra={"hdb_dir": str(self.catalog.hdb_dir), "generation": generation},
        ).to_json()

    def _reload(self, frames: list[bytes]) -> list[bytes]:
        return [RELOADED, json.dumps(self.catalog.reload()).encode()]

    def start(self, ready_file: Path | None = None) -> None:
        self.server.start()
        write_ready(ready_file, {"address": self.server.endpoint, **self.info()})
        log.info(
            "HDB serving %s (shard %s) on %s",
            self.catalog.hdb_dir,
            self.shard or "all",
            self.server.endpoint,
        )

    def stop(self) -> None:
        self._stop.set()

    def serve(self, ready_file: Path | None = None) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        self.start(ready_file)
        try:
            self._stop.wait()
        finally:
            self.server.close()
            self.catalog.close()
            log.info("HDB stopped")
