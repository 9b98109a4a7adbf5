"""The deployed domain policy admits exactly the HTTP requests the service's client sends.

The API and the ingester run their real read and write paths (opensearch-py through
`service.search.opensearch`) against an OpenSearch-compatible server (osmem-server on
port 0); every request is recorded and checked against the stack's domain access policy
the way OpenSearch Service would check it: `es:ESHttp<Verb>` on `<domain ARN>/<path>`.
A new client call that the policy does not admit (a mapping read at API start, say)
fails here instead of as a 403 on the first deploy.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from infra.tools.offline import StackRun
from service.contract import PROJECT
from service.search.opensearch import OpenSearchBackend
from service.search.protocol import SearchBackendError
from service.search.provision import OpenSearchProvisionTarget, ProvisionPlan
from tests.contract.chunks import DIMENSION, embedded
from tests.factories import DEFAULT_READER

ALIAS = f"{PROJECT}-chunks"


class RecordingClient:
    """Wraps the transport so every (method, path) the client sends is kept."""

    def __init__(self, url: str) -> None:
        self.client = OpenSearch(hosts=[url])
        self.requests: list[tuple[str, str]] = []
        send = self.client.transport.perform_request

        def perform_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.requests.append((method.upper(), urlparse(url).path.lstrip("/")))
            return send(method, url, *args, **kwargs)

        self.client.transport.perform_request = perform_request  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def server() -> Iterator[OsmemServer]:
    started = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    # The index exists before any function runs, as the provisioner leaves it.
    plan = ProvisionPlan(ALIAS, DIMENSION, 0, ())
    target = OpenSearchProvisionTarget(OpenSearch(hosts=[started.url]))
    target.create_index(f"{ALIAS}-v1", plan.index_body())
    yield started
    started.close()


def allowed(run: StackRun, role: str) -> tuple[list[str], list[str]]:
    statements = json.loads(run.one("aws:opensearch/domain:Domain").inputs["accessPolicies"])["Statement"]
    arn = run.one("aws:iam/role:Role", f"{role}-role").state["arn"]
    (statement,) = [s for s in statements if s["Principal"]["AWS"] == arn]
    return statement["Action"], statement["Resource"]


def denied(run: StackRun, role: str, requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    actions, resources = allowed(run, role)
    domain = run.one("aws:opensearch/domain:Domain").state["arn"]
    return [
        (method, path)
        for method, path in requests
        if f"es:ESHttp{method.title()}" not in actions
        or not any(fnmatch.fnmatchcase(f"{domain}/{path}", r) for r in resources)
    ]


def test_every_request_of_the_api_read_path_is_admitted(server: OsmemServer, staging: StackRun) -> None:
    # Given the API's backend on the provisioned index (no ensure_index: the stack is provisioned)
    recorder = RecordingClient(server.url)
    backend = OpenSearchBackend(recorder.client, ALIAS, DIMENSION)
    # When it answers a readiness probe, a lexical and a vector search
    backend.ping()
    backend.count(DEFAULT_READER)
    backend.bm25("deploy staging", 5, scope=DEFAULT_READER)
    # osmem-server has no k-NN plugin: the request is sent (and recorded), then refused.
    with contextlib.suppress(SearchBackendError):
        backend.knn(embedded("q", "deploy staging").vector, 5, scope=DEFAULT_READER)
    # Then every request it sent is admitted for the API role, and it sent some
    assert recorder.requests
    assert denied(staging, "api", recorder.requests) == []


def test_every_request_of_the_ingest_path_is_admitted(server: OsmemServer, staging: StackRun) -> None:
    # Given the ingester's backend on the provisioned index
    recorder = RecordingClient(server.url)
    backend = OpenSearchBackend(recorder.client, ALIAS, DIMENSION)
    # When it writes a document's chunks, lists them and deletes a stale one
    backend.upsert(
        [embedded("c1", "Deploy to staging", document_id="d"), embedded("c2", "Then prod", document_id="d")]
    )
    assert backend.chunk_ids_for_document("d") == {"c1", "c2"}
    backend.delete_chunks(["c2"])
    # And rewrites the readers of a document whose permissions alone changed
    assert backend.update_permissions("d", ["ann"], []) == 1
    # Then every request is admitted for the ingester role
    assert denied(staging, "ingester", recorder.requests) == []


def test_creating_an_index_is_refused_to_the_api(server: OsmemServer, staging: StackRun) -> None:
    # Given the old API start, which created the index if its alias was missing
    recorder = RecordingClient(server.url)
    OpenSearchBackend(recorder.client, ALIAS, DIMENSION).ensure_index()
    # Then its mapping read is refused to the API role: the API must not call it
    assert ("GET", f"{ALIAS}/_mapping") in denied(staging, "api", recorder.requests)
