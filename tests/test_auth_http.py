"""HTTP bearer and Basic auth (``gateway.auth_http``) on a small FastAPI app served by uvicorn
on loopback: 401 with ``WWW-Authenticate: Bearer`` without valid credentials, 403 for an
identity without the role, the route's answer otherwise."""

# No `from __future__ import annotations`: FastAPI reads the routes' Annotated dependencies,
# which name the local `auth`, from the functions' real annotations.
import base64
import threading
from collections.abc import Iterator
from typing import Annotated

import argon2
import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from support.harness import wait_until

from gateway.auth_http import HttpAuth, install_auth_errors, path_param
from tickdb.auth import AuthConfig, Authorizer, Identity, IdentityConfig, hash_token

FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
TOKENS = {"reader": "tdb_reader", "ops": "tdb_ops"}
CONFIG = AuthConfig(
    mode="on",
    identities={
        "reader": IdentityConfig(
            password=FAST.hash("pw"), tokens=[hash_token(TOKENS["reader"])], roles=["read:trade"]
        ),
        "ops": IdentityConfig(tokens=[hash_token(TOKENS["ops"])], roles=["admin"]),
    },
)


def make_app(authorizer: Authorizer, *, errors: bool = True) -> FastAPI:
    auth = HttpAuth(authorizer)
    app = FastAPI()
    if errors:
        install_auth_errors(app)

    @app.get("/whoami")
    def whoami(who: Annotated[Identity, Depends(auth.identity)]) -> dict[str, str]:
        return {"name": who.name}

    readers = Depends(auth.require("read", path_param("table")))

    @app.get("/tables/{table}")
    def table(table: str, who: Annotated[Identity, readers]) -> dict[str, str]:
        return {"table": table, "name": who.name}

    @app.post("/admin/roll", dependencies=[Depends(auth.require("admin"))])
    def roll() -> dict[str, bool]:
        return {"rolled": True}

    return app


def serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from serve(make_app(Authorizer(CONFIG)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "invalid"),
    [
        ({}, False),
        (bearer("tdb_guess"), True),
        ({"Authorization": "Bearer"}, True),
        (basic("reader", "wrong"), True),
        (basic("nobody", "pw"), True),
        (basic("reader", TOKENS["ops"]), True),  # another identity's token
        ({"Authorization": "Basic !!!"}, False),
        ({"Authorization": "Digest x"}, False),
    ],
)
def test_without_valid_credentials_401_with_a_bearer_challenge(url, headers, invalid):
    for method, path in (("GET", "/whoami"), ("GET", "/tables/trade"), ("POST", "/admin/roll")):
        reply = httpx.request(method, url + path, headers=headers)
        assert reply.status_code == 401, (path, reply.text)
        challenge = reply.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert ('error="invalid_token"' in challenge) is invalid
        assert reply.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [bearer(TOKENS["reader"]), basic("reader", "pw"), basic("reader", TOKENS["reader"])],
    ids=["token", "password", "token-as-password"],
)
def test_the_right_role_gets_in_and_a_wrong_one_is_403(url, headers):
    assert httpx.get(url + "/whoami", headers=headers).json() == {"name": "reader"}
    ok = httpx.get(url + "/tables/trade", headers=headers)
    assert ok.status_code == 200 and ok.json() == {"table": "trade", "name": "reader"}
    other = httpx.get(url + "/tables/quote", headers=headers)
    assert other.status_code == 403
    assert other.json() == {"error": "forbidden", "message": "'reader' may not read quote"}
    assert "WWW-Authenticate" not in other.headers
    assert httpx.post(url + "/admin/roll", headers=headers).status_code == 403


def test_admin(url):
    assert httpx.post(url + "/admin/roll", headers=bearer(TOKENS["ops"])).json() == {"rolled": True}
    assert httpx.get(url + "/tables/trade", headers=bearer(TOKENS["ops"])).status_code == 403


def test_statuses_hold_without_the_error_handler():
    for base in serve(make_app(Authorizer(CONFIG), errors=False)):
        reply = httpx.get(base + "/tables/trade")
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert reply.json()["detail"]["error"] == "unauthorized"
        assert (
            httpx.get(base + "/tables/quote", headers=bearer(TOKENS["reader"])).status_code == 403
        )


def test_mode_none_lets_every_request_in():
    for base in serve(make_app(Authorizer(AuthConfig(mode="none")))):
        assert httpx.get(base + "/whoami").json() == {"name": "anonymous"}
        assert httpx.post(base + "/admin/roll").status_code == 200


def test_a_role_that_needs_a_resource_must_name_it():
    with pytest.raises(ValueError, match="read needs the table"):
        HttpAuth(Authorizer(CONFIG)).require("read")
