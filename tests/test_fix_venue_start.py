"""The FIX venue adapter rebuilds its orders from the journal before it dials the
counterparty. At logon the counterparty resends the reports it sent while the adapter was
down; a report read before the rebuild found no order for its ClOrdID, was recorded as
applied and never published: a fill lost (seen as a rare timeout of
``test_fix_venue.py::test_a_fill_while_the_adapter_is_down_is_published_once``).

The adapter runs in this process against a real tickerplant; the counterparty's port has no
listener, so the adapter only keeps dialling.
"""

from __future__ import annotations

import threading
from pathlib import Path

from support.harness import Proc, free_port, start_tp

from fix.session_types import SessionSettings
from orders.fix_venue import FixVenue
from orders.fix_venue_map import FixVenueSettings
from tickdb.types import Shard


def test_the_adapter_rebuilds_its_orders_before_it_dials(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    session = SessionSettings(
        name="ext", sender_comp_id="OURS", target_comp_id="EXT", store_dir=tmp_path / "fix"
    )
    settings = FixVenueSettings(
        shard=0, host="127.0.0.1", port=free_port(), session=session, reconnect_s=0.2
    )
    adapter = FixVenue(str(tp.info["address"]), Shard(0, 1), settings)
    dials_at_rebuild: list[int] = []
    rebuild = adapter._recover

    def recorded() -> None:
        dials_at_rebuild.append(len(adapter.engine._dials))
        rebuild()

    adapter._recover = recorded  # type: ignore[method-assign]
    stop, ready = threading.Event(), threading.Event()
    runner = threading.Thread(target=adapter.run, args=(stop, ready.set), daemon=True)
    runner.start()
    try:
        assert ready.wait(30), "the adapter did not get ready"
        assert dials_at_rebuild == [0], "the counterparty was dialled before the rebuild"
        assert len(adapter.engine._dials) == 1  # and dialled once it was done
    finally:
        stop.set()
        runner.join(10)
        adapter.close()
