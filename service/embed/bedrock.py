"""Amazon Titan Text Embeddings v2 on Amazon Bedrock, via `bedrock-runtime` InvokeModel.

Request and response shapes:
https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
The body is `{"inputText": str, "dimensions": 256|512|1024, "normalize": bool}` and the
response body carries `{"embedding": [float, ...], "inputTextTokenCount": int}`. Titan v2
takes one text per call (at most 8,192 tokens / 50,000 characters), so a batch is
embedded by a bounded thread pool, one InvokeModel call per text, results kept in order.

Retries. botocore retries some errors itself (the client's `retries` config), but
it counts attempts, not seconds, and none of its modes treat Bedrock's
`ModelNotReadyException` (a model being loaded) as retryable. Ingestion needs the
opposite contract: keep trying throttled calls for up to RETRY_BUDGET_SECONDS, then
fail with a *transient* error so the queue redelivers the message later. So the
loop below retries, with exponential backoff and full jitter
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), every
error that may succeed later, and never a validation or permission error. It is
twenty lines, with the clock, sleep and randomness injected for tests; a retry
library (tenacity, stamina) would add a runtime dependency to the Lambda artifact
for the same twenty lines. Any attempts botocore makes inside one call simply count
against the same budget; the client may be built with
`Config(retries={"mode": "adaptive"})` to add client-side rate limiting on top.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from service.embed.protocol import EmbeddingError

DEFAULT_MODEL_ID = "amazon.titan-embed-text-v2:0"
# Titan v2 output sizes; anything else is a ValidationException from the service.
DIMENSIONS = frozenset({256, 512, 1024})
# Error codes worth retrying, from the InvokeModel error list:
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html#API_runtime_InvokeModel_Errors
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "TooManyRequestsException",
    }
)
_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_SERVER_ERROR = 500


def is_transient(error: Exception) -> bool:
    """True for throttling, a model still loading, 429/5xx, and network timeouts or resets."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in TRANSIENT_CODES or status == _HTTP_TOO_MANY_REQUESTS or status >= _HTTP_SERVER_ERROR
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors; ConnectTimeoutError and
    # EndpointConnectionError are ConnectionErrors.
    return isinstance(error, HTTPClientError | BotoConnectionError)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


class BedrockEmbedder:
    """Titan Text Embeddings v2, unit-length vectors, `concurrency` calls in flight at most."""

    def __init__(
        self,
        client: Any,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        dimension: int = 1024,
        concurrency: int = 4,
        budget_seconds: float = 20.0,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if dimension not in DIMENSIONS:
            raise ValueError(
                f"Titan Text Embeddings v2 supports dimensions 256, 512 or 1024, not {dimension}; "
                "set EMBEDDING_DIMENSION accordingly (and EMBEDDING_MODEL_ID=amazon.titan-embed-text-v2:0)"
            )
        if "titan-embed-text-v2" not in model_id and not model_id.startswith("arn:"):
            # The request body below is Titan v2's; another model would reject it at the first call.
            raise ValueError(f"BedrockEmbedder speaks the Titan Text Embeddings v2 format, not {model_id!r}")
        if concurrency < 1 or budget_seconds <= 0:
            raise ValueError("concurrency must be >= 1 and budget_seconds > 0")
        self._client = client
        self._model_id = model_id
        self._dimension = dimension
        self._concurrency = concurrency
        self._budget = budget_seconds
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._jitter_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_query(self, text: str) -> list[float]:
        return self._embed_with_retry(text, self._clock() + self._budget)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        # One budget for the whole batch: a batch that cannot finish in time fails as a whole,
        # transiently, instead of taking len(texts) budgets.
        deadline = self._clock() + self._budget
        if self._concurrency == 1 or len(texts) == 1:
            return [self._embed_with_retry(text, deadline) for text in texts]
        # boto3 low-level clients are thread-safe, so the pool shares one. botocore keeps 10 pooled
        # connections by default (`max_pool_connections`); a concurrency above 10 needs a bigger pool.
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(texts))) as pool:
            futures = [pool.submit(self._embed_with_retry, text, deadline) for text in texts]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future.done() and future.exception() is not None:
                    # Stop starting new calls; those already running finish on their own.
                    for pending in futures:
                        pending.cancel()
                    break
            # `result()` re-raises the first failure in input order.
            return [future.result() for future in futures]

    def _embed_with_retry(self, text: str, deadline: float) -> list[float]:
        if not text.strip():
            raise EmbeddingError("cannot embed empty text", transient=False)
        attempt = 0
        while True:
            try:
                return self._invoke(text)
            except (ClientError, HTTPClientError, BotoConnectionError) as error:
                if not is_transient(error):
                    raise EmbeddingError(
                        f"Bedrock rejected the embedding request: {_describe(error)}", transient=False
                    ) from error
                delay = self._backoff(attempt)
                remaining = deadline - self._clock()
                if remaining <= delay:
                    raise EmbeddingError(
                        f"Bedrock embedding still failing after {attempt + 1} attempts within "
                        f"{self._budget:g}s: {_describe(error)}",
                        transient=True,
                    ) from error
                self._sleep(delay)
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**attempt)]."""
        with self._jitter_lock:  # random.random is thread-safe; an injected jitter may not be
            fraction = self._jitter()
        # The exponent is capped so a long run of attempts cannot overflow the float.
        return fraction * min(self._max_delay, self._base_delay * 2.0 ** min(attempt, 30))

    def _invoke(self, text: str) -> list[float]:
        body = {"inputText": text, "dimensions": self._dimension, "normalize": True}
        response = self._client.invoke_model(
            modelId=self._model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(response["body"].read())
        vector = payload.get("embedding") if isinstance(payload, dict) else None
        if not isinstance(vector, list) or len(vector) != self._dimension:
            size = len(vector) if isinstance(vector, list) else "no"
            raise EmbeddingError(
                f"Bedrock returned {size} values for a {self._dimension}-dimension embedding",
                transient=False,
            )
        return [float(x) for x in vector]
