"""The Authorizer: every role x action x resource, each credential kind, mode none, and the
config checks that keep a plaintext password or a misspelt role out of ``[auth]``."""

from __future__ import annotations

import logging
import re
from typing import Any

import argon2
import pytest

from tickdb.auth import (
    ACTIONS,
    ANONYMOUS,
    OPEN_WARNING,
    AuthConfig,
    Authorizer,
    Identity,
    IdentityConfig,
    Role,
    hash_token,
)
from tickdb.config import ConfigError, config_from_dict
from tickdb.keyfiles import CurveKeyPair

# Cheap hashes: the Authorizer verifies with the parameters stored in the hash.
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

ROLES = {
    "reader": ["read"],
    "trade_reader": ["read:trade"],
    "feed": ["publish:trade", "publish:quote"],
    "any_feed": ["publish:*"],
    "trader": ["trade:ACC1", "read:trade"],
    "desk": ["trade:*"],
    "ops": ["admin"],
    "root": ["read", "publish:*", "trade:*", "admin"],
    "nobody": [],
}
TABLES = ("trade", "quote", "order")
ACCOUNTS = ("ACC1", "ACC2")
# What each identity may do: action -> the resources allowed (None stands for admin's).
GRANTS: dict[str, dict[str, set[Any]]] = {
    "reader": {"read": set(TABLES)},
    "trade_reader": {"read": {"trade"}},
    "feed": {"publish": {"trade", "quote"}},
    "any_feed": {"publish": set(TABLES)},
    "trader": {"trade": {"ACC1"}, "read": {"trade"}},
    "desk": {"trade": set(ACCOUNTS)},
    "ops": {"admin": {None}},
    "root": {"read": set(TABLES), "publish": set(TABLES), "trade": set(ACCOUNTS), "admin": {None}},
    "nobody": {},
}
RESOURCES: dict[str, tuple[Any, ...]] = {
    "read": TABLES,
    "publish": TABLES,
    "trade": ACCOUNTS,
    "admin": (None,),
}
CASES = [
    (name, action, resource, resource in GRANTS[name].get(action, set()))
    for name in ROLES
    for action in ACTIONS
    for resource in RESOURCES[action]
]


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    identities = {name: IdentityConfig(roles=roles) for name, roles in ROLES.items()}
    return Authorizer(AuthConfig(mode="on", identities=identities))


@pytest.mark.parametrize(("name", "action", "resource", "expected"), CASES)
def test_each_role_action_and_resource(authorizer, name, action, resource, expected):
    identity = authorizer.identity(name)
    assert identity is not None
    assert authorizer.allows(identity, action, resource) is expected
    assert identity.has_role(action) is bool(GRANTS[name].get(action))


def test_no_identity_is_allowed_nothing(authorizer):
    for action in ACTIONS:
        for resource in RESOURCES[action]:
            assert not authorizer.allows(None, action, resource)
    assert authorizer.identity("stranger") is None


def test_a_resource_is_required_except_for_admin(authorizer):
    with pytest.raises(ValueError, match="needs the table"):
        authorizer.allows(authorizer.identity("reader"), "read")
    with pytest.raises(ValueError, match="needs the account"):
        authorizer.allows(authorizer.identity("desk"), "trade")
    with pytest.raises(ValueError, match="unknown action"):
        authorizer.allows(authorizer.identity("root"), "delete", "trade")  # type: ignore[arg-type]


def test_roles_parse_and_merge():
    assert Role.parse("read") == Role("read") == Role.parse("read:*")
    assert Role.parse("publish:trade") == Role("publish", frozenset({"trade"}))
    merged = Identity.from_roles("x", ["read:trade", "read:quote", "trade:A", "trade:*"])
    assert merged.role("read") == Role("read", frozenset({"trade", "quote"}))
    assert merged.role("trade") == Role("trade")
    assert [str(r) for r in merged.roles] == ["read:quote, read:trade", "trade:*"]
    for bad, message in [
        ("write", "unknown role"),
        ("publish", "publish:NAME"),
        ("trade", "trade:NAME"),
        ("admin:all", "admin takes no resource"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Role.parse(bad)


# -- credentials -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def creds() -> dict[str, Any]:
    alice_key, bob_key = CurveKeyPair.new(), CurveKeyPair.new()
    tokens = {"alice": "tdb_alice-token", "old": "tdb_alice-old", "bob": "tdb_bob-token"}
    config = AuthConfig(
        mode="on",
        identities={
            "alice": IdentityConfig(
                password=FAST.hash("correct horse"),
                tokens=[hash_token(tokens["alice"]), hash_token(tokens["old"])],
                curve_keys=[alice_key.public],
                roles=["read"],
            ),
            "bob": IdentityConfig(
                tokens=[hash_token(tokens["bob"])], curve_keys=[bob_key.public], roles=["admin"]
            ),
        },
    )
    return {"auth": Authorizer(config), "tokens": tokens, "alice": alice_key, "bob": bob_key}


def test_passwords(creds):
    auth = creds["auth"]
    assert auth.check_password("alice", "correct horse") == auth.identity("alice")
    assert auth.check_password("alice", "correct horse ") is None
    assert auth.check_password("alice", "") is None
    assert auth.check_password("bob", "correct horse") is None  # bob has no password
    assert auth.check_password("carol", "correct horse") is None


class CountingHasher(argon2.PasswordHasher):
    calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        type(self).calls += 1
        return super().verify(hash, password)


def test_a_verified_password_is_not_rehashed_each_time():
    config = AuthConfig(
        mode="on", identities={"alice": IdentityConfig(password=FAST.hash("pw"), roles=["read"])}
    )
    auth = Authorizer(config, hasher=CountingHasher())
    assert auth.check_password("alice", "pw") is not None
    assert CountingHasher.calls == 1
    assert auth.check_password("alice", "pw") is not None
    assert CountingHasher.calls == 1  # remembered
    assert auth.check_password("alice", "a guess") is None
    assert auth.check_password("alice", "a guess") is None
    assert CountingHasher.calls == 3  # failures are never remembered


def test_tokens_both_while_rotating(creds):
    auth, tokens = creds["auth"], creds["tokens"]
    assert auth.check_token(tokens["alice"]).name == "alice"
    assert auth.check_token(tokens["old"]).name == "alice"
    assert auth.check_token(tokens["bob"]).name == "bob"
    assert auth.check_token("tdb_guess") is None
    assert auth.check_token("") is None


def test_a_login_takes_a_password_or_the_users_own_token(creds):
    auth, tokens = creds["auth"], creds["tokens"]
    assert auth.check_login("alice", "correct horse").name == "alice"
    assert auth.check_login("bob", tokens["bob"]).name == "bob"
    assert auth.check_login("alice", tokens["bob"]) is None  # bob's token, not alice's
    assert auth.check_login("", tokens["bob"]) is None


def test_curve_keys(creds):
    auth = creds["auth"]
    assert auth.identity_for_curve_key(creds["alice"].public).name == "alice"
    assert auth.identity_for_curve_key(creds["bob"].public.encode()).name == "bob"
    assert auth.identity_for_curve_key(CurveKeyPair.new().public) is None
    assert auth.identity_for_curve_key("short") is None


def test_mode_none_opens_everything_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="tickdb.auth"):
        auth = Authorizer(AuthConfig())
    assert auth.mode == "none" and not auth.enabled
    assert any(r.levelno == logging.WARNING and r.message == OPEN_WARNING for r in caplog.records)
    assert "EVERY PORT IS OPEN" in OPEN_WARNING
    assert auth.check_password("anyone", "anything") is ANONYMOUS
    assert auth.check_token("x") is ANONYMOUS
    assert auth.identity_for_curve_key(CurveKeyPair.new().public) is ANONYMOUS
    for action in ACTIONS:
        for resource in RESOURCES[action]:
            assert auth.allows(None, action, resource)


def test_mode_on_without_identities_refuses_everyone(caplog):
    with caplog.at_level(logging.WARNING, logger="tickdb.auth"):
        auth = Authorizer(AuthConfig(mode="on"))
    assert "every client is refused" in caplog.text
    assert auth.check_password("admin", "admin") is None
    assert auth.check_token("x") is None


# -- the [auth] section ------------------------------------------------------------------
def test_the_section_loads_from_toml_shapes():
    config = config_from_dict(
        {
            "auth": {
                "mode": "on",
                "identities": {
                    "feed": {"curve_keys": [CurveKeyPair.new().public], "roles": ["publish:*"]},
                    "alice": {"password": FAST.hash("pw"), "roles": ["read:trade", "admin"]},
                },
            }
        }
    )
    assert config.auth.mode == "on"
    assert config.auth.identities["alice"].roles == ["read:trade", "admin"]
    assert Authorizer(config.auth).check_password("alice", "pw").name == "alice"


TOKEN = hash_token("t")


@pytest.mark.parametrize(
    ("identity", "key", "message"),
    [
        ({"password": "hunter2"}, "auth.identities.x.password", "plaintext passwords"),
        ({"tokens": ["t"]}, "auth.identities.x.tokens[0]", "sha256:<64 hex digits>"),
        ({"tokens": ["sha256:abc"]}, "auth.identities.x.tokens[0]", "sha256:"),
        ({"curve_keys": ["nope"]}, "auth.identities.x.curve_keys[0]", "z85"),
        ({"roles": ["write"]}, "auth.identities.x.roles[0]", "unknown role"),
        ({"roles": ["publish"]}, "auth.identities.x.roles[0]", "publish:*"),
        ({"roles": ["read:nope"]}, "auth.identities.x.roles[0]", "unknown table 'nope'"),
        ({"role": ["read"]}, "auth.identities.x.role", "unknown setting"),
        ({"roles": "read"}, "auth.identities.x.roles", "expected a list"),
    ],
)
def test_bad_identities_name_the_key(identity, key, message):
    raw = {"auth": {"mode": "on", "identities": {"x": identity}}}
    with pytest.raises(ConfigError, match=re.escape(key) + ".*" + re.escape(message)):
        config_from_dict(raw)


def test_one_credential_belongs_to_one_identity():
    twice = {"tokens": [TOKEN], "roles": ["read"]}
    raw = {"auth": {"mode": "on", "identities": {"a": twice, "b": twice}}}
    message = "auth.identities.b: a token, CURVE key or client certificate of 'a'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(raw)


FINGERPRINT = "sha256:" + "ab" * 32


def test_client_certificates_by_subject_or_fingerprint():
    with_colons = "SHA256:" + ":".join(["AB"] * 32)  # as openssl prints it
    authorizer = Authorizer(
        AuthConfig(
            mode="on",
            identities={
                "desk1": IdentityConfig(cert_subjects=["CN=desk1,O=tickdb"], roles=["read"]),
                "desk2": IdentityConfig(cert_fingerprints=[with_colons], roles=["trade:D2"]),
            },
        )
    )
    desk1 = authorizer.identity_for_cert("00" * 32, "CN=desk1,O=tickdb")
    assert desk1 is not None and desk1.name == "desk1"
    desk2 = authorizer.identity_for_cert("ab" * 32, "CN=desk1,O=tickdb")  # fingerprint first
    assert desk2 is not None and desk2.name == "desk2"
    assert authorizer.identity_for_cert("00" * 32, "CN=desk1") is None  # the whole subject
    assert authorizer.identity_for_cert("00" * 32, "CN=desk3,O=tickdb") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cert_fingerprints": ["ab" * 32]}, "cert_fingerprints[0]: expected sha256:"),
        ({"cert_fingerprints": ["sha256:abc"]}, "cert_fingerprints[0]: expected sha256:"),
        ({"cert_subjects": ["desk1"]}, "cert_subjects[0]: expected RFC 4514"),
    ],
)
def test_malformed_client_certificate_names_are_refused(entry: dict[str, Any], message: str):
    raw = {"auth": {"mode": "on", "identities": {"a": {**entry, "roles": ["read"]}}}}
    with pytest.raises(ConfigError, match=re.escape(f"auth.identities.a.{message}")):
        config_from_dict(raw)


@pytest.mark.parametrize(
    "entry", [{"cert_fingerprints": [FINGERPRINT]}, {"cert_subjects": ["CN=x,O=tickdb"]}]
)
def test_one_client_certificate_belongs_to_one_identity(entry: dict[str, Any]):
    raw = {"auth": {"mode": "on", "identities": {"a": {**entry}, "b": {**entry}}}}
    with pytest.raises(ConfigError, match="client certificate of 'a'"):
        config_from_dict(raw)


def test_bad_mode_and_names():
    with pytest.raises(ConfigError, match=re.escape("auth.mode: expected one of on, none")):
        config_from_dict({"auth": {"mode": "off"}})
    with pytest.raises(ConfigError, match=re.escape("auth.identities.a b: a name is")):
        config_from_dict({"auth": {"identities": {"a b": {"roles": ["read"]}}}})
