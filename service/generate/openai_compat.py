"""Answers from any OpenAI-compatible chat endpoint: OpenAI, Azure-style proxies, vLLM, Ollama, LiteLLM.

`POST {OPENAI_BASE_URL}/chat/completions` with a bearer key if one is configured
(https://platform.openai.com/docs/api-reference/chat/create). The base URL is the
one the OpenAI SDKs take, so it includes the version: `https://api.openai.com/v1`,
`http://localhost:11434/v1` (Ollama), `http://localhost:8000/v1` (vLLM).

With `"stream": true` the response is server-sent events: each event is a
`data: {json}` line holding a `chat.completion.chunk` whose `choices[0].delta.content`
is the next piece of text, and the stream ends with `data: [DONE]`
(https://platform.openai.com/docs/api-reference/chat-streaming). Chunks without
content (the first role-only delta, the finish chunk, a usage chunk with no
choices) are skipped.

Nothing is retried here, for the reason given in `service.generate.bedrock`:
429, 5xx and timeouts become a transient `GenerationError`, which the caller may retry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx

from service.generate.prompts import (
    CONDENSE_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    answer_prompt,
    clean_condensed,
    condense_prompt,
)
from service.generate.protocol import GenerationError
from service.models import SearchHit, Turn

# Connect quickly or fail; once connected, allow a slow model up to 60 s between chunks.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_DONE = "[DONE]"


def _status_error(response: httpx.Response) -> GenerationError:
    detail = response.text[:300].strip()
    transient = response.status_code in _TRANSIENT_STATUS or response.status_code >= 500
    return GenerationError(
        f"chat endpoint answered HTTP {response.status_code}: {detail}", transient=transient
    )


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each server-sent event, per https://html.spec.whatwg.org/multipage/server-sent-events.html.

    Multi-line data is joined with newlines; comments (`:` lines, used as keep-alives)
    and other fields (`event:`, `id:`) are ignored.
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _chunk_text(data: str) -> str:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as error:
        raise GenerationError(
            f"chat endpoint streamed invalid JSON: {data[:200]!r}", transient=False
        ) from error
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk:
        # Some servers (vLLM, OpenRouter) report failures inside an already-started stream, usually
        # overload; the answer is lost either way, and a retry of the whole request may succeed.
        raise GenerationError(f"chat endpoint failed mid-stream: {chunk['error']}", transient=True)
    choices = chunk.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    delta = first.get("delta") if isinstance(first, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


class OpenAICompatibleGenerator:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        condense_max_tokens: int = 200,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.condense_max_tokens = condense_max_tokens
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = client or httpx.Client(timeout=timeout, transport=transport)

    @property
    def name(self) -> str:
        return "openai"

    def close(self) -> None:
        self._client.close()

    def _body(
        self, system: str, user: str, *, stream: bool, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "stream": stream,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        body = self._body(
            SYSTEM_PROMPT,
            answer_prompt(question, passages),
            stream=True,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        headers = {**self._headers, "Accept": "text/event-stream"}
        try:
            with self._client.stream("POST", self.url, json=body, headers=headers) as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    raise _status_error(response)
                for data in sse_data(response.iter_lines()):
                    if data.strip() == _DONE:
                        return
                    text = _chunk_text(data)
                    if text:
                        yield text
        except httpx.TransportError as error:
            # Timeouts, refused or reset connections, and bodies cut off mid-stream.
            raise GenerationError(f"chat endpoint unreachable: {error!r}", transient=True) from error

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        if not history:
            return question
        user = condense_prompt(question, history)
        # Temperature 0: a rewrite should be deterministic.
        body = self._body(
            CONDENSE_SYSTEM_PROMPT, user, stream=False, max_tokens=self.condense_max_tokens, temperature=0.0
        )
        try:
            response = self._client.post(self.url, json=body, headers=self._headers)
        except httpx.TransportError as error:
            raise GenerationError(f"chat endpoint unreachable: {error!r}", transient=True) from error
        if response.status_code != httpx.codes.OK:
            raise _status_error(response)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise GenerationError(
                f"unexpected chat completion: {response.text[:200]!r}", transient=False
            ) from error
        return clean_condensed(content if isinstance(content, str) else "", question)
