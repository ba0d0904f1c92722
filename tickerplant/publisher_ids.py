"""A publisher's id: a secret it sends, and the public id everything else sees.

The tickerplant recognises a publisher's batches by the 16-byte id in each UPD, for exactly
once: it drops any batch at or below the last one it took under that id. Records carry the
ids of the batches in them (their *origins*), so a restarted tickerplant rebuilds that state
from its journal, and every subscriber and replay sees them. So anyone who could read the
stream could send one UPD under a publisher's id with a huge batch number, and the
tickerplant then dropped the real publisher's later batches as duplicates, across restarts
too (the forged batch's origin was journaled).

Now the id a publisher sends is its secret, never shown: the tickerplant keys everything
(the exactly-once ledger, acknowledgements, record origins, the journal) by
``public_id(secret)``, a BLAKE2b digest of it, which cannot be turned back into the secret.
What a subscriber learns is useless for publishing: a UPD under a public id is the secret of
another publisher entirely, and one under a public id this tickerplant has handed out is
refused (``foreign_publisher_id``). With CURVE each public id is also bound to the identity
that first used it (``publisher_bindings``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickerplant.publisher_bindings import PublisherBindings

# A domain of its own, so the digest is of no use as any other hash of the same bytes.
_PERSON = b"tickdb.pubid.v1"
MAX_CACHED = 100_000  # secrets remembered; senders make them, so bounded


def public_id(secret: bytes) -> bytes:
    """The public id of the publisher whose secret id is ``secret``: what records show."""
    return hashlib.blake2b(secret, digest_size=16, person=_PERSON).digest()


class PublisherIds:
    """Secret ids to public ids, hashed once per publisher (this is asked per message)."""

    def __init__(self) -> None:
        self._public: dict[bytes, bytes] = {}
        self._issued: set[bytes] = set()  # public ids handed out by this process

    def public(self, secret: bytes) -> bytes | None:
        """The public id for ``secret``; None when ``secret`` is itself a public id this
        process has handed out (as records show them): someone is sending under a
        publisher's public id, which is never how a publisher sends."""
        public = self._public.get(secret)
        if public is not None:
            return public
        if secret in self._issued:
            return None
        if len(self._public) >= MAX_CACHED:  # many senders: start over, rather than grow
            self._public.clear()
            self._issued.clear()
        public = self._public[secret] = public_id(secret)
        self._issued.add(public)
        return public


class PublisherGate:
    """Which public id a batch is taken under, or why it is refused: the secret must not
    be another publisher's public id, and with CURVE (``bindings``) the id must be the
    sender's own."""

    def __init__(self, bindings: PublisherBindings | None = None) -> None:
        self.ids = PublisherIds()
        self.bindings = bindings

    def admit(self, secret: bytes, who: str | None) -> bytes | tuple[str, str]:
        """The public id, or ``(reason, message)`` of the refusal; ``who``: the sender's
        identity name (the ZAP User-Id), with CURVE on."""
        public = self.ids.public(secret)
        if public is None:
            return "foreign_publisher_id", (
                "this publisher id is another publisher's public id, as records show it; "
                "publish under a secret id of your own (a new tickdb.Publisher makes one)"
            )
        if self.bindings is None:
            return public
        if who is None:
            return "forbidden", "a batch without an identity"
        return self.bindings.claim(public, who) or public

    def close(self) -> None:
        if self.bindings is not None:
            self.bindings.close()
