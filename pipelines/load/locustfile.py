"""Load test of the API with locust: `make load` (headless, 50 users, 60 s) against `make dev`.

Target and key: RAG_API_URL / RAG_API_KEY if set, else the running local platform's
`<DATA_DIR or .data>/platform.json`. The platform's rate limit applies per key and every
simulated user shares one key, so start the platform with a limit above the offered load,
e.g. `RATE_LIMIT_PER_MINUTE=100000 make dev` (docs/api.md, "Rate limits"); otherwise the
429s count as failures here, as they should.

The mix is what the web page and API clients do: questions (plain and streamed), searches,
the documents list, and health checks. Every non-2xx response, and any stream that does not
end with a `done` event, is a failure.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from locust import FastHttpUser, between, task

from pipelines.platform_file import platform_file

QUESTIONS = (
    "How do I deploy to staging?",
    "How are API keys rotated?",
    "What does the rate limit return?",
    "How do I stream an answer?",
    "How is the conversation history used?",
    "Which headers does the API need?",
    "How do I start the local platform?",
    "What happens when a document fails to ingest?",
    "How big can a request body be?",
    "What is the request id for?",
)


def _target() -> tuple[str | None, str | None]:
    url, key = os.environ.get("RAG_API_URL"), os.environ.get("RAG_API_KEY")
    platform = platform_file(Path(os.environ.get("DATA_DIR", ".data")))
    if (not url or not key) and platform.exists():
        info = json.loads(platform.read_text())
        url, key = url or str(info["api_url"]), key or str(info["api_key"])
    return url, key


class ApiUser(FastHttpUser):
    # --host on the command line wins over this.
    host = _target()[0]
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        key = _target()[1]
        if not key:
            raise RuntimeError("no API key: set RAG_API_KEY or start the platform with `make dev`")
        self.headers = {"x-api-key": key, "content-type": "application/json"}

    @task(4)
    def query(self) -> None:
        self.client.post("/v1/query", json={"question": random.choice(QUESTIONS)}, headers=self.headers)

    @task(2)
    def query_stream(self) -> None:
        body = {
            "question": "and in production?",
            "history": [
                {"role": "user", "content": random.choice(QUESTIONS)},
                {"role": "assistant", "content": "See the deployment guide [1]."},
            ],
        }
        with self.client.post(
            "/v1/query/stream", json=body, headers=self.headers, name="/v1/query/stream", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif "event: done" not in (response.text or ""):
                response.failure("the stream did not end with a done event")
            else:
                response.success()

    @task(3)
    def search(self) -> None:
        self.client.post(
            "/v1/search", json={"query": random.choice(QUESTIONS), "top_k": 10}, headers=self.headers
        )

    @task(1)
    def documents(self) -> None:
        self.client.get("/v1/documents", headers=self.headers)

    @task(1)
    def health(self) -> None:
        self.client.get("/health")
