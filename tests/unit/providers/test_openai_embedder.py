"""OpenAICompatibleEmbedder against httpx's MockTransport: the request, the vectors, and retries."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import httpx
import pytest

from service.embed.openai_compat import OpenAICompatibleEmbedder
from service.embed.protocol import Embedder, EmbeddingError

BASE_URL = "https://llm.example.test/v1"


class Endpoint:
    """Answers each request with the next response of `script`, recording the requests."""

    def __init__(self, *script: Callable[[httpx.Request], httpx.Response]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.script[min(len(self.requests), len(self.script)) - 1](request)


def vectors(*rows: list[float], order: list[int] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    indexes = order or list(range(len(rows)))
    data = [{"object": "embedding", "index": i, "embedding": rows[i]} for i in indexes]
    return lambda request: httpx.Response(200, json={"object": "list", "data": data, "model": "m"})


def status(code: int) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, text=f"error {code}")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def embedder(
    endpoint: Endpoint, dimension: int = 2, clock: Clock | None = None, **kwargs: object
) -> OpenAICompatibleEmbedder:
    clock = clock or Clock()
    return OpenAICompatibleEmbedder(
        base_url=BASE_URL + "/",
        model="text-embedding-3-small",
        dimension=dimension,
        api_key="sk-test",
        transport=httpx.MockTransport(endpoint),
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 1.0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_one_request_per_batch_with_the_key_and_unit_vectors_in_input_order() -> None:
    # Given an endpoint that answers out of order with unnormalised vectors
    endpoint = Endpoint(vectors([3.0, 4.0], [0.0, 2.0], order=[1, 0]))
    # When a batch of two passages is embedded
    result = embedder(endpoint).embed_documents(["first", "second"])
    # Then one POST /embeddings carried both texts, the model and the bearer key
    (request,) = endpoint.requests
    assert str(request.url) == f"{BASE_URL}/embeddings"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
        "encoding_format": "float",
    }
    # And the vectors come back in input order, at unit length
    assert result == [[0.6, 0.8], [0.0, 1.0]]
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in result)
    assert isinstance(embedder(endpoint), Embedder)


def test_a_vector_of_another_size_is_a_permanent_error_naming_the_variable() -> None:
    endpoint = Endpoint(vectors([1.0, 0.0, 0.0]))
    with pytest.raises(EmbeddingError) as caught:
        embedder(endpoint, dimension=2).embed_query("q")
    assert not caught.value.transient
    assert "returned 3-dimension vectors but EMBEDDING_DIMENSION is 2" in str(caught.value)


def test_throttling_is_retried_with_backoff_then_succeeds() -> None:
    # Given a 429, a 503, then an answer
    endpoint = Endpoint(status(429), status(503), vectors([1.0, 0.0]))
    clock = Clock()
    # When a query is embedded
    assert embedder(endpoint, clock=clock).embed_query("q") == [1.0, 0.0]
    # Then it took three requests and two growing waits
    assert len(endpoint.requests) == 3
    assert clock.slept == [0.25, 0.5]


def test_throttling_past_the_budget_is_transient() -> None:
    endpoint = Endpoint(status(429))
    with pytest.raises(EmbeddingError) as caught:
        embedder(endpoint, budget_seconds=1.0).embed_documents(["a"])
    assert caught.value.transient
    assert "HTTP 429" in str(caught.value)


def test_a_rejected_key_is_permanent_and_not_retried() -> None:
    endpoint = Endpoint(status(401))
    with pytest.raises(EmbeddingError) as caught:
        embedder(endpoint).embed_documents(["a"])
    assert not caught.value.transient
    assert "HTTP 401" in str(caught.value)
    assert len(endpoint.requests) == 1


def test_an_unreachable_endpoint_is_retried_then_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(EmbeddingError) as caught:
        embedder(Endpoint(refuse), budget_seconds=1.0).embed_query("q")
    assert caught.value.transient


@pytest.mark.parametrize(
    "body", [{"data": [{"index": 0}]}, {"nothing": []}, {"data": [{"index": 0, "embedding": [0.0, 0.0]}]}]
)
def test_a_malformed_answer_is_permanent(body: dict[str, object]) -> None:
    endpoint = Endpoint(lambda request: httpx.Response(200, json=body))
    with pytest.raises(EmbeddingError) as caught:
        embedder(endpoint).embed_query("q")
    assert not caught.value.transient


def test_empty_text_is_refused_before_any_request() -> None:
    endpoint = Endpoint(vectors([1.0, 0.0]))
    with pytest.raises(EmbeddingError):
        embedder(endpoint).embed_documents(["a", "  "])
    assert endpoint.requests == []
