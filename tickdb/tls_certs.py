"""A private CA and a server certificate it signs, for TLS on the HTTP, kdb+ and FIX ports.

Clients trust ``ca.crt`` (and nothing else needs to change when the server certificate is
renewed: :func:`renew_server`); the server presents ``server.crt`` with ``server.key``.
:func:`create_client` signs client certificates for ports that require one
(``tls.client_ca``). Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
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
    _check(hosts, days)
    directory.mkdir(parents=True, exist_ok=True)
    files = tls_paths(directory)
    existing = [p for p in (files.ca_cert, files.ca_key, files.cert, files.key) if p.exists()]
    if existing and not force:  # before writing anything: no half-replaced set
        raise FileExistsError(f"{existing[0]} exists; refusing to overwrite it")
    now = _now()
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
    key, cert = _leaf(ca_key, ca_cert, hosts[0], _san(hosts), ExtendedKeyUsageOID.SERVER_AUTH, days)
    write_private(files.ca_key, _pem_key(ca_key), force=force)
    write_private(files.key, _pem_key(key), force=force)
    write_public(files.ca_cert, _pem_cert(ca_cert), force=force)
    write_public(files.cert, _pem_cert(cert), force=force)
    return files


def renew_server(
    directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 825
) -> TlsFiles:
    """A new ``server.crt`` and ``server.key`` signed by the CA already in ``directory``,
    so clients that trust its ``ca.crt`` need no change. Each file is replaced by a rename,
    so a server reading them sees the old file or the new one, never half of one."""
    _check(hosts, days)
    files = tls_paths(directory)
    ca_key, ca_cert = _load_ca(files)
    key, cert = _leaf(ca_key, ca_cert, hosts[0], _san(hosts), ExtendedKeyUsageOID.SERVER_AUTH, days)
    _replace(files.key, _pem_key(key), private=True)
    _replace(files.cert, _pem_cert(cert), private=False)
    return files


def create_client(
    directory: Path, name: str, *, days: int = 825, force: bool = False
) -> tuple[Path, Path]:
    """``NAME.crt`` and ``NAME.key`` (0600): a client certificate signed by the CA in
    ``directory``, for ports that require one (``tls.client_ca = "ca.crt"``)."""
    _check((name,), days)
    ca_key, ca_cert = _load_ca(tls_paths(directory))
    key, cert = _leaf(ca_key, ca_cert, name, None, ExtendedKeyUsageOID.CLIENT_AUTH, days)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    if not force and (cert_path.exists() or key_path.exists()):
        raise FileExistsError(f"{cert_path} exists; refusing to overwrite it")
    write_private(key_path, _pem_key(key), force=force)
    write_public(cert_path, _pem_cert(cert), force=force)
    return cert_path, key_path


def cert_names(path: Path) -> tuple[str, str]:
    """A certificate's RFC 4514 subject and ``sha256:<hex>`` fingerprint (of its DER), the
    two ways ``[auth]`` names a client certificate (``cert_subjects``, ``cert_fingerprints``)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.subject.rfc4514_string(), "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def _check(hosts: tuple[str, ...], days: int) -> None:
    if not hosts or not all(hosts):
        raise ValueError("name at least one host the server is reached by")
    if days <= 0:
        raise ValueError("days must be positive")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clocks a little behind


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _load_ca(files: TlsFiles) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not files.ca_key.exists():
        raise FileNotFoundError(
            f"{files.ca_key} does not exist: make the CA with `tickdb keys tls`"
        )
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{files.ca_key}: not an EC key made by tickdb keys tls")
    return key, x509.load_pem_x509_certificate(files.ca_cert.read_bytes())


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    san: x509.SubjectAlternativeName | None,
    usage: x509.ObjectIdentifier,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _replace(path: Path, text: str, *, private: bool) -> None:
    """Write ``text`` beside ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    if private:
        write_private(tmp, text)
    else:
        write_public(tmp, text)
    os.replace(tmp, path)
