"""The client certificate of an HTTPS request, for ``[auth]``: who presented which one.

uvicorn does not hand an app the TLS connection, so :class:`CertHttpProtocol` (its
httptools protocol, given to uvicorn when ``tls.client_ca`` is set) reads the certificate the
handshake verified once per connection and puts it in each request's scope as ASGI's TLS
extension says (``scope["extensions"]["tls"]``: ``client_cert_chain``, the PEM, and
``client_cert_name``, the RFC 4514 subject), with its sha256 fingerprint beside them.
:func:`client_cert` reads it back; ``gateway.auth_http`` asks the Authorizer which identity
the certificate is (``cert_subjects``, ``cert_fingerprints`` of ``[auth.identities.NAME]``).

Only a certificate the handshake checked against ``tls.client_ca`` is ever seen here:
``required`` refuses a client without one in the handshake, ``optional`` lets it in without
one (it then authenticates with a token or password) and refuses a certificate that does
not check out.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FINGERPRINT_KEY = "tickdb_client_cert_sha256"


@dataclass(frozen=True)
class ClientCert:
    """A verified client certificate: its RFC 4514 subject and sha256 fingerprint (hex)."""

    subject: str
    fingerprint: str

    @classmethod
    def from_der(cls, der: bytes) -> ClientCert:
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        return cls(subject, hashlib.sha256(der).hexdigest())

    def describe(self) -> str:
        return f"{self.subject} (sha256:{self.fingerprint})"


def peer_cert(transport: asyncio.BaseTransport) -> tuple[ClientCert, str] | None:
    """The certificate the client presented on ``transport`` (and its PEM), if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return ClientCert.from_der(der), ssl.DER_cert_to_PEM_cert(der)


class CertHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the client certificate to every request."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        found = peer_cert(transport)  # the handshake is done: asyncio calls this after it
        if found is not None:
            cert, pem = found
            self._tls = {
                "client_cert_chain": [pem],
                "client_cert_name": cert.subject,
                "client_cert_error": None,
                FINGERPRINT_KEY: cert.fingerprint,
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            extensions: Any = {"tls": self._tls}  # ASGI's TLS extension (not in uvicorn's types)
            self.scope["extensions"] = extensions


def client_cert(scope: Scope) -> ClientCert | None:
    """The verified client certificate of a request, from its scope (None: none sent, or
    no :class:`CertHttpProtocol` serving it)."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls or not tls.get("client_cert_name"):
        return None
    return ClientCert(str(tls["client_cert_name"]), str(tls.get(FINGERPRINT_KEY, "")))
