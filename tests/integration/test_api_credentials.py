"""Credentials through the HTTP API (issue 15, Must show): expired, revoked, wrong-audience,
wrong-issuer and tampered tokens and keys all get a 401 with one body; revocation holds from the
next request; the rate limit is per key; an unknown kid costs one JWKS refetch."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipelines.keys_cli import create_key
from service.access import Role
from service.api.app import create_app
from service.api.auth_wiring import build_authenticator
from service.api.keys_sqlite import SqliteKeyStore, local_keys_path
from service.api.tokens import JwksCache
from service.api.tokens_dev import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    dev_jwks,
    dev_key_path,
    ensure_dev_key,
    issue_dev_token,
)
from service.contract import API_KEY_HEADER
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

BOOTSTRAP = "bootstrap-key-0001"
SEARCH = {"query": "deploy"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    ensure_dev_key(tmp_path / "data")
    return Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "api_keys": BOOTSTRAP,
            "auth_issuer": DEV_ISSUER,
            "auth_audience": DEV_AUDIENCE,
            "auth_algorithms": "ES256",
            "auth_dev_tokens": True,
            "auth_group_map": json.dumps({"eng": {"workspaces": ["default"], "role": "reader"}}),
            "rate_limit_per_minute": 1000,
        }
    )


@pytest.fixture
def make_client(
    settings: Settings, backend: LocalSearchBackend, embedder: HashingEmbedder
) -> Callable[..., TestClient]:
    def build(**kwargs: Any) -> TestClient:
        chosen = settings.model_copy(update=kwargs.pop("settings", {}))
        container = Container(chosen, backend=backend, embedder=embedder)
        return TestClient(create_app(container, **kwargs), raise_server_exceptions=False)

    return build


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def key_for(settings: Settings, role: Role = Role.READER, **kwargs: Any) -> tuple[str, str]:
    values: dict[str, Any] = {"name": "test", "role": role, "workspaces": ["default"], "expires_in": None}
    return create_key(settings, **{**values, **kwargs})


def _tamper(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def _swap_claims(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return ".".join([header, encoded, signature])


def bad_credentials(settings: Settings) -> dict[str, dict[str, str]]:
    """One request's headers per way a credential can be wrong."""
    data = settings.data_dir
    now = datetime.now(UTC)
    _, expired = key_for(settings, now=now - timedelta(days=2), expires_in=timedelta(days=1))
    revoked_id, revoked = key_for(settings)
    SqliteKeyStore(local_keys_path(data)).revoke(revoked_id, now)
    _, good = key_for(settings)

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    def token(**kwargs: Any) -> str:
        return issue_dev_token(data, user="ann", groups=["eng"], **kwargs)

    return {
        "no-credential": {},
        "unknown-bootstrap-key": {API_KEY_HEADER: "not-a-key"},
        "key-expired": {API_KEY_HEADER: expired},
        "key-revoked": {API_KEY_HEADER: revoked},
        "key-tampered": {API_KEY_HEADER: _tamper(good)},
        "key-unknown-id": {API_KEY_HEADER: "rp_0123456789abcdef_" + good.split("_", 2)[2]},
        "token-expired": bearer(token(now=time.time() - 7200)),
        "token-wrong-audience": bearer(token(audience="another-api")),
        "token-wrong-issuer": bearer(token(issuer="urn:someone-else")),
        "token-tampered-claims": bearer(_swap_claims(token(), sub="admin", groups=["ops"])),
        "token-tampered-signature": bearer(_tamper(token())),
        "token-as-api-key": {API_KEY_HEADER: token()},
        "key-as-token": bearer(good),
        "basic-auth": {"authorization": "Basic " + base64.b64encode(b"a:b").decode()},
    }


def test_every_bad_credential_gets_one_401_body(client: TestClient, settings: Settings) -> None:
    # Given every way a key or a token can be wrong
    bodies = {}
    for name, headers in bad_credentials(settings).items():
        # When each is sent to a protected route
        response = client.post("/v1/search", json=SEARCH, headers=headers)
        # Then each gets a 401
        assert response.status_code == 401, name
        body = response.json()
        assert body.pop("request_id")
        bodies[name] = body
    # with the same body, which says nothing about which check failed
    assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1, bodies
    detail = next(iter(bodies.values()))["detail"]
    for word in ("expired", "revoked", "audience", "issuer", "signature", "unknown", "kid"):
        assert word not in detail


def test_good_credentials_of_each_kind_get_in(client: TestClient, settings: Settings) -> None:
    _, key = key_for(settings)
    token = issue_dev_token(settings.data_dir, user="ann", groups=["eng"])
    for headers in ({API_KEY_HEADER: BOOTSTRAP}, {API_KEY_HEADER: key}, {"authorization": f"Bearer {token}"}):
        assert client.post("/v1/search", json=SEARCH, headers=headers).status_code == 200, headers


def test_revocation_takes_effect_on_the_next_request(client: TestClient, settings: Settings) -> None:
    # Given a key in use by a running API
    key_id, key = key_for(settings)
    assert client.post("/v1/search", json=SEARCH, headers={API_KEY_HEADER: key}).status_code == 200
    # When the operator revokes it (ragctl keys revoke, through another handle on the store)
    assert SqliteKeyStore(local_keys_path(settings.data_dir)).revoke(key_id, datetime.now(UTC))
    # Then the very next request is refused
    assert client.post("/v1/search", json=SEARCH, headers={API_KEY_HEADER: key}).status_code == 401


def test_the_rate_limit_is_per_key(make_client: Callable[..., TestClient], settings: Settings) -> None:
    # Given a limit of 2 a minute and two keys
    client = make_client(settings={"rate_limit_per_minute": 2}, clock=lambda: 0.0)
    _, first = key_for(settings)
    _, second = key_for(settings)
    # When the first key uses up its limit
    codes = [
        client.post("/v1/search", json=SEARCH, headers={API_KEY_HEADER: first}).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    # Then the second key still gets in: one key cannot starve another
    assert client.post("/v1/search", json=SEARCH, headers={API_KEY_HEADER: second}).status_code == 200


def test_a_rotated_signing_key_costs_one_jwks_fetch(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    # Given an API whose JWKS cache counts fetches, on a clock the test drives
    now = [0.0]
    cache = JwksCache(lambda: dev_jwks(settings.data_dir), min_refetch_seconds=30, clock=lambda: now[0])
    client = make_client(authenticator=build_authenticator(settings, (), jwks=cache))
    old = issue_dev_token(settings.data_dir, user="ann", groups=["eng"])
    assert (
        client.post("/v1/search", json=SEARCH, headers={"authorization": f"Bearer {old}"}).status_code == 200
    )
    assert cache.fetches == 1
    # When the signing key is rotated and a token with the new kid arrives
    dev_key_path(settings.data_dir).unlink()
    ensure_dev_key(settings.data_dir)
    new = issue_dev_token(settings.data_dir, user="ann", groups=["eng"])
    now[0] = 31.0
    headers = {"authorization": f"Bearer {new}"}
    # Then one refetch lets it in, and further requests fetch nothing
    assert [client.post("/v1/search", json=SEARCH, headers=headers).status_code for _ in range(3)] == [
        200
    ] * 3
    assert cache.fetches == 2


def test_the_page_learns_whether_sign_in_is_offered(
    client: TestClient, make_client: Callable[..., TestClient]
) -> None:
    config = client.get("/auth/config").json()
    assert config["tokens"] is True
    assert config["development"] is True
    # The local JWKS is published without its private part
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert "d" not in keys[0]
    # Without an issuer: no sign-in and no JWKS route
    plain = make_client(settings={"auth_issuer": None, "auth_audience": None, "auth_dev_tokens": False})
    assert plain.get("/auth/config").json()["tokens"] is False
    assert plain.get("/.well-known/jwks.json").status_code == 404
