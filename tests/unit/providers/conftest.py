"""Shared pieces for the provider tests: retrieved passages and offline Bedrock clients."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from service.models import SearchHit


def hit(number: int, title: str, text: str) -> SearchHit:
    return SearchHit(
        chunk_id=f"chunk-{number}",
        document_id=f"doc-{number}",
        title=title,
        source=f"s3://docs/{number}.md",
        text=text,
        snippet=text[:40],
        score=1.0 / number,
    )


@pytest.fixture
def passages() -> list[SearchHit]:
    return [
        hit(1, "Deploying", "Run `make deploy STACK=staging` to deploy the staging stack."),
        hit(2, "Reindexing", "After changing the embedder, run `ragctl reindex` to rebuild the index."),
    ]


@pytest.fixture
def bedrock_client() -> Any:
    # Dummy credentials: requests are signed but never sent (Stubber or a before-send hook answers).
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
