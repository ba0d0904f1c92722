"""HTTPS client certificates as ``[auth]`` identities, against a real gateway process:
certificates made by ``tickdb keys tls-client`` (whose printed lines go into the config, as a
person would paste them), clients presenting them with httpx over ssl.

With ``tls.client_cert = "optional"``: a certificate named by an identity (by subject or by
fingerprint) is that identity, without a token; one no identity names is 401; one whose
identity lacks the role is 403; a client without a certificate uses a token; a header, when
sent, decides over the certificate. With ``required``, a certificate is still an identity.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.auth_config import auth_sections, identity
from support.gateway_q import DATA
from support.gateway_stack import start_stack, stop_stack

from gateway.client import Client, GatewayError
from tickdb.tls import client_context

SLOW_OK = 30.0
TOKEN = "tdb_alice_token"
QUERY = {"sql": "select count(*) as n from trade"}


def keys(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def printed(output: str, key: str) -> str:
    """The one value of ``key = ["..."]`` that ``tickdb keys tls-client`` printed."""
    match = re.search(rf'^{key} = \["([^"]+)"\]', output, re.MULTILINE)
    assert match, output
    return match.group(1)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("certs") / "tls"
    keys("tls", "--dir", str(directory), "--host", "127.0.0.1")
    made = {name: keys("tls-client", name, "--dir", str(directory)) for name in CLIENTS}
    return {"dir": directory, "printed": made}


CLIENTS = ("desk1", "quoter", "stranger")


def sections(certs: dict[str, Any], mode: str) -> dict[str, dict[str, Any]]:
    directory, made = certs["dir"], certs["printed"]
    found = auth_sections(
        {
            # By subject: any certificate the CA signs with this name.
            "desk1": {
                "roles": ["read"],
                "cert_subjects": [printed(made["desk1"], "cert_subjects")],
            },
            # By fingerprint: that one certificate; this identity may read quotes only.
            "quoter": {
                "roles": ["read:quote"],
                "cert_fingerprints": [printed(made["quoter"], "cert_fingerprints")],
            },
            "alice": identity(["read"], token=TOKEN),
        }
    )
    found["tls"] = {
        "cert": str(directory / "server.crt"),
        "key": str(directory / "server.key"),
        "client_ca": str(directory / "ca.crt"),
        "client_cert": mode,
        "http": "on",
    }
    return found


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    running = start_stack(
        tmp_path_factory.mktemp("gw"), DATA, SLOW_OK, sections=sections(certs, "optional")
    )
    yield running
    stop_stack(running)


def client(certs: dict[str, Any], name: str | None) -> httpx.Client:
    directory = certs["dir"]
    cert = (directory / f"{name}.crt", directory / f"{name}.key") if name else (None, None)
    context = client_context(directory / "ca.crt", cert=cert[0], key=cert[1])
    return httpx.Client(verify=context, timeout=20)


def query(gateway: dict[str, Any], certs: dict[str, Any], name: str | None, **kw: Any) -> Any:
    with client(certs, name) as http:
        return http.post(f"{gateway['url']}/query", json=kw.pop("body", QUERY), **kw)


def test_a_certificate_named_by_subject_is_its_identity(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    answer = query(gateway, certs, "desk1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == [[len(DATA["trade"])]], answer.json()


def test_the_python_client_signs_in_with_its_certificate_alone(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    directory = certs["dir"]
    cert = (directory / "desk1.crt", directory / "desk1.key")
    with Client(gateway["url"], verify=directory / "ca.crt", cert=cert) as desk1:
        assert desk1.query(QUERY["sql"]).column("n").to_pylist() == [len(DATA["trade"])]
    with (
        Client(gateway["url"], verify=directory / "ca.crt") as nobody,
        pytest.raises(GatewayError) as refused,
    ):
        nobody.query(QUERY["sql"])
    assert refused.value.status == 401


def test_a_certificate_named_by_fingerprint_is_its_identity_and_its_roles_hold(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    refused = query(gateway, certs, "quoter")  # trade: not its table
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"error": "forbidden", "message": "'quoter' may not read trade"}
    quotes = query(gateway, certs, "quoter", body={"sql": "select count(*) as n from quote"})
    assert quotes.status_code == 200, quotes.text
    assert "quoter" in gateway["proc"].log()  # the refusal names who it was


def test_a_certificate_no_identity_names_is_401(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    answer = query(gateway, certs, "stranger")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "unauthorized"
    assert "CN=stranger,O=tickdb" in answer.json()["message"]
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "refused client certificate CN=stranger" in gateway["proc"].log()


def test_without_a_certificate_a_token_works_and_nothing_is_401(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    assert query(gateway, certs, None).status_code == 401
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert query(gateway, certs, None, headers=bearer).status_code == 200


def test_a_header_decides_over_the_certificate(
    gateway: dict[str, Any], certs: dict[str, Any]
) -> None:
    # desk1's certificate may read trade, but the request names a bad token: 401.
    bad = {"authorization": "Bearer not-a-token"}
    assert query(gateway, certs, "desk1", headers=bad).status_code == 401
    # The stranger's certificate, with alice's token: alice.
    good = {"authorization": f"Bearer {TOKEN}"}
    assert query(gateway, certs, "stranger", headers=good).status_code == 200


def test_a_certificate_of_another_ca_fails_the_handshake(
    gateway: dict[str, Any], certs: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    keys("tls", "--dir", str(other), "--host", "127.0.0.1")
    keys("tls-client", "desk1", "--dir", str(other))  # same name, another CA
    context = client_context(
        certs["dir"] / "ca.crt", cert=other / "desk1.crt", key=other / "desk1.key"
    )
    # TLS 1.3: the server's alert may only arrive once the client sent its request.
    with httpx.Client(verify=context, timeout=20) as http, pytest.raises(httpx.TransportError):
        http.post(f"{gateway['url']}/query", json=QUERY)


def test_with_required_certificates_a_certificate_is_an_identity_too(
    tmp_path: Path, certs: dict[str, Any]
) -> None:
    running = start_stack(tmp_path, DATA, SLOW_OK, sections=sections(certs, "required"))
    try:
        assert query(running, certs, "desk1").status_code == 200
        assert query(running, certs, "stranger").status_code == 401
        with pytest.raises(httpx.TransportError):  # no certificate: refused in the handshake
            query(running, certs, None, headers={"authorization": f"Bearer {TOKEN}"})
    finally:
        stop_stack(running)


def test_optional_certificates_need_the_ca_to_check_them() -> None:
    from tickdb.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"tls\.client_cert: optional needs tls\.client_ca"):
        config_from_dict({"tls": {"client_cert": "optional"}})
