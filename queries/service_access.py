"""Who may ask a query server (RDB, HDB) what, once CURVE says who each client is.

The ZAP handler lets in only identities with a ``read`` role. Then a query needs ``read``
on every table it reads (found as the gateway finds them, ``queries.read_access``: SQL the
parser cannot read is refused to an identity whose read role names tables), INFO any read
role, and the extra requests (the HDB's RELOAD) ``admin``.
"""

from __future__ import annotations

from collections.abc import Collection

import zmq

from queries.read_access import tables_read
from queries.service_protocol import INFO, QueryError
from tickdb.auth import Identity
from tickdb.curve_links import CurveLinks


class QueryAccess:
    def __init__(self, links: CurveLinks, tables: Collection[str]) -> None:
        self.links = links
        self.tables = frozenset(tables)

    def identity(self, frame: zmq.Frame) -> Identity | None:
        return self.links.identity_of(frame)

    def check_query(self, who: Identity | None, sql: str) -> None:
        """Raise QueryError("forbidden") unless ``who`` may read every table ``sql`` reads."""
        if who is None:
            raise QueryError("forbidden", "a query without an identity")
        role = who.role("read")
        if role is None:
            raise QueryError("forbidden", f"{who.name!r} may not read")
        if role.resources is None:
            return  # every table: no parse needed
        read = tables_read(sql, self.tables)  # QueryError("forbidden") if unreadable
        denied = sorted(read - role.resources)
        if denied:
            raise QueryError("forbidden", f"{who.name!r} may not read {', '.join(denied)}")

    def check_control(self, who: Identity | None, tag: bytes) -> None:
        """INFO: any read role (the port let only those in); anything else: admin."""
        if who is None:
            raise QueryError("forbidden", "a request without an identity")
        if tag != INFO and not who.has_role("admin"):
            name = tag[:40].decode(errors="replace")
            raise QueryError("forbidden", f"{who.name!r} may not ask for {name} (needs admin)")
