"""A private CA and a server certificate it signs, for TLS on the HTTP, kdb+ and FIX ports.

Clients trust ``ca.crt`` (and nothing else needs to change when the server certificate is
renewed); the server presents ``server.crt`` with ``server.key``. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tickdb.keyfiles import write_private, write_public

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def tls_paths(directory: Path) -> TlsFiles:
    return TlsFiles(
        directory / "ca.crt",
        directory / "ca.key",
        directory / "server.crt",
        directory / "server.key",
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tickdb"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def create_tls(
    directory: Path,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    *,
    days: int = 825,
    force: bool = False,
) -> TlsFiles:
    """Write ``ca.crt``, ``ca.key`` (0600), ``server.crt`` and ``server.key`` (0600) for
    ``hosts`` (DNS names or IP addresses) into ``directory``; their paths."""
    if not hosts:
        raise ValueError("name at least one host the server is reached by")
    if days <= 0:
        raise ValueError("days must be positive")
    directory.mkdir(parents=True, exist_ok=True)
    files = tls_paths(directory)
    existing = [p for p in (files.ca_cert, files.ca_key, files.cert, files.key) if p.exists()]
    if existing and not force:  # before writing anything: no half-replaced set
        raise FileExistsError(f"{existing[0]} exists; refusing to overwrite it")
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clocks a little behind
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("tickdb local CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.ca_key, _pem_key(ca_key), force=force)
    write_private(files.key, _pem_key(key), force=force)
    write_public(
        files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM).decode(), force=force
    )
    write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM).decode(), force=force)
    return files
