"""Keys and sign-in on the platform `make dev` starts (issue 15): `ragctl keys` and `ragctl token`
against the running API, over HTTP, with nothing mocked."""

from __future__ import annotations

import subprocess
import sys

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
