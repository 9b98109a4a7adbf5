"""End to end: the local platform in a subprocess; a document in through the bucket, an answer out."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from pipelines.dev import local_client
from pipelines.platform_file import PlatformInfo
from service.contract import API_KEY_HEADER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def ask(info: PlatformInfo, question: str) -> dict[str, object]:
    response = httpx.post(
        f"{info.api_url}/v1/query",
        json={"question": question},
        headers={API_KEY_HEADER: info.api_key},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_document_uploaded_to_the_bucket_answers_a_question_only_it_can(
    local_platform: PlatformInfo,
) -> None:
    # Given a document with a fact that exists nowhere else
    token = uuid.uuid4().hex[:10]
    key = f"e2e/orchard-{token}.md"
    text = (
        f"# Orchard {token}\n\nThe orchard keeper {token} waters the quince trees every Thursday at dawn, "
        "using rainwater collected in copper barrels."
    )
    # When it is uploaded to the platform's bucket (the path a cloud upload takes)
    local_client(local_platform, "s3").put_object(
        Bucket=local_platform.document_bucket, Key=key, Body=text.encode()
    )
    # Then, once the worker has indexed it, a question about it is answered with a citation of it
    deadline = time.monotonic() + 120
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        body = ask(local_platform, f"When does the orchard keeper {token} water the quince trees?")
        citations = body["citations"]
        assert isinstance(citations, list)
        if any(c["document_id"] == key for c in citations):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the document was never cited: {body}")
    assert "Thursday" in str(body["answer"])
    assert body["mode"] == "extractive"


def test_the_sample_corpus_was_ingested_on_first_start(local_platform: PlatformInfo) -> None:
    # Given the platform started on an empty data directory (it indexes its bundled documentation
    # behind "ready", so this waits for it)
    wanted = {"README.md", "docs/local-platform.md"}
    indexed: set[str] = set()
    deadline = time.monotonic() + 300
    while not wanted <= indexed and time.monotonic() < deadline:
        response = httpx.get(
            f"{local_platform.api_url}/v1/documents",
            headers={API_KEY_HEADER: local_platform.api_key},
            timeout=10,
        )
        indexed = {d["document_id"] for d in response.json() if d["status"] == "indexed"}
        time.sleep(1)
    # Then the project's own documentation is indexed
    assert wanted <= indexed


def test_protected_routes_need_the_key_and_health_does_not(local_platform: PlatformInfo) -> None:
    assert httpx.get(f"{local_platform.api_url}/health", timeout=10).status_code == 200
    response = httpx.post(f"{local_platform.api_url}/v1/query", json={"question": "hello"}, timeout=10)
    assert response.status_code == 401
