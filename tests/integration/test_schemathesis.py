"""Property-based robustness: schemathesis generates requests from /openapi.json and checks
that the API never answers 5xx and that every response matches its declared schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.contract import SearchMode
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder, make_document

API_KEY = "schema-key"


def _app(root: Path) -> object:
    # A generous rate limit: this test is about schemas, and hundreds of calls share one key.
    settings = Settings(data_dir=root / "data", api_keys=API_KEY, rate_limit_per_minute=1_000_000)
    embedder = HashingEmbedder()
    backend = LocalSearchBackend(root / "index", embedder.dimension)
    backend.ensure_index()
    indexer = Indexer(backend, embedder, Chunker(200, 20))
    for number, text in enumerate(
        ("Deploy to staging with make deploy STACK=staging.", "Rotate the API keys in Secrets Manager.")
    ):
        indexer.index(make_document(f"doc-{number}", text, tags=("ops",)))
    container = Container(
        settings, backend=backend, embedder=embedder, ledger=SqliteLedger(root / "ledger.db")
    )
    return create_app(container)


def _schema() -> schemathesis.BaseSchema:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="schemathesis-"))
    return schemathesis.openapi.from_asgi("/openapi.json", _app(root))


schema = _schema()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.timeout(120)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    # Given any request the schema allows (and some it does not), with a valid key
    # When it is sent to the app
    # Then no 5xx comes back, and status, content type and body match the schema.
    case.call_and_validate(
        headers={"x-api-key": API_KEY},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


@pytest.mark.parametrize(
    ("path", "field"), [("/v1/search", "query"), ("/v1/query", "question"), ("/v1/query/stream", "question")]
)
def test_the_schema_hands_schemathesis_the_questions_that_once_made_a_500(path: str, field: str) -> None:
    # Given the OpenAPI document schemathesis generates from
    spec = schema.raw_schema
    ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    properties = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    # Then the question field offers stop words alone and punctuation alone as examples, which
    # schemathesis sends in its examples phase, and the mode field lists every mode
    assert {"to be or not to be?", "is it", "?!…"} <= set(properties[field]["examples"])
    modes = spec["components"]["schemas"]["SearchMode"]["enum"]
    assert {"$ref": "#/components/schemas/SearchMode"} in properties["mode"]["anyOf"]
    assert sorted(modes) == sorted(mode.value for mode in SearchMode)
