"""Any question text, in every search mode, on every endpoint: an answer, an empty result or a
422 naming the field; never a 5xx (issue 14: stop-word questions used to 500 in vector/hybrid)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.api.app import create_app
from service.contract import SearchMode
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder, make_document

KEY = "text-key"
MAX_CHARS = 300
ENDPOINTS = ("/v1/search", "/v1/query", "/v1/query/stream")
FIELD = {"/v1/search": "query", "/v1/query": "question", "/v1/query/stream": "question"}
# The texts that broke or could break a search engine's query parser.
AWKWARD = (
    "to be or not to be?",
    "is it",
    "the",
    "?!…;:()[]{}",
    "AND OR NOT",
    'title:"x" AND -text:y~2^3',
    "\x00",
    "x" * MAX_CHARS,
    "deploy " * (MAX_CHARS // 7),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root: Path = tmp_path_factory.mktemp("question-text")
    settings = Settings(
        data_dir=root / "data",
        api_keys=KEY,
        rate_limit_per_minute=1_000_000,
        max_question_chars=MAX_CHARS,
    )
    embedder = HashingEmbedder()
    backend = LocalSearchBackend(root / "index", embedder.dimension)
    backend.ensure_index()
    indexer = Indexer(backend, embedder, Chunker(200, 20))
    indexer.index(make_document("deploy", "Deploy to staging with make deploy STACK=staging. It is done."))
    indexer.index(make_document("keys", "Rotate the API keys in Secrets Manager, then redeploy."))
    container = Container(settings, backend=backend, embedder=embedder, ledger=SqliteLedger(root / "l.db"))
    with TestClient(create_app(container)) as test_client:
        yield test_client
    backend.close()


def _post(client: TestClient, path: str, text: str, mode: SearchMode) -> tuple[int, object]:
    payload = {FIELD[path]: text, "mode": mode.value}
    # json.dumps escapes lone surrogates, as a client in another language may send them.
    response = client.post(
        path, content=json.dumps(payload), headers={"x-api-key": KEY, "content-type": "application/json"}
    )
    body = response.json() if response.headers["content-type"].startswith("application/json") else None
    return response.status_code, body


def _assert_no_server_error(client: TestClient, text: str) -> None:
    for path in ENDPOINTS:
        for mode in SearchMode:
            status, body = _post(client, path, text, mode)
            assert status < 500, (path, mode, text, body)
            assert status in (200, 422), (path, mode, text, status, body)
            if status == 422:
                assert isinstance(body, dict)
                fields = {e["field"] for e in body["detail"]}
                assert fields == {FIELD[path]}, (path, body)


@pytest.mark.timeout(300)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=MAX_CHARS + 20))
@example(text="to be or not to be?")
@example(text="")
@example(text="   \n\t")
@example(text="\ud800 lone surrogate")
@example(text="🙂🚀 \u200b ﷺ")
@example(text="y" * (MAX_CHARS + 1))
def test_any_text_on_any_endpoint_and_mode_is_never_a_server_error(client: TestClient, text: str) -> None:
    # Given an index with two documents
    # When any unicode text is asked on every endpoint in every mode
    # Then the reply is 200, or 422 naming the question field, never 5xx
    _assert_no_server_error(client, text)


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_questions_answer_or_come_back_empty(client: TestClient, text: str) -> None:
    # Given stop-word-only, punctuation-only, query-syntax and maximum-length questions
    for mode in SearchMode:
        # When they are searched and asked in each mode
        status, body = _post(client, "/v1/search", text, mode)
        # Then search answers 200 with a (possibly empty) list of hits
        assert status == 200, (mode, text, body)
        assert isinstance(body, dict)
        assert isinstance(body["hits"], list)
        status, body = _post(client, "/v1/query", text, mode)
        assert status == 200, (mode, text, body)
        assert isinstance(body, dict)
        assert isinstance(body["answer"], str)
        assert body["answer"]


def test_stop_word_question_matches_nothing_lexically(client: TestClient) -> None:
    # Given a question made only of stop words
    # When it is searched with BM25
    status, body = _post(client, "/v1/search", "to be or not to be?", SearchMode.BM25)
    # Then nothing matches, rather than an error
    assert status == 200
    assert isinstance(body, dict)
    assert body["hits"] == []


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"date_to": 0}, "filters.date_to"),
        ({"date_from": 1700000000}, "filters.date_from"),
        ({"date_to": "0"}, "filters.date_to"),
        ({"date_from": "yesterday"}, "filters.date_from"),
        ({"date_to": True}, "filters.date_to"),
        ({"date_to": "2026-13-01"}, "filters.date_to"),
        ({"date_from": "2026-02-30"}, "filters.date_from"),
        ({"date_to": ""}, "filters.date_to"),
        ({"date_from": 1.5}, "filters.date_from"),
    ],
)
def test_date_filters_refuse_what_is_not_a_date(
    client: TestClient, filters: dict[str, object], field: str
) -> None:
    # Given a date filter that is a number, a number string, a word, a boolean, an impossible
    # date or empty
    for path in ENDPOINTS:
        # When it is sent
        response = client.post(
            path, json={FIELD[path]: "deploy", "filters": filters}, headers={"x-api-key": KEY}
        )
        # Then it is a 422 naming the filter field
        assert response.status_code == 422, (path, response.text)
        assert [e["field"] for e in response.json()["detail"]] == [field]


def test_iso_dates_still_filter(client: TestClient) -> None:
    # Given ISO-8601 dates
    response = client.post(
        "/v1/search",
        json={"query": "deploy", "filters": {"date_from": "2000-01-01", "date_to": "2999-12-31"}},
        headers={"x-api-key": KEY},
    )
    # Then they are accepted
    assert response.status_code == 200, response.text
