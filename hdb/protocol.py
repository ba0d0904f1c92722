"""Wire names of the HDB beyond the shared query protocol (``queries.service_protocol``)."""

from __future__ import annotations

# [RELOAD] -> [RELOADED, json {"generation", "tables"}]: rescan partitions, replace views.
RELOAD = b"RELOAD"
RELOADED = b"RELOADED"
