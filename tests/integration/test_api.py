"""The HTTP API on a container of fakes: auth, validation, errors, request ids and logs,
rate limits, CORS, body limits, streaming and conversation history."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.access import AccessScope
from service.api.app import create_app
from service.api.logs import build_logger
from service.embed.protocol import EmbeddingError
from service.ingest.indexer import Indexer
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status
from service.models import QueryRequest, SearchFilters, SearchHit, Turn
from service.search.local import LocalSearchBackend
from service.search.retriever import Retrieval, Retriever
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder, make_document

KEY = {"x-api-key": "test-key"}
QUESTION = {"question": "How do I deploy to staging?"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingGenerator:
    """Condenses to a known standalone question and records what it was asked."""

    name = "recording"

    def __init__(self, fail_after_first: bool = False) -> None:
        self.condensed: list[tuple[str, list[Turn]]] = []
        self.asked: list[str] = []
        self.fail_after_first = fail_after_first

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        self.condensed.append((question, list(history)))
        return "how to deploy to staging with make"

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        self.asked.append(question)
        yield "Run make deploy "
        if self.fail_after_first:
            raise RuntimeError("model connection reset: secret-token-123")
        yield "with STACK=staging [1]."


class SpyRetriever(Retriever):
    def __init__(self, inner: Retriever) -> None:
        super().__init__(inner.backend, inner.embedder)
        self.queries: list[str] = []

    def search(
        self,
        query: str,
        k: int = 10,
        mode: Any = None,
        filters: SearchFilters | None = None,
        *,
        scope: AccessScope,
    ) -> Retrieval:
        self.queries.append(query)
        return super().search(query, k, mode, filters, scope=scope)


class FailingRetriever(Retriever):
    def search(self, *args: Any, **kwargs: Any) -> Retrieval:
        raise RuntimeError("database password is hunter2")


class ThrottledRetriever(Retriever):
    def search(self, *args: Any, **kwargs: Any) -> Retrieval:
        raise EmbeddingError("ThrottlingException from model arn:secret", transient=True)


@pytest.fixture
def indexed(indexer: Indexer) -> Indexer:
    indexer.index(
        make_document(
            "guide/deploy.md",
            "To deploy to staging, run make deploy with STACK=staging. The pipeline runs smoke tests then.",
            title="Deploying",
        )
    )
    indexer.index(make_document("guide/keys.md", "API keys live in Secrets Manager and rotate monthly."))
    return indexer


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def make_client(  # noqa: PLR0917 - pytest passes fixtures by name
    tmp_path: Path,
    backend: LocalSearchBackend,
    embedder: HashingEmbedder,
    ledger: SqliteLedger,
    indexed: Indexer,
    log_stream: io.StringIO,
) -> Callable[..., TestClient]:
    counter = iter(range(1000))

    def build(
        clock: Callable[[], float] | None = None,
        api_keys: tuple[str, ...] | None = None,
        parts: dict[str, Any] | None = None,
        **setting_overrides: Any,
    ) -> TestClient:
        # `parts` replace the container's adapters; keyword arguments override settings.
        settings = Settings(data_dir=tmp_path / "data", api_keys="test-key", **setting_overrides)
        container = Container(
            settings, **{"backend": backend, "embedder": embedder, "ledger": ledger, **(parts or {})}
        )
        # A logger of its own per app, writing to a buffer the test can read.
        logger: Logger = build_logger(service=f"api-test-{next(counter)}-{id(log_stream)}", stream=log_stream)
        app: FastAPI = create_app(container, api_keys, clock=clock or Clock(), logger=logger)
        return TestClient(app, raise_server_exceptions=False)

    return build


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
def test_protected_routes_refuse_a_missing_or_wrong_key(client: TestClient, headers: dict[str, str]) -> None:
    # Given no key, a wrong key or an empty key
    # When any protected route is called
    responses = [
        client.post("/v1/query", json=QUESTION, headers=headers),
        client.post("/v1/query/stream", json=QUESTION, headers=headers),
        client.post("/v1/search", json={"query": "deploy"}, headers=headers),
        client.get("/v1/documents", headers=headers),
    ]
    # Then each is a 401 that names the header
    for response in responses:
        assert response.status_code == 401
        assert response.json()["detail"] == "missing or invalid API key in the x-api-key header"


@pytest.mark.parametrize("path", ["/health", "/ready", "/docs", "/openapi.json", "/"])
def test_public_routes_need_no_key(client: TestClient, path: str) -> None:
    # Given no key / When a public route is fetched / Then it answers
    assert client.get(path).status_code == 200


def test_openapi_declares_the_key_scheme_and_error_statuses(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An API key.",
    }
    responses = schema["paths"]["/v1/query"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "429", "500"} <= set(responses)
    assert "Retry-After" in responses["429"]["headers"]
    assert list(schema["paths"]["/v1/query/stream"]["post"]["responses"]["200"]["content"]) == [
        "text/event-stream"
    ]


# -- validation -----------------------------------------------------------------------------------


def test_validation_errors_name_each_field(client: TestClient) -> None:
    # Given a body with no question and a top_k out of range
    response = client.post("/v1/query", json={"top_k": 0, "extra": 1}, headers=KEY)
    # Then the 422 names each offending field, without echoing the input
    assert response.status_code == 422
    by_field = {e["field"]: e for e in response.json()["detail"]}
    assert by_field["question"]["msg"] == "Field required"
    assert by_field["top_k"]["loc"] == ["body", "top_k"]
    assert "greater than or equal to 1" in by_field["top_k"]["msg"]
    assert by_field["extra"]["type"] == "extra_forbidden"
    assert all("input" not in error for error in response.json()["detail"])


def test_an_over_long_question_is_rejected_with_a_clear_message(
    make_client: Callable[..., TestClient],
) -> None:
    # Given a limit of 50 characters
    client = make_client(max_question_chars=50)
    # When a 51-character question is asked, by both routes
    for path in ("/v1/query", "/v1/query/stream"):
        response = client.post(path, json={"question": "x" * 51}, headers=KEY)
        # Then it is a 422 that says which field and what the limit is
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == "question"
        assert (
            response.json()["detail"][0]["msg"] == "question is too long: at most 50 characters are allowed"
        )
    assert client.post("/v1/query", json={"question": "x" * 50}, headers=KEY).status_code == 200


# -- errors, request ids and logs -----------------------------------------------------------------


def test_an_unexpected_error_is_a_500_with_a_request_id_and_no_trace(
    make_client: Callable[..., TestClient],
    backend: LocalSearchBackend,
    embedder: HashingEmbedder,
    log_stream: io.StringIO,
) -> None:
    # Given a retriever that fails with a secret in its message
    client = make_client(parts={"retriever": FailingRetriever(backend, embedder)})
    # When a question is asked, plainly and streamed
    for path in ("/v1/query", "/v1/query/stream", "/v1/search"):
        body = {"query": "deploy"} if path == "/v1/search" else QUESTION
        response = client.post(path, json=body, headers=KEY)
        # Then the client gets a generic 500 with the request id, and nothing of the failure
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error", "request_id": response.headers["x-request-id"]}
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
    # And the log has the trace, tagged with the request id
    errors = [line for line in log_lines(log_stream) if line["level"] == "ERROR"]
    assert len(errors) == 3
    assert all("hunter2" in line["exception"] and line["request_id"] for line in errors)


def test_a_throttled_dependency_is_a_503_with_retry_after(
    make_client: Callable[..., TestClient], backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    # Given an embedding model that is throttling
    client = make_client(parts={"retriever": ThrottledRetriever(backend, embedder)})
    # When a question is asked
    response = client.post("/v1/query", json=QUESTION, headers=KEY)
    # Then the client is told to retry later, without the provider's message
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "arn:secret" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_failure_mid_stream_ends_with_an_error_event(
    make_client: Callable[..., TestClient], log_stream: io.StringIO
) -> None:
    # Given a generator that fails after its first piece
    client = make_client(parts={"generator": RecordingGenerator(fail_after_first=True)})
    # When the answer is streamed
    response = client.post("/v1/query/stream", json=QUESTION, headers=KEY)
    # Then the stream (already 200) ends with an error event carrying the request id only
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["token", "error"]
    assert events[1][1] == {"detail": "internal error", "request_id": response.headers["x-request-id"]}
    assert "secret-token-123" not in response.text
    assert any("secret-token-123" in line.get("exception", "") for line in log_lines(log_stream))


def test_the_request_id_is_echoed_or_made_and_is_on_every_log_line(
    client: TestClient, log_stream: io.StringIO
) -> None:
    # Given one request with a request id, one without, and one with an unsafe one
    given = client.get("/health", headers={"x-request-id": "trace-abc.123"})
    made = client.post("/v1/query", json=QUESTION, headers=KEY)
    unsafe = client.get("/health", headers={"x-request-id": "bad\nid"})
    # Then the id is echoed, or a new one is made
    assert given.headers["x-request-id"] == "trace-abc.123"
    assert len(made.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] not in ("bad\nid", "")
    # And each request wrote a JSON access line with its id, status and duration
    lines = log_lines(log_stream)
    assert [(line["request_id"], line["status"]) for line in lines] == [
        ("trace-abc.123", 200),
        (made.headers["x-request-id"], 200),
        (unsafe.headers["x-request-id"], 200),
    ]
    assert {line["message"] for line in lines} == {"request"}
    assert all(line["duration_ms"] >= 0 and line["service"].startswith("api-test") for line in lines)


def test_errors_carry_the_request_id_in_body_and_header(client: TestClient) -> None:
    response = client.post("/v1/query", json={}, headers={**KEY, "x-request-id": "r-1"})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "r-1" == response.json()["request_id"]


# -- limits: rate, body size, CORS ----------------------------------------------------------------


def test_each_key_is_rate_limited_with_retry_after(make_client: Callable[..., TestClient]) -> None:
    # Given a limit of 2 requests a minute and a clock the test drives
    clock = Clock()
    client = make_client(clock=clock, api_keys=("key-a", "key-b"), rate_limit_per_minute=2)
    a, b = {"x-api-key": "key-a"}, {"x-api-key": "key-b"}
    # When key A makes three requests at once
    statuses = [client.get("/v1/documents", headers=a).status_code for _ in range(3)]
    # Then the third is a 429 telling it to come back in 30 s (one token per 30 s)
    assert statuses == [200, 200, 429]
    limited = client.get("/v1/documents", headers=a)
    assert limited.headers["retry-after"] == "30"
    assert "rate limit of 2 requests a minute" in limited.json()["detail"]
    # And key B is unaffected
    assert client.get("/v1/documents", headers=b).status_code == 200
    # And after 30 s key A may make one more request, not two
    clock.now += 30
    assert [client.get("/v1/documents", headers=a).status_code for _ in range(2)] == [200, 429]


def test_bad_keys_are_refused_before_the_rate_limit(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit_per_minute=1)
    assert [client.get("/v1/documents", headers={"x-api-key": "nope"}).status_code for _ in range(3)] == [
        401
    ] * 3
    assert client.get("/v1/documents", headers=KEY).status_code == 200


def test_a_body_over_the_limit_is_a_413(make_client: Callable[..., TestClient]) -> None:
    # Given a 1 KiB body limit
    client = make_client(max_body_bytes=1024)
    big = json.dumps({"question": "x" * 2000}).encode()
    # When a larger body is sent with a Content-Length, and again chunked without one
    declared = client.post("/v1/query", content=big, headers={**KEY, "content-type": "application/json"})
    chunked = client.post(
        "/v1/query",
        content=iter([big[:1000], big[1000:]]),
        headers={**KEY, "content-type": "application/json"},
    )
    # Then both are 413s with a JSON body
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["detail"] == "request body is larger than the 1024-byte limit"
        assert response.json()["request_id"] == response.headers["x-request-id"]


def test_cors_allows_only_the_configured_origins(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins="https://app.example.com")
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key,content-type",
    }
    # Given a preflight from the configured origin / Then it is allowed, with the key header
    allowed = client.options("/v1/query", headers={"origin": "https://app.example.com", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    # Given another origin / Then the browser gets no permission
    refused = client.options("/v1/query", headers={"origin": "https://evil.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # And actual responses expose the request id and Retry-After to scripts
    actual = client.post("/v1/query", json=QUESTION, headers={**KEY, "origin": "https://app.example.com"})
    assert actual.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()


# -- answers: plain, streamed, with history -------------------------------------------------------


def test_query_answers_with_citations(client: TestClient) -> None:
    body = client.post("/v1/query", json=QUESTION, headers=KEY).json()
    assert "make deploy" in body["answer"]
    assert "[1]" in body["answer"]
    assert body["citations"][0]["document_id"] == "guide/deploy.md"
    assert "<mark>" in body["citations"][0]["snippet"]


def test_stream_sends_tokens_then_citations_then_done(make_client: Callable[..., TestClient]) -> None:
    # Given a generator that answers in two pieces
    client = make_client(parts={"generator": RecordingGenerator()})
    # When the answer is streamed
    response = client.post("/v1/query/stream", json=QUESTION, headers=KEY)
    # Then it is an event stream: the tokens, then the citations, then done
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["token", "token", "citations", "done"]
    tokens = "".join(data for name, data in events if name == "token")
    assert tokens == events[-1][1]["answer"] == "Run make deploy with STACK=staging [1]."
    assert events[2][1][0]["number"] == 1
    assert events[2][1][0]["document_id"] == "guide/deploy.md"
    assert events[-1][1]["mode"] == "recording"


def test_history_is_condensed_into_the_search_question(
    make_client: Callable[..., TestClient], backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    # Given a conversation so far and a follow-up that means nothing on its own
    generator = RecordingGenerator()
    retriever = SpyRetriever(Retriever(backend, embedder))
    client = make_client(parts={"generator": generator, "retriever": retriever})
    history = [
        {"role": "user", "content": "How do I deploy?"},
        {"role": "assistant", "content": "Run make deploy [1]."},
    ]
    # When the follow-up is asked, plainly and streamed
    for path in ("/v1/query", "/v1/query/stream"):
        assert (
            client.post(
                path, json={"question": "and to staging?", "history": history}, headers=KEY
            ).status_code
            == 200
        )
    # Then the generator condensed it with the history, retrieval used the condensed question,
    # and the answer was generated for the question as asked
    assert [(q, [t.content for t in h]) for q, h in generator.condensed] == [
        ("and to staging?", ["How do I deploy?", "Run make deploy [1]."])
    ] * 2
    assert retriever.queries == ["how to deploy to staging with make"] * 2
    assert generator.asked == ["and to staging?"] * 2


def test_without_history_nothing_is_condensed(
    make_client: Callable[..., TestClient], backend: LocalSearchBackend, embedder: HashingEmbedder
) -> None:
    generator = RecordingGenerator()
    retriever = SpyRetriever(Retriever(backend, embedder))
    make_client(parts={"generator": generator, "retriever": retriever}).post(
        "/v1/query", json=QUESTION, headers=KEY
    )
    assert generator.condensed == []
    assert retriever.queries == [QUESTION["question"]]


def test_history_is_validated(client: TestClient) -> None:
    response = client.post(
        "/v1/query", json={**QUESTION, "history": [{"role": "system", "content": "x"}]}, headers=KEY
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "history.0.role"


# -- search and documents -------------------------------------------------------------------------


def test_search_returns_ranked_hits(client: TestClient) -> None:
    body = client.post("/v1/search", json={"query": "secrets manager keys", "top_k": 1}, headers=KEY).json()
    assert [hit["document_id"] for hit in body["hits"]] == ["guide/keys.md"]
    assert body["mode"] == "hybrid"


def test_documents_show_their_ingestion_status(client: TestClient, ledger: SqliteLedger) -> None:
    # Given one indexed and one failed document in the ledger
    at = datetime(2026, 1, 2, tzinfo=UTC)
    ledger.put(
        LedgerRecord(
            document_id="a.md", status=Status.INDEXED, chunk_ids=("c1", "c2"), created_at=at, updated_at=at
        )
    )
    ledger.put(
        LedgerRecord(
            document_id="b.pdf", status=Status.FAILED, last_error="not a PDF", created_at=at, updated_at=at
        )
    )
    # When the documents are listed, all and only the failed
    everything = client.get("/v1/documents", headers=KEY).json()
    failed = client.get("/v1/documents", params={"state": "failed"}, headers=KEY).json()
    # Then each shows its status, chunk count and error
    assert {d["document_id"]: (d["status"], d["chunks"]) for d in everything} == {
        "a.md": ("indexed", 2),
        "b.pdf": ("failed", 0),
    }
    assert [(d["document_id"], d["last_error"]) for d in failed] == [("b.pdf", "not a PDF")]


def test_query_request_model_still_accepts_the_documented_fields() -> None:
    # The page and docs/api.md send exactly these fields.
    QueryRequest.model_validate({"question": "q", "top_k": 3, "history": [{"role": "user", "content": "c"}]})
