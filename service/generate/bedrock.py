"""Answers from any Bedrock chat model through the Converse API, the model id from GENERATOR_MODEL_ID.

Converse gives one request shape for every Bedrock text model (Anthropic, Llama,
Mistral, Nova, ...), so switching model is a configuration change:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
Request: `modelId`, `system: [{"text"}]`, `messages: [{"role", "content": [{"text"}]}]`,
`inferenceConfig: {"maxTokens", "temperature"}`. `stream` uses ConverseStream, whose
event stream carries the text in `contentBlockDelta.delta.text`:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html

Nothing is retried here: an answer that failed half-way through a stream cannot be
resumed; a transient `GenerationError` tells the caller (the API) that the client
may retry the whole request, e.g. by answering 503. The botocore client's own
retries still cover a throttled first request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from service.generate.prompts import (
    CONDENSE_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    answer_prompt,
    clean_condensed,
    condense_prompt,
)
from service.generate.protocol import GenerationError
from service.models import SearchHit, Turn

# Converse error codes worth retrying later, as listed on the API page above. Errors
# raised inside a ConverseStream event stream use the lower-camel member names
# (`throttlingException`), so codes are compared case-insensitively.
_TRANSIENT_CODES = frozenset(
    code.lower()
    for code in (
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelStreamErrorException",
    )
)
_BOTO_ERRORS = (ClientError, HTTPClientError, BotoConnectionError)


def _generation_error(error: Exception) -> GenerationError:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        transient = code.lower() in _TRANSIENT_CODES or status == 429 or status >= 500
        return GenerationError(
            f"Bedrock {code or 'error'}: {err.get('Message', '')}".rstrip(": "), transient=transient
        )
    # Timeouts and dropped connections (botocore HTTPClientError / ConnectionError).
    return GenerationError(f"Bedrock unreachable: {error}", transient=True)


class BedrockGenerator:
    def __init__(
        self,
        client: Any,
        *,
        model_id: str,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        condense_max_tokens: int = 200,
    ) -> None:
        self._client = client
        self.model_id = model_id
        # Temperature 0: grounded answers should be reproducible, not creative.
        self.inference_config: dict[str, Any] = {"maxTokens": max_tokens, "temperature": temperature}
        self.condense_config: dict[str, Any] = {"maxTokens": condense_max_tokens, "temperature": 0.0}

    @property
    def name(self) -> str:
        return "bedrock"

    def _request(self, system: str, user: str, inference: dict[str, Any]) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "inferenceConfig": dict(inference),
        }

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        request = self._request(SYSTEM_PROMPT, answer_prompt(question, passages), self.inference_config)
        try:
            response = self._client.converse_stream(**request)
            for event in response["stream"]:
                text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if text:
                    yield text
        except _BOTO_ERRORS as error:
            # Also covers exceptions delivered inside the event stream (botocore EventStreamError).
            raise _generation_error(error) from error

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        if not history:
            return question
        request = self._request(
            CONDENSE_SYSTEM_PROMPT, condense_prompt(question, history), self.condense_config
        )
        try:
            response = self._client.converse(**request)
        except _BOTO_ERRORS as error:
            raise _generation_error(error) from error
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in blocks if isinstance(block, dict))
        return clean_condensed(text, question)
