"""BedrockEmbedder: the exact Titan v2 request, bounded parallel batches, and budgeted retries."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from service.embed.bedrock import BedrockEmbedder
from service.embed.protocol import Embedder, EmbeddingError
from tests.factories import FakeTime

MODEL = "amazon.titan-embed-text-v2:0"


class JsonBody:
    """Matches a request body by its parsed JSON, so key order does not matter but every key does."""

    def __init__(self, expected: dict[str, Any]) -> None:
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str | bytes) and json.loads(other) == self.expected

    __hash__ = None  # type: ignore[assignment]  # compared, never hashed

    def __repr__(self) -> str:
        return f"JsonBody({self.expected!r})"


def titan_response(vector: list[float]) -> dict[str, Any]:
    data = json.dumps({"embedding": vector, "inputTextTokenCount": 3}).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def expected_request(text: str, dimension: int = 256) -> dict[str, Any]:
    return {
        "modelId": MODEL,
        "body": JsonBody({"inputText": text, "dimensions": dimension, "normalize": True}),
        "contentType": "application/json",
        "accept": "application/json",
    }


def embedder(client: Any, fake: FakeTime, **kwargs: Any) -> BedrockEmbedder:
    options: dict[str, Any] = {
        "model_id": MODEL,
        "dimension": 256,
        "budget_seconds": 10.0,
        "base_delay": 0.5,
        "max_delay": 4.0,
        "sleep": fake.sleep,
        "clock": fake.clock,
        "jitter": lambda: 1.0,  # the top of the full-jitter range, so delays are predictable
    }
    options.update(kwargs)
    return BedrockEmbedder(client, **options)


def test_embed_query_sends_the_titan_v2_body_and_returns_the_vector(bedrock_client: Any) -> None:
    # Given a stubbed Bedrock that expects exactly one Titan v2 InvokeModel call
    fake = FakeTime()
    vector = [0.0625] * 256
    with Stubber(bedrock_client) as stub:
        stub.add_response("invoke_model", titan_response(vector), expected_request("what is hybrid search?"))
        subject = embedder(bedrock_client, fake)

        # When a query is embedded
        result = subject.embed_query("what is hybrid search?")

        # Then the request had the model id, body and content types, and the vector comes back as floats
        stub.assert_no_pending_responses()
    assert result == vector
    assert isinstance(subject, Embedder)
    assert (subject.model_id, subject.dimension) == (MODEL, 256)
    assert fake.sleeps == []


def test_throttling_and_a_loading_model_are_retried_with_exponential_backoff(bedrock_client: Any) -> None:
    # Given Bedrock throttles once, reports the model still loading once, then answers
    fake = FakeTime()
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)
        stub.add_client_error("invoke_model", "ModelNotReadyException", "Model is loading", 429)
        stub.add_response("invoke_model", titan_response([0.5] * 256), expected_request("chunk"))

        # When a document is embedded
        result = embedder(bedrock_client, fake).embed_documents(["chunk"])

        # Then it slept base*2^0 then base*2^1 (jitter pinned at 1.0) and returned the third answer
        stub.assert_no_pending_responses()
    assert result == [[0.5] * 256]
    assert fake.sleeps == [0.5, 1.0]


def test_backoff_is_capped_and_jittered(bedrock_client: Any) -> None:
    # Given jitter that draws a quarter of the range and a service that throttles five times
    fake = FakeTime()
    with Stubber(bedrock_client) as stub:
        for _ in range(5):
            stub.add_client_error("invoke_model", "ServiceUnavailableException", "busy", 503)
        stub.add_response("invoke_model", titan_response([0.5] * 256), expected_request("chunk"))

        # When a query is embedded with a generous budget
        embedder(bedrock_client, fake, jitter=lambda: 0.25, budget_seconds=60.0).embed_query("chunk")

    # Then each delay is a quarter of min(max_delay, base * 2^attempt)
    assert fake.sleeps == [0.125, 0.25, 0.5, 1.0, 1.0]


def test_a_budget_exhausted_by_throttling_raises_a_transient_error(bedrock_client: Any) -> None:
    # Given Bedrock throttles every call and the budget is 3 s (delays 0.5, 1, 2 would reach 3.5 s)
    fake = FakeTime()
    with Stubber(bedrock_client) as stub:
        for _ in range(10):
            stub.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)

        # When a document is embedded
        with pytest.raises(EmbeddingError) as caught:
            embedder(bedrock_client, fake, budget_seconds=3.0).embed_documents(["chunk"])

    # Then it gave up without sleeping past the budget, transiently, so the queue redelivers
    assert caught.value.transient is True
    assert "ThrottlingException" in str(caught.value)
    assert fake.sleeps == [0.5, 1.0]
    assert fake.now <= 3.0


def test_a_validation_error_is_not_retried(bedrock_client: Any) -> None:
    # Given Bedrock rejects the request as invalid (one response queued; a retry would hit an empty stub)
    fake = FakeTime()
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("invoke_model", "ValidationException", "Malformed input request", 400)

        # When a document is embedded
        with pytest.raises(EmbeddingError) as caught:
            embedder(bedrock_client, fake).embed_documents(["chunk"])

        # Then the error is permanent and nothing was retried
        stub.assert_no_pending_responses()
    assert caught.value.transient is False
    assert "ValidationException" in str(caught.value)
    assert fake.sleeps == []


def test_access_denied_is_not_retried(bedrock_client: Any) -> None:
    # Given the role may not invoke the model
    fake = FakeTime()
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("invoke_model", "AccessDeniedException", "not authorized", 403)

        # When a query is embedded
        with pytest.raises(EmbeddingError) as caught:
            embedder(bedrock_client, fake).embed_query("q")

    # Then the error is permanent
    assert caught.value.transient is False
    assert fake.sleeps == []


class FakeTitan:
    """A thread-safe stand-in for the client: vector[0] encodes the text, and it tracks calls in flight."""

    def __init__(self, fail: dict[str, list[Exception]] | None = None, delay: float = 0.0) -> None:
        self.fail = fail or {}
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.texts: list[str] = []

    def invoke_model(self, **request: Any) -> dict[str, Any]:
        body = json.loads(request["body"])
        text = body["inputText"]
        with self.lock:
            self.texts.append(text)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            errors = self.fail.get(text)
            error = errors.pop(0) if errors else None
        try:
            time.sleep(self.delay)
            if error is not None:
                raise error
            return titan_response([float(text.removeprefix("t"))] + [0.0] * (body["dimensions"] - 1))
        finally:
            with self.lock:
                self.in_flight -= 1


def test_a_batch_is_embedded_in_parallel_within_the_concurrency_bound_and_in_order() -> None:
    # Given twelve texts, a client that takes 20 ms per call, and a concurrency of 3
    client = FakeTitan(delay=0.02)
    texts = [f"t{i}" for i in range(12)]

    # When they are embedded
    vectors = embedder(client, FakeTime(), concurrency=3).embed_documents(texts)

    # Then every text was sent once, at most three at a time, and vectors come back in input order
    assert sorted(client.texts) == sorted(texts)
    assert 1 < client.max_in_flight <= 3
    assert [v[0] for v in vectors] == [float(i) for i in range(12)]
    assert all(len(v) == 256 for v in vectors)


def test_a_timeout_inside_a_batch_is_retried() -> None:
    # Given one text whose first call times out
    timeout = ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")
    client = FakeTitan(fail={"t2": [timeout]})
    fake = FakeTime()

    # When the batch is embedded
    vectors = embedder(client, fake, concurrency=4).embed_documents(["t0", "t1", "t2", "t3"])

    # Then the timed-out text was sent again and the batch is complete and ordered
    assert client.texts.count("t2") == 2
    assert [v[0] for v in vectors] == [0.0, 1.0, 2.0, 3.0]
    assert fake.sleeps == [0.5]


def test_a_permanent_failure_fails_the_whole_batch() -> None:
    # Given one text of a batch that Bedrock rejects
    from botocore.exceptions import ClientError

    invalid = ClientError({"Error": {"Code": "ValidationException", "Message": "too long"}}, "InvokeModel")
    client = FakeTitan(fail={"t1": [invalid]})

    # When the batch is embedded
    with pytest.raises(EmbeddingError) as caught:
        embedder(client, FakeTime(), concurrency=2).embed_documents(["t0", "t1", "t2"])

    # Then the batch fails permanently, naming the cause
    assert caught.value.transient is False
    assert "too long" in str(caught.value)


def test_an_empty_batch_makes_no_call() -> None:
    # Given a client that records calls
    client = FakeTitan()

    # When nothing is embedded
    # Then nothing is sent
    assert embedder(client, FakeTime()).embed_documents([]) == []
    assert client.texts == []


def test_a_vector_of_the_wrong_size_is_a_permanent_error(bedrock_client: Any) -> None:
    # Given Bedrock answers with 1024 values while 256 were asked for
    with Stubber(bedrock_client) as stub:
        stub.add_response("invoke_model", titan_response([0.1] * 1024), expected_request("q"))

        # When a query is embedded
        with pytest.raises(EmbeddingError) as caught:
            embedder(bedrock_client, FakeTime()).embed_query("q")

    # Then the mismatch is reported instead of indexing a vector of the wrong size
    assert caught.value.transient is False


@pytest.mark.parametrize("dimension", [256, 512, 1024])
def test_titan_v2_dimensions_are_accepted(dimension: int) -> None:
    assert BedrockEmbedder(object(), model_id=MODEL, dimension=dimension).dimension == dimension


@pytest.mark.parametrize(
    ("model_id", "dimension"),
    [(MODEL, 384), (MODEL, 1536), ("all-MiniLM-L6-v2", 1024), ("cohere.embed-english-v3", 1024)],
)
def test_an_unsupported_model_or_dimension_is_rejected_at_construction(model_id: str, dimension: int) -> None:
    # Given settings left at the local model's values, or a model with another request format
    # When the embedder is built
    # Then it fails at start-up, not at the first ingested document
    with pytest.raises(ValueError, match="Titan"):
        BedrockEmbedder(object(), model_id=model_id, dimension=dimension)
