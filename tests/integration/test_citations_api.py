"""Through the API: a generator's invented citation is removed and the answer says so, and the
streamed tokens carry the same citation numbers as the final answer."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.contract import GeneratorName
from service.ingest.indexer import Indexer
from service.models import SearchHit, Turn
from service.settings import Settings
from service.wiring import Container
from tests.factories import http_server, make_document

KEY = {"x-api-key": "test-key"}


class InventingGenerator:
    """Cites the second passage, in pieces, then a seventh that was never retrieved."""

    name = "inventing"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        return question

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        yield from ["Staging deploys with make ", "[", "2]. Prod needs approval [7]."]


def _client(settings: Settings, container: Container, indexer: Indexer) -> TestClient:
    indexer.index(make_document("deploy", "Deploy to staging with make deploy."))
    indexer.index(make_document("prod", "Deploy to prod after an approval."))
    container.__dict__["generator"] = InventingGenerator()
    return TestClient(create_app(container))


def test_an_invented_citation_is_removed_and_the_answer_says_so(
    settings: Settings, container: Container, indexer: Indexer
) -> None:
    # Given a generator that cites a passage retrieval never returned
    client = _client(settings, container, indexer)
    # When a question is answered
    body = client.post("/v1/query", json={"question": "how do I deploy", "top_k": 2}, headers=KEY).json()
    # Then the marker is gone, the answer says it was removed, and only real passages are cited
    assert "[7]" not in body["answer"].split("(Removed")[0]
    assert body["answer"].endswith("(Removed citation [7]: no retrieved passage has that number.)")
    assert [c["number"] for c in body["citations"]] == [1]
    assert "Staging deploys with make [1]." in body["answer"]


def test_streamed_tokens_carry_the_final_numbers(
    settings: Settings, container: Container, indexer: Indexer
) -> None:
    # Given the same generator, streaming
    client = _client(settings, container, indexer)
    # When the answer is streamed
    response = client.post("/v1/query/stream", json={"question": "how do I deploy", "top_k": 2}, headers=KEY)
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
        for block in response.text.strip().split("\n\n")
        if block.startswith("event:")
    ]
    tokens = "".join(data for name, data in events if name == "token")
    done = next(data for name, data in events if name == "done")
    # Then the tokens read exactly as the final answer, removal note included
    assert tokens.strip() == done["answer"]
    assert "[2]" not in tokens
    assert done["answer"].endswith("no retrieved passage has that number.)")


class _InventingChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that streams an answer citing [2] and a made-up [7]."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["Staging deploys with make ", "[", "2]. Prod needs approval [", "7]."]:
            delta = {"choices": [{"delta": {"content": piece}}]}
            self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[str]:
    with http_server(_InventingChatServer) as url:
        yield url


def test_an_openai_compatible_servers_invented_citation_is_removed_and_said(
    settings: Settings, container: Container, indexer: Indexer, chat_server: str
) -> None:
    # Given the platform configured for an OpenAI-compatible endpoint whose model invents [7]
    configured = settings.model_copy(
        update={"generator": GeneratorName.OPENAI, "openai_base_url": chat_server}
    )
    indexer.index(make_document("deploy", "Deploy to staging with make deploy."))
    indexer.index(make_document("prod", "Deploy to prod after an approval."))
    real = Container(
        configured, backend=container.backend, embedder=container.embedder, ledger=container.ledger
    )
    client = TestClient(create_app(real))
    question = {"question": "how do I deploy", "top_k": 2}
    # When a question is answered, whole and streamed
    body = client.post("/v1/query", json=question, headers=KEY).json()
    streamed = client.post("/v1/query/stream", json=question, headers=KEY).text
    # Then the made-up marker is gone, the answer says so, and only the real passage is cited
    note = "(Removed citation [7]: no retrieved passage has that number.)"
    assert body["mode"] == "openai"
    assert body["answer"] == f"Staging deploys with make [1]. Prod needs approval.\n\n{note}"
    assert [c["number"] for c in body["citations"]] == [1]
    done = json.loads(streamed.strip().split("event: done\ndata: ")[1].split("\n")[0])
    assert done["answer"] == body["answer"]
