"""Embeddings from any OpenAI-compatible endpoint: OpenAI, Azure-style gateways, vLLM, Ollama, LiteLLM.

`POST {OPENAI_BASE_URL}/embeddings` with `{"model", "input": [texts], "encoding_format": "float"}`
and a bearer key when one is configured; the response's `data` holds one
`{"index", "embedding"}` per input (https://platform.openai.com/docs/api-reference/embeddings/create).
A batch is one request. The vectors are checked against EMBEDDING_DIMENSION (an index
holds one vector size) and scaled to unit length, as every embedder's are.

Retries follow `service.embed.bedrock`: HTTP 408/409/425/429/5xx and network errors are
retried with full-jitter backoff inside RETRY_BUDGET_SECONDS, then reported as transient so
the queue redelivers the message; any other status is a permanent error.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from service.embed.protocol import EmbeddingError

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class _Transient(Exception):
    pass


class OpenAICompatibleEmbedder:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        budget_seconds: float = 20.0,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if budget_seconds <= 0:
            raise ValueError("budget_seconds must be > 0")
        self.url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dimension = dimension
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = client or httpx.Client(timeout=timeout, transport=transport)
        self._budget = budget_seconds
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        self._client.close()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if any(not t.strip() for t in texts):
            raise EmbeddingError("cannot embed empty text", transient=False)
        deadline = self._clock() + self._budget
        attempt = 0
        while True:
            try:
                return self._request(list(texts))
            except _Transient as error:
                delay = self._jitter() * min(self._max_delay, self._base_delay * 2.0 ** min(attempt, 30))
                if deadline - self._clock() <= delay:
                    raise EmbeddingError(
                        f"embedding endpoint still failing after {attempt + 1} attempts within "
                        f"{self._budget:g}s: {error}",
                        transient=True,
                    ) from error
                self._sleep(delay)
                attempt += 1

    def _request(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self._model, "input": texts, "encoding_format": "float"}
        try:
            response = self._client.post(self.url, json=body, headers=self._headers)
        except httpx.TransportError as error:
            raise _Transient(f"unreachable: {error!r}") from error
        status = response.status_code
        if status in _TRANSIENT_STATUS or status >= 500:
            raise _Transient(f"HTTP {status}: {response.text[:200].strip()}")
        if status != httpx.codes.OK:
            raise EmbeddingError(
                f"embedding endpoint answered HTTP {status}: {response.text[:300].strip()}", transient=False
            )
        return self._vectors(response, len(texts))

    def _vectors(self, response: httpx.Response, count: int) -> list[list[float]]:
        try:
            data: Any = response.json()["data"]
            ordered = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (ValueError, KeyError, TypeError) as error:
            raise EmbeddingError(
                f"unexpected embeddings response: {response.text[:200]!r}", transient=False
            ) from error
        if len(vectors) != count:
            raise EmbeddingError(f"asked for {count} embeddings, got {len(vectors)}", transient=False)
        wrong = {len(v) for v in vectors} - {self._dimension}
        if wrong:
            raise EmbeddingError(
                f"{self._model} returned {sorted(wrong)[0]}-dimension vectors but EMBEDDING_DIMENSION is "
                f"{self._dimension}",
                transient=False,
            )
        return [_unit(v) for v in vectors]


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:
        raise EmbeddingError("the endpoint returned a zero vector", transient=False)
    return [x / norm for x in vector]
