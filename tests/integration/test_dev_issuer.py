"""The page's sign-in against the local development issuer (issue 15 item 3): the authorization-code
flow with PKCE (RFC 7636) driven step by step over HTTP, then the token on the API; and every way
a code exchange can be wrong gets one `invalid_grant` body that says nothing more."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.dev_issuer import (
    AUTHORIZE_PATH,
    CODE_TTL_SECONDS,
    DEV_CLIENT_ID,
    DISCOVERY_PATH,
    TOKEN_PATH,
    AuthorizationCodes,
    CodeGrant,
    s256_challenge,
)
from service.api.lambda_handler import build_handler
from service.api.logs import build_logger
from service.api.routes_auth import SIGN_IN_SCRIPT_PATH
from service.api.tokens_dev import DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_PATH, ensure_dev_key
from service.ingest.indexer import Indexer
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder, make_document
from tests.integration.test_api_lambda import gateway_event, lambda_context

PAGE = "http://testserver/"
GROUP_MAP = {
    "eng": {"workspaces": ["default"], "role": "reader"},
    "sales": {"workspaces": ["sales"], "role": "reader"},
}


@pytest.fixture
def client(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder, indexer: Indexer
) -> TestClient:
    ensure_dev_key(tmp_path / "data")
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "api_keys": "bootstrap-key-0001",
            "auth_issuer": DEV_ISSUER,
            "auth_audience": DEV_AUDIENCE,
            "auth_algorithms": "ES256",
            "auth_dev_tokens": True,
            "auth_group_map": json.dumps(GROUP_MAP),
        }
    )
    indexer.index(make_document("deploy.md", "Deploy to staging with make deploy STACK=staging."))
    container = Container(settings, backend=backend, embedder=embedder)
    return TestClient(create_app(container), raise_server_exceptions=False, follow_redirects=False)


def pkce() -> tuple[str, str]:
    """A verifier and its S256 challenge, computed here independently of the server's helper."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(client: TestClient, challenge: str, **extra: str) -> Any:
    params = {
        "response_type": "code",
        "client_id": DEV_CLIENT_ID,
        "redirect_uri": PAGE,
        "scope": "openid email profile",
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return client.get(AUTHORIZE_PATH, params={k: v for k, v in params.items() if v != "<omit>"})


def code_for(client: TestClient, challenge: str, user: str = "ann@example.com", groups: str = "eng") -> str:
    response = authorize(client, challenge, user=user, groups=groups)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == PAGE
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    code: str = query["code"][0]
    return code


def exchange(client: TestClient, code: str, verifier: str, change: dict[str, str] | None = None) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": PAGE,
        "client_id": DEV_CLIENT_ID,
        "code_verifier": verifier,
        **(change or {}),
    }
    return client.post(TOKEN_PATH, data=form)


def test_the_whole_code_and_pkce_flow_signs_a_user_in_to_their_workspaces(client: TestClient) -> None:
    # Given the page's configuration and the issuer's discovery document agree on the endpoints
    config = client.get("/auth/config").json()
    discovery = client.get(DISCOVERY_PATH).json()
    assert (
        config["authorize_url"] == discovery["authorization_endpoint"] == f"http://testserver{AUTHORIZE_PATH}"
    )
    assert config["token_url"] == discovery["token_endpoint"]
    assert config["client_id"] == DEV_CLIENT_ID
    assert "openid" in config["scopes"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["issuer"] == DEV_ISSUER
    assert client.get(DEV_JWKS_PATH).json()["keys"]
    # When the page sends the person to authorize without a user, they get the form to pick one
    form = authorize(client, pkce()[1])
    assert form.status_code == 200
    assert 'name="user"' in form.text
    assert 'value="st-123"' in form.text
    assert "script-src 'self'" in form.headers["content-security-policy"]
    # And once they pick a user and groups, the redirect carries a code the verifier redeems
    verifier, challenge = pkce()
    response = exchange(client, code_for(client, challenge), verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    # Then the ID token searches the workspace the groups grant, and nothing else
    bearer = {"authorization": f"Bearer {tokens['id_token']}"}
    allowed = client.post("/v1/search", json={"query": "deploy", "mode": "bm25"}, headers=bearer)
    assert allowed.status_code == 200
    assert [h["document_id"] for h in allowed.json()["hits"]] == ["deploy.md"]
    other = client.post("/v1/search", json={"query": "deploy", "workspace": "sales"}, headers=bearer)
    assert other.status_code == 403
    assert other.json()["detail"] == "forbidden"


def test_the_user_and_groups_picked_are_the_tokens_claims(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge, user="bob@example.com", groups="sales")
    tokens = exchange(client, code, verifier).json()
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert (claims["sub"], claims["email"]) == ("bob@example.com", "bob@example.com")
    assert claims["groups"] == ["sales"]
    assert (claims["iss"], claims["aud"]) == (DEV_ISSUER, DEV_AUDIENCE)
    bearer = {"authorization": f"Bearer {tokens['id_token']}"}
    sales = {"query": "x", "workspace": "sales"}
    assert client.post("/v1/search", json=sales, headers=bearer).status_code == 200
    assert client.post("/v1/search", json={"query": "x"}, headers=bearer).status_code == 403


def test_a_wrong_verifier_spends_the_code_and_says_only_invalid_grant(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)
    # When the code comes back with another verifier
    wrong = exchange(client, code, pkce()[0])
    # Then it is refused with the bare error code, and the right verifier cannot use it after
    assert (wrong.status_code, wrong.json()) == (400, {"error": "invalid_grant"})
    assert exchange(client, code, verifier).json() == {"error": "invalid_grant"}


def test_a_code_is_redeemed_once(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)
    assert exchange(client, code, verifier).status_code == 200
    again = exchange(client, code, verifier)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "http://testserver/elsewhere"},
        {"client_id": "another-client"},
        {"code": "not-a-code"},
        {"code_verifier": "short"},
        {"code_verifier": ""},
    ],
    ids=["redirect-uri", "client-id", "unknown-code", "malformed-verifier", "no-verifier"],
)
def test_every_wrong_exchange_gets_the_same_body(client: TestClient, change: dict[str, str]) -> None:
    verifier, challenge = pkce()
    response = exchange(client, code_for(client, challenge), verifier, change)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})
    assert response.headers["cache-control"] == "no-store"


def test_an_expired_code_is_refused() -> None:
    # Given a code store on a clock we move
    now = [1000.0]
    codes = AuthorizationCodes(clock=lambda: now[0])
    verifier, challenge = pkce()

    def grant(expires_at: float) -> CodeGrant:
        return CodeGrant("ann", ("eng",), DEV_CLIENT_ID, PAGE, challenge, None, expires_at)

    fresh, stale = codes.issue(grant), codes.issue(grant)
    # When one is redeemed in time and the other a moment after its lifetime
    assert codes.redeem(fresh) is not None
    now[0] += CODE_TTL_SECONDS
    # Then the late one is gone, as is anything unknown
    assert codes.redeem(stale) is None
    assert s256_challenge(verifier) == challenge


def test_an_expired_code_is_refused_over_http(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)
    # The codes' clock is time.monotonic: jump it past the lifetime
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + CODE_TTL_SECONDS + 1)
    response = exchange(client, code, verifier)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "https://evil.example/"},
        {"client_id": "another-client"},
        {"code_challenge_method": "plain"},
        {"code_challenge": "<omit>"},
        {"code_challenge": "too-short"},
        {"response_type": "token"},
        {"scope": "email"},
    ],
    ids=["foreign-redirect", "client-id", "plain", "no-challenge", "bad-challenge", "implicit", "no-openid"],
)
def test_a_bad_authorization_request_never_redirects(client: TestClient, change: dict[str, str]) -> None:
    response = authorize(client, pkce()[1], user="ann", **change)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "who",
    [{"user": ""}, {"user": "a" * 300}, {"user": "ann", "groups": "eng, " + "g" * 300}],
    ids=["no-user", "long-user", "long-group"],
)
def test_a_malformed_user_or_group_gets_no_code(client: TestClient, who: dict[str, str]) -> None:
    response = authorize(client, pkce()[1], **who)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_request"})


def test_the_token_endpoint_refuses_other_grants_and_repeated_parameters(client: TestClient) -> None:
    other = client.post(TOKEN_PATH, data={"grant_type": "password", "username": "ann"})
    assert (other.status_code, other.json()) == (400, {"error": "unsupported_grant_type"})
    verifier, challenge = pkce()
    code = code_for(client, challenge)
    repeated = client.post(
        TOKEN_PATH,
        content=f"grant_type=authorization_code&code={code}&code={code}&code_verifier={verifier}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (repeated.status_code, repeated.json()) == (400, {"error": "invalid_request"})


def test_the_lambda_app_has_no_development_issuer(
    backend: LocalSearchBackend, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the API as Lambda runs it (a stack's settings), with a real issuer configured for the page
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = Settings.model_validate(
        {
            "environment": "staging",
            "search_backend": "opensearch",
            "search_endpoint": "https://search.example.com",
            "keys_table": "keys",
            "api_key_pepper_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p-abcdef",
            "api_keys": "bootstrap-key-0001",
            "auth_issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
            "auth_audience": "client123",
            "auth_client_id": "client123",
            "auth_authorize_url": "https://rp.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
            "auth_token_url": "https://rp.auth.eu-west-1.amazoncognito.com/oauth2/token",
        }
    )
    container = Container(settings, backend=backend, embedder=embedder)
    handler = build_handler(container, logger=build_logger(service="lambda-test"), process_logging=False)
    # When anyone asks for the development issuer's endpoints
    paths = [("GET", DISCOVERY_PATH), ("GET", AUTHORIZE_PATH), ("POST", TOKEN_PATH), ("GET", DEV_JWKS_PATH)]
    statuses = [handler(gateway_event(verb, path), lambda_context())["statusCode"] for verb, path in paths]
    # Then none exists, and the page is told the real issuer's endpoints
    assert statuses == [404, 404, 404, 404]
    # And the page's sign-in library is served by the Lambda too (no CDN in the cloud either)
    script = handler(gateway_event("GET", SIGN_IN_SCRIPT_PATH), lambda_context())
    assert script["statusCode"] == 200
    assert "UserManager" in (
        base64.b64decode(script["body"]).decode() if script["isBase64Encoded"] else script["body"]
    )
    config = json.loads(handler(gateway_event("GET", "/auth/config"), lambda_context())["body"])
    assert config["development"] is False
    assert config["token_url"] == "https://rp.auth.eu-west-1.amazoncognito.com/oauth2/token"


def test_the_sign_in_form_escapes_what_the_request_carried(client: TestClient) -> None:
    # Given an authorization request whose state tries to close the attribute and add a script
    form = authorize(client, pkce()[1], state='"><script>alert(1)</script>')
    # Then the form carries it back as text, and its policy would not run an inline script anyway
    assert form.status_code == 200
    assert "<script>alert(1)" not in form.text
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in form.text
    assert "'unsafe-inline'" not in form.headers["content-security-policy"]
