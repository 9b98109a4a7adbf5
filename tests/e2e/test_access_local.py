"""Keys and sign-in on the platform `make dev` starts (issue 15): `ragctl keys` and `ragctl token`
against the running API, over HTTP, with nothing mocked."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pipelines.platform_file import PlatformInfo
from service.contract import API_KEY_HEADER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SEARCH = {"query": "deploy", "top_k": 1}


def ragctl(info: PlatformInfo, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--data-dir", info.data_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def search(info: PlatformInfo, headers: dict[str, str]) -> int:
    return httpx.post(f"{info.api_url}/v1/search", json=SEARCH, headers=headers, timeout=60).status_code


def test_a_scoped_key_works_until_revoked(local_platform: PlatformInfo) -> None:
    # Given a reader key made with the CLI while the platform runs
    key = ragctl(local_platform, "keys", "create", "--name", "e2e", "--role", "reader")
    assert search(local_platform, {API_KEY_HEADER: key}) == 200
    # When it is revoked
    ragctl(local_platform, "keys", "revoke", key.split("_")[1])
    # Then the running API refuses it on the next request, with the body of any bad key
    refused = httpx.post(f"{local_platform.api_url}/v1/search", json=SEARCH, headers={API_KEY_HEADER: key})
    wrong = httpx.post(f"{local_platform.api_url}/v1/search", json=SEARCH, headers={API_KEY_HEADER: "nope"})
    assert refused.status_code == wrong.status_code == 401
    assert refused.json()["detail"] == wrong.json()["detail"]


def test_a_development_token_signs_in_offline(local_platform: PlatformInfo) -> None:
    token = ragctl(local_platform, "token", "issue", "--user", "ann", "--groups", "readers")
    assert search(local_platform, {"authorization": f"Bearer {token}"}) == 200
    # A token with its signature cut is refused like any bad credential
    assert search(local_platform, {"authorization": f"Bearer {token[:-6]}"}) == 401
    assert httpx.get(f"{local_platform.api_url}/auth/config").json()["development"] is True


def test_the_page_signs_in_at_the_platforms_own_issuer(local_platform: PlatformInfo) -> None:
    # Given the endpoints the running platform tells its page
    api = local_platform.api_url
    config = httpx.get(f"{api}/auth/config").json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    # When the page's code flow runs: authorize as a reader, then redeem the code with the verifier
    authorized = httpx.get(
        config["authorize_url"],
        params={
            "response_type": "code",
            "client_id": config["client_id"],
            "redirect_uri": f"{api}/",
            "scope": " ".join(config["scopes"]),
            "state": "e2e",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "user": "ann@example.com",
            "groups": "readers",
        },
    )
    assert authorized.status_code == 302
    code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": f"{api}/"}
    tokens = httpx.post(
        config["token_url"], data={**form, "client_id": config["client_id"], "code_verifier": verifier}
    )
    # Then the ID token reads the default workspace, and the same code cannot be used again
    assert search(local_platform, {"authorization": f"Bearer {tokens.json()['id_token']}"}) == 200
    again = httpx.post(
        config["token_url"], data={**form, "client_id": config["client_id"], "code_verifier": verifier}
    )
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
