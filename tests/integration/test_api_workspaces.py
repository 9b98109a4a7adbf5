"""The API's request side of workspaces (issue 15): a request names its workspace, the route
authorizes the caller for it, and a refusal is 403 `forbidden` with nothing else to probe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.keys_cli import create_key
from service.access import ALL_WORKSPACES, Role
from service.api.auth import Authenticator
from service.contract import API_KEY_HEADER
from service.ingest.indexer import Indexer
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status
from service.settings import Settings
from tests.factories import make_document
from tests.integration.test_api import KEY, indexed, log_stream, make_client

__all__ = ["indexed", "log_stream", "make_client"]  # fixtures shared with the API tests

Client = Callable[..., TestClient]


@pytest.fixture
def acme(indexed: Indexer) -> Indexer:
    # A document of workspace acme beside the default workspace's guides
    document = make_document(
        "workspaces/acme/deploy.md", "Acme deploys to staging with the rocket pipeline every Friday."
    ).model_copy(update={"workspace": "acme"})
    indexed.index(document)
    return indexed


def scoped_key(tmp_path: Path, role: Role, *workspaces: str) -> dict[str, str]:
    """A real scoped key (service/api/keys.py) in the data directory `make_client`'s API reads."""
    settings = Settings(data_dir=tmp_path / "data")
    _, key = create_key(settings, name="test", role=role, workspaces=list(workspaces), expires_in=None)
    return {API_KEY_HEADER: key}


def test_a_configured_key_is_an_admin_of_every_workspace() -> None:
    principal = Authenticator(("s3cret-key",)).authenticate("s3cret-key", None)
    assert principal is not None
    assert principal.role is Role.ADMIN
    assert principal.workspaces == frozenset({ALL_WORKSPACES})
    assert "s3cret" not in principal.subject  # a hash prefix names it, never the key


def test_search_and_query_read_only_the_workspace_asked_for(make_client: Client, acme: Indexer) -> None:
    client = make_client()
    # When the default workspace is searched (no workspace field: today's requests)
    default = client.post("/v1/search", json={"query": "deploy staging", "mode": "bm25"}, headers=KEY).json()
    # Then only its documents come back; asking for acme gives only acme's
    assert {h["document_id"] for h in default["hits"]} <= {"guide/deploy.md", "guide/keys.md"}
    assert default["hits"]
    body = {"query": "deploy staging", "mode": "bm25", "workspace": "acme"}
    hits = client.post("/v1/search", json=body, headers=KEY).json()["hits"]
    assert [h["document_id"] for h in hits] == ["workspaces/acme/deploy.md"]
    # And an answer about acme cites acme only
    answer = client.post(
        "/v1/query", json={"question": "How does Acme deploy?", "workspace": "acme"}, headers=KEY
    ).json()
    assert {c["document_id"] for c in answer["citations"]} == {"workspaces/acme/deploy.md"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/search", {"query": "deploy", "workspace": "globex"}),
        ("post", "/v1/query", {"question": "deploy?", "workspace": "globex"}),
        ("post", "/v1/query/stream", {"question": "deploy?", "workspace": "globex"}),
        ("get", "/v1/documents?workspace=globex", None),
    ],
)
def test_a_workspace_the_key_lacks_is_403_forbidden_without_detail(
    make_client: Client, tmp_path: Path, method: str, path: str, body: object
) -> None:
    # Given a key that may read and write acme only
    headers = scoped_key(tmp_path, Role.WRITER, "acme")
    response = getattr(make_client(), method)(path, headers=headers, **({"json": body} if body else {}))
    # Then another workspace is refused with the same body whether or not it exists
    assert response.status_code == 403
    assert response.json()["detail"] == "forbidden"


def test_a_reader_may_search_its_workspace_but_not_list_its_documents(
    make_client: Client, tmp_path: Path, acme: Indexer
) -> None:
    headers = scoped_key(tmp_path, Role.READER, "acme")
    client = make_client()
    ok = client.post("/v1/search", json={"query": "rocket", "workspace": "acme"}, headers=headers)
    assert ok.status_code == 200
    assert [h["document_id"] for h in ok.json()["hits"]] == ["workspaces/acme/deploy.md"]
    # The default workspace is not granted to it, and the ingestion view needs a writer
    assert client.post("/v1/search", json={"query": "rocket"}, headers=headers).status_code == 403
    assert client.get("/v1/documents?workspace=acme", headers=headers).status_code == 403


def test_documents_are_listed_per_workspace(make_client: Client, ledger: SqliteLedger) -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    for document_id, workspace in (("a.md", "default"), ("workspaces/acme/b.md", "acme")):
        ledger.put(
            LedgerRecord(
                document_id=document_id,
                status=Status.INDEXED,
                workspace=workspace,
                created_at=stamp,
                updated_at=stamp,
            )
        )
    client = make_client()
    listed = client.get("/v1/documents?workspace=acme", headers=KEY).json()
    assert [d["document_id"] for d in listed] == ["workspaces/acme/b.md"]
    assert [d["document_id"] for d in client.get("/v1/documents", headers=KEY).json()] == ["a.md"]


@pytest.mark.parametrize("workspace", ["Bad_Id", "", "-x", "a" * 64])
def test_a_malformed_workspace_is_422_naming_the_field(make_client: Client, workspace: str) -> None:
    client = make_client()
    response = client.post("/v1/search", json={"query": "deploy", "workspace": workspace}, headers=KEY)
    assert response.status_code == 422
    assert "workspace" in str(response.json()["detail"])
    listed = client.get("/v1/documents", params={"workspace": workspace}, headers=KEY)
    assert listed.status_code == 422
    assert "workspace" in str(listed.json()["detail"])
