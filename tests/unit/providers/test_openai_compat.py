"""OpenAICompatibleGenerator against local fakes: the exact request, SSE parsing, and error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest

from service.generate.openai_compat import OpenAICompatibleGenerator, sse_data
from service.generate.prompts import CONDENSE_SYSTEM_PROMPT, SYSTEM_PROMPT, answer_prompt, condense_prompt
from service.generate.protocol import AnswerGenerator, GenerationError
from service.models import SearchHit, Turn
from tests.factories import http_server

BASE_URL = "https://llm.example.test/v1"


def chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


class Recorder:
    """An httpx.MockTransport handler that records requests and answers with a fixed response."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)


def generator(
    recorder: Recorder, api_key: str | None = "sk-test", **kwargs: Any
) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(
        base_url=BASE_URL + "/",
        api_key=api_key,
        model="gpt-4o-mini",
        transport=httpx.MockTransport(recorder),
        **kwargs,
    )


STREAM = sse(
    {
        **chunk(None),
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    },
    chunk("Run `ragctl reindex`"),
    chunk(" after switching [2]."),
    chunk(None, finish="stop"),
    {
        **chunk(None),
        "choices": [],
        "usage": {"prompt_tokens": 90, "completion_tokens": 9, "total_tokens": 99},
    },
    "[DONE]",
)


def test_stream_posts_the_exact_chat_request_and_yields_content_deltas(passages: list[SearchHit]) -> None:
    # Given an endpoint that streams a role chunk, two content chunks, a finish chunk, a usage chunk, [DONE]
    recorder = Recorder(
        lambda _: httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
    )
    subject = generator(recorder, max_tokens=400, temperature=0.2)

    # When an answer is streamed
    pieces = list(subject.stream("How do I switch embedders?", passages))

    # Then only the content pieces come back, in order
    assert pieces == ["Run `ragctl reindex`", " after switching [2]."]
    # And one POST went to {base_url}/chat/completions with the bearer key and the exact JSON body
    (request,) = recorder.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": answer_prompt("How do I switch embedders?", passages)},
        ],
        "stream": True,
        "max_tokens": 400,
        "temperature": 0.2,
    }
    assert isinstance(subject, AnswerGenerator)
    assert subject.name == "openai"


def test_no_key_means_no_authorization_header(passages: list[SearchHit]) -> None:
    # Given a keyless local server (Ollama, vLLM)
    recorder = Recorder(lambda _: httpx.Response(200, content=sse("[DONE]")))

    # When an answer is streamed
    assert list(generator(recorder, api_key=None).stream("q", passages)) == []

    # Then no Authorization header was sent
    assert "authorization" not in recorder.requests[0].headers


@pytest.mark.parametrize(
    ("status", "transient"), [(429, True), (500, True), (503, True), (400, False), (401, False), (404, False)]
)
def test_http_errors_map_to_transient_or_permanent(
    passages: list[SearchHit], status: int, transient: bool
) -> None:
    # Given an endpoint that answers with an error status
    recorder = Recorder(lambda _: httpx.Response(status, json={"error": {"message": "nope"}}))

    # When an answer is streamed
    with pytest.raises(GenerationError) as caught:
        list(generator(recorder).stream("q", passages))

    # Then 429 and 5xx are transient, other 4xx permanent, and the message carries the status and body
    assert caught.value.transient is transient
    assert str(status) in str(caught.value)
    assert "nope" in str(caught.value)


def test_a_timeout_is_transient(passages: list[SearchHit]) -> None:
    # Given an endpoint that never answers in time
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    # When an answer is streamed
    with pytest.raises(GenerationError) as caught:
        list(generator(Recorder(time_out)).stream("q", passages))

    # Then the caller may retry
    assert caught.value.transient is True


def test_an_error_event_mid_stream_stops_the_answer(passages: list[SearchHit]) -> None:
    # Given a stream that fails after one piece, the way vLLM and OpenRouter report it
    body = sse(chunk("Partial"), {"error": {"message": "overloaded", "code": 503}})
    recorder = Recorder(lambda _: httpx.Response(200, content=body))

    # When the answer is consumed
    pieces: list[str] = []
    with pytest.raises(GenerationError) as caught:
        pieces.extend(generator(recorder).stream("q", passages))

    # Then the piece before the error arrived and the error says what happened
    assert pieces == ["Partial"]
    assert "overloaded" in str(caught.value)


def test_sse_parsing_follows_the_spec() -> None:
    # Given lines with a keep-alive comment, an event name, multi-line data and no space after the colon
    lines = [": keep-alive", "", "event: message", 'data: {"a":', "data: 1}", "", "data:[DONE]", ""]

    # When the events are parsed
    # Then comments and other fields are ignored and data lines of one event are joined
    assert list(sse_data(lines)) == ['{"a":\n1}', "[DONE]"]


def test_condense_posts_a_non_streaming_request_and_returns_the_rewrite() -> None:
    # Given a conversation and an endpoint that returns a chat completion
    history = [
        Turn(role="user", content="How do I deploy staging?"),
        Turn(role="assistant", content="make deploy [1]"),
    ]
    completion = {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "How do I deploy prod?"},
                "finish_reason": "stop",
            }
        ],
    }
    recorder = Recorder(lambda _: httpx.Response(200, json=completion))

    # When the follow-up is condensed
    question = generator(recorder).condense("and prod?", history)

    # Then one non-streaming request carried the condense prompt, at temperature 0
    assert question == "How do I deploy prod?"
    (request,) = recorder.requests
    assert str(request.url) == f"{BASE_URL}/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": CONDENSE_SYSTEM_PROMPT},
            {"role": "user", "content": condense_prompt("and prod?", history)},
        ],
        "stream": False,
        "max_tokens": 200,
        "temperature": 0.0,
    }


def test_condense_without_history_makes_no_request() -> None:
    # Given an endpoint that records requests
    recorder = Recorder(lambda _: httpx.Response(500))

    # When a first question is condensed
    # Then it comes back unchanged and nothing was sent
    assert generator(recorder).condense("What is RRF?", []) == "What is RRF?"
    assert recorder.requests == []


def test_condense_with_a_malformed_completion_is_permanent() -> None:
    # Given an endpoint that answers 200 with something that is not a chat completion
    recorder = Recorder(lambda _: httpx.Response(200, json={"unexpected": True}))

    # When a follow-up is condensed
    with pytest.raises(GenerationError) as caught:
        generator(recorder).condense("and prod?", [Turn(role="user", content="deploy staging")])

    # Then the error is permanent
    assert caught.value.transient is False


class _StreamingHandler(BaseHTTPRequestHandler):
    """A real HTTP server that writes each SSE event separately, in chunked encoding."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Split one event across two writes to prove lines are reassembled.
        for part in [
            b'data: {"choices":[{"delta":{"content":"Hel',
            b'lo"}}]}\n\n',
            sse(chunk(" world [1]")),
            b": ping\n\n",
            sse("[DONE]"),
        ]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    _StreamingHandler.received = []
    with http_server(_StreamingHandler) as url:
        yield url


def test_streaming_over_a_real_socket(local_server: str, passages: list[SearchHit]) -> None:
    # Given a local server on 127.0.0.1 that streams chunked SSE
    subject = OpenAICompatibleGenerator(base_url=local_server, api_key="k", model="local-model")

    # When an answer is streamed
    try:
        text = "".join(subject.stream("greet me", passages))
    finally:
        subject.close()

    # Then the pieces are reassembled across chunk boundaries and the request hit /v1/chat/completions
    assert text == "Hello world [1]"
    ((path, headers, body),) = _StreamingHandler.received
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k"
    assert json.loads(body)["stream"] is True
