"""What the page needs for sign-in (issue 15 item 3): its configuration, its vendored library, and
a Content-Security-Policy that opens exactly the issuer's token endpoint and nothing broader."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.app import create_app
from service.api.routes_auth import SIGN_IN_SCRIPT_PATH
from service.api.security_headers import page_policy
from service.contract import Env
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

STATIC = Path(__file__).resolve().parents[2] / "service" / "api" / "static"
DOMAIN = "https://rp-staging.auth.eu-west-1.amazoncognito.com"
ISSUER = {
    "auth_issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
    "auth_audience": "client123",
}
PAGE_SIGN_IN = {
    "auth_client_id": "client123",
    "auth_authorize_url": f"{DOMAIN}/oauth2/authorize",
    "auth_token_url": f"{DOMAIN}/oauth2/token",
    "auth_logout_url": f"{DOMAIN}/logout",
}


def client_for(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder, **values: Any
) -> TestClient:
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "api_keys": "test-key", **values})
    return TestClient(create_app(Container(settings, backend=backend, embedder=embedder)))


def connect_sources(response: Any) -> list[str]:
    header: str = response.headers["content-security-policy"]
    policy = {p.split()[0]: p.split()[1:] for p in header.split("; ")}
    return policy["connect-src"]


def test_the_page_may_call_the_token_endpoint_and_no_other_foreign_url(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    # Given an API whose page signs in at a Cognito domain
    client = client_for(tmp_path, backend, embedder, **ISSUER, **PAGE_SIGN_IN)
    # When the page is served
    page = client.get("/")
    # Then its policy adds the token endpoint, path and all, and not the domain or the issuer
    assert connect_sources(page) == ["'self'", f"{DOMAIN}/oauth2/token"]
    # And the page is told where to sign in, with which public client and scopes
    config = client.get("/auth/config").json()
    assert config["authorize_url"] == f"{DOMAIN}/oauth2/authorize"
    assert config["token_url"] == f"{DOMAIN}/oauth2/token"
    assert config["logout_url"] == f"{DOMAIN}/logout"
    assert (config["client_id"], config["scopes"]) == ("client123", ["openid", "email", "profile"])
    assert config["development"] is False


def test_without_page_sign_in_the_page_connects_to_its_own_origin_only(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    assert connect_sources(client_for(tmp_path, backend, embedder).get("/")) == ["'self'"]
    # An issuer without the page's endpoints: tokens work, the page offers the paste box only
    with_issuer = client_for(tmp_path, backend, embedder, **ISSUER)
    assert connect_sources(with_issuer.get("/")) == ["'self'"]
    assert with_issuer.get("/auth/config").json()["authorize_url"] is None


def test_the_vendored_library_is_served_from_this_server_and_unchanged(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    client = client_for(tmp_path, backend, embedder)
    # Given the page loads its sign-in library from this server, never a CDN
    page = client.get("/").text
    assert f'<script src="{SIGN_IN_SCRIPT_PATH}"></script>' in page
    assert not re.search(r"<script[^>]+src=\"https?:", page)
    # When the library is fetched
    script = client.get(SIGN_IN_SCRIPT_PATH)
    # Then it is JavaScript, and exactly the version VENDORED.md names (by its checksum)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    notes = (STATIC / "VENDORED.md").read_text()
    assert hashlib.sha256(script.content).hexdigest() in notes
    assert "**3.5.0**" in notes
    assert 'Oe="3.5.0"' in script.text  # the bundle's own Version constant
    for license_file in ("oidc-client-ts.LICENSE", "jwt-decode.LICENSE"):
        assert (STATIC / license_file).stat().st_size > 0


@pytest.mark.parametrize(
    "source",
    [
        "https://a.example/token 'unsafe-inline'",
        "https://a.example/t; script-src *",
        "http://a.example/t",
        "*",
    ],
    ids=["second-source", "new-directive", "plain-http", "wildcard"],
)
def test_a_connect_source_that_is_not_one_https_url_is_refused(source: str) -> None:
    with pytest.raises(ValueError, match="not a single https URL"):
        page_policy("<html></html>", connect=(source,))


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({**ISSUER, **PAGE_SIGN_IN, "auth_token_url": f"{DOMAIN}/t; script-src *"}, Env.AUTH_TOKEN_URL),
        (
            {**ISSUER, **PAGE_SIGN_IN, "auth_authorize_url": "http://login.example/authorize"},
            Env.AUTH_AUTHORIZE_URL,
        ),
        ({**ISSUER, **PAGE_SIGN_IN, "auth_logout_url": f"{DOMAIN}/logout x"}, Env.AUTH_LOGOUT_URL),
        ({**ISSUER, "auth_authorize_url": f"{DOMAIN}/oauth2/authorize"}, Env.AUTH_TOKEN_URL),
        ({**ISSUER, **PAGE_SIGN_IN, "auth_client_id": None}, Env.AUTH_CLIENT_ID),
        ({**PAGE_SIGN_IN}, Env.AUTH_ISSUER),
        ({**ISSUER, "auth_scopes": "email profile"}, Env.AUTH_SCOPES),
    ],
    ids=[
        "token-url-directive",
        "http-authorize",
        "logout-space",
        "no-token-url",
        "no-client",
        "no-issuer",
        "no-openid",
    ],
)
def test_bad_sign_in_settings_fail_naming_the_variable(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings.model_validate(values)


def test_scopes_come_from_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.AUTH_SCOPES, "openid email")
    assert Settings().auth_scopes == ("openid", "email")
