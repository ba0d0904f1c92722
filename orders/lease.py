"""The venue pair's lease: ``tickdb.lease``, shared with the tickerplant pair."""

from tickdb.lease import Lease, LeaseState

__all__ = ["Lease", "LeaseState"]
