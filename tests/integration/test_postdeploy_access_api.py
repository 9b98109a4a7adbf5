"""The reader-key checks against the real API app (issue 15 item 5).

The unit tests drive the checks against a fake; here they run against `create_app` with the
local key store, and the API's protected routes are read from the app itself: a route the
checks do not classify (a new write route, say) fails the tripwire until the checks cover it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipelines.keys_cli import local_pepper
from pipelines.postdeploy.access import READER_ROUTES, WRITER_ROUTES, StoreKeyIssuer, reader_key_checks
from pipelines.postdeploy.client import QUERY_PATH, SEARCH_PATH
from pipelines.postdeploy.inprocess import api_client
from service.access import DEFAULT_WORKSPACE
from service.api.app import create_app
from service.api.keys_sqlite import SqliteKeyStore, local_keys_path
from service.contract import API_KEY_HEADER
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

BOOTSTRAP = "bootstrap-key-0001"
# A valid body per reader route; a route missing here is one the checks do not know.
BODIES: dict[str, dict[str, Any]] = {
    QUERY_PATH: {"question": "what is deployed?"},
    f"{QUERY_PATH}/stream": {"question": "what is deployed?"},
    SEARCH_PATH: {"query": "deployed"},
}


@pytest.fixture
def container(tmp_path: Path, backend: LocalSearchBackend, embedder: HashingEmbedder) -> Container:
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "api_keys": BOOTSTRAP, "rate_limit_per_minute": 1000}
    )
    return Container(settings, backend=backend, embedder=embedder)


@pytest.fixture
def app_client(container: Container) -> TestClient:
    return TestClient(create_app(container), raise_server_exceptions=False)


def issuer(tmp_path: Path) -> StoreKeyIssuer:
    data_dir = tmp_path / "data"
    return StoreKeyIssuer(SqliteKeyStore(local_keys_path(data_dir)), lambda: local_pepper(data_dir))


def test_the_checks_pass_against_the_real_api_and_revoke_their_key(
    container: Container, tmp_path: Path
) -> None:
    # Given the real app over the local key store
    # When the reader-key checks run against it
    checks = reader_key_checks(api_client(container, BOOTSTRAP), issuer(tmp_path))
    # Then every check passes, and the one key they made is revoked
    assert [(c.name, c.ok) for c in checks] == [
        ("reader key reads its workspace", True),
        ("reader key cannot see another workspace", True),
        ("reader key cannot use writer routes", True),
        ("revoked key refused at once", True),
    ], [c.detail for c in checks]
    [record] = SqliteKeyStore(local_keys_path(tmp_path / "data")).list()
    assert record.revoked_at is not None


def protected_routes(app_client: TestClient) -> set[tuple[str, str]]:
    """Every (method, path) of the app's schema that refuses a request without a key."""
    found = set()
    for path, operations in app_client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method in operations:
            if "{" not in path and app_client.request(method.upper(), path).status_code == 401:
                found.add((method.upper(), path))
    return found


def test_every_protected_route_is_a_known_reader_or_writer_route(app_client: TestClient) -> None:
    # Given the app's routes, each called without a key
    # Then the protected ones are exactly the routes the checks classify
    assert protected_routes(app_client) == set(READER_ROUTES) | set(WRITER_ROUTES)


def test_a_reader_key_uses_every_reader_route_and_no_writer_route(
    container: Container, app_client: TestClient, tmp_path: Path
) -> None:
    # Given a reader key of the default workspace
    _, reader = issuer(tmp_path).create_reader(DEFAULT_WORKSPACE)
    headers = {API_KEY_HEADER: reader}
    # Then each reader route serves it, and each writer route refuses it with 403
    for method, path in READER_ROUTES:
        reply = app_client.request(method, path, json=BODIES[path], headers=headers)
        assert reply.status_code == 200, (path, reply.text)
    client = api_client(container, BOOTSTRAP)
    for method, path in WRITER_ROUTES:
        assert client.request_as(method, path, api_key=reader, workspace=DEFAULT_WORKSPACE).status == 403
