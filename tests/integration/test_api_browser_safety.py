"""/docs works offline (bundled Swagger UI, no CDN), and every response carries the browser
security headers; HTML pages allow only their own inline blocks, by hash."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.ingest.ledger import SqliteLedger
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

KEY = {"x-api-key": "test-key"}


@pytest.fixture
def client(
    tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder, ledger: SqliteLedger
) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", api_keys="test-key")
    container = Container(settings, backend=backend, embedder=embedder, ledger=ledger)
    return TestClient(create_app(container), raise_server_exceptions=False)


def _policy(response_headers: object) -> dict[str, list[str]]:
    header = response_headers["content-security-policy"]  # type: ignore[index]
    return {part.split()[0]: part.split()[1:] for part in header.split("; ")}


def test_docs_load_swagger_ui_from_this_server_not_a_cdn(client: TestClient) -> None:
    # Given the API / When /docs is fetched
    page = client.get("/docs")
    assert page.status_code == 200
    # Then every script, stylesheet and icon it references is served by this server
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert urls
    assert all(url.startswith("/") for url in urls), urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 500, url
    assert (
        client.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    )


def test_only_the_named_swagger_assets_are_served(client: TestClient) -> None:
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404


def test_the_favicon_is_served(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/health", None),
        ("GET", "/openapi.json", None),
        ("POST", "/v1/search", {"query": "deploy"}),
        ("POST", "/v1/search", {}),
        ("GET", "/no/such/route", None),
    ],
)
def test_every_api_response_carries_the_security_headers(
    client: TestClient, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = client.request(method, path, json=body, headers=KEY)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert _policy(response.headers)["default-src"] == ["'none'"]


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_html_pages_allow_exactly_their_own_inline_blocks(client: TestClient, path: str) -> None:
    # Given a page with inline <script>/<style> blocks
    response = client.get(path)
    assert response.headers["x-frame-options"] == "DENY"
    policy = _policy(response.headers)
    # Then the policy allows each block by its SHA-256, and nothing inline or from elsewhere
    for kind in ("script", "style"):
        for block in re.findall(rf"<{kind}[^>]*>(.*?)</{kind}>", response.text, re.DOTALL):
            if block.strip():
                digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
                assert f"'sha256-{digest}'" in policy[f"{kind}-src"]
        assert "'unsafe-inline'" not in policy[f"{kind}-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert all(not source.startswith("http") for sources in policy.values() for source in sources)
