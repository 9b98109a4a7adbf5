"""The optional rerank stage: Bedrock's Rerank request as AWS's model defines it, and the reorder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import boto3
import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber

from service.contract import SearchMode
from service.ingest.indexer import Indexer
from service.query.rerank import BedrockReranker, RerankError, RerankingRetriever
from service.search.retriever import Retriever
from tests.factories import DEFAULT_READER, make_document

MODEL_ARN = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"


def _client() -> BaseClient:
    client: BaseClient = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    return client


def test_bedrock_rerank_sends_a_request_botocore_accepts_and_reads_the_order() -> None:
    # Given a Bedrock agent runtime client stubbed with botocore's model-validating Stubber
    client = _client()
    stubber = Stubber(client)
    expected = {
        "queries": [{"type": "TEXT", "textQuery": {"text": "rotate keys"}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
            for t in ("about buckets", "rotate the api keys")
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": 2,
                "modelConfiguration": {"modelArn": MODEL_ARN},
            },
        },
    }
    stubber.add_response(
        "rerank",
        {"results": [{"index": 1, "relevanceScore": 0.9}, {"index": 0, "relevanceScore": 0.1}]},
        expected,
    )
    # When two passages are reranked
    with stubber:
        order = BedrockReranker(client, MODEL_ARN).rerank(
            "rotate keys", ["about buckets", "rotate the api keys"], 5
        )
    # Then the request matched AWS's shape and the order is Bedrock's
    assert order == [(1, 0.9), (0, 0.1)]


def test_a_throttled_rerank_is_a_transient_error() -> None:
    client = _client()
    stubber = Stubber(client)
    stubber.add_client_error("rerank", service_error_code="ThrottlingException", http_status_code=429)
    with stubber, pytest.raises(RerankError, match="ThrottlingException") as caught:
        BedrockReranker(client, MODEL_ARN).rerank("q", ["p"], 1)
    assert caught.value.transient


class ReverseReranker:
    """Puts the retriever's last candidate first: a reorder nobody could mistake for the original."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def rerank(self, query: str, passages: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        self.seen.append(len(passages))
        return [(i, float(i)) for i in reversed(range(len(passages)))][:top_n]


def test_the_reranking_retriever_reorders_a_deeper_candidate_list(
    tmp_path: Path, backend: object, embedder: object, indexer: Indexer
) -> None:
    # Given five documents, and a retriever wrapped with a reranker reading 4 candidates
    for number in range(5):
        indexer.index(make_document(f"doc-{number}", f"deploy staging step {number} of the runbook"))
    inner = Retriever(backend, embedder)  # type: ignore[arg-type]
    reranker = ReverseReranker()
    retriever = RerankingRetriever(inner, reranker, depth=4)
    baseline = inner.search("deploy staging", 4, SearchMode.BM25, scope=DEFAULT_READER).hits
    # When it searches for the top 2
    hits = retriever.search("deploy staging", 2, SearchMode.BM25, scope=DEFAULT_READER).hits
    # Then the reranker saw 4 candidates and its order wins
    assert reranker.seen == [4]
    assert [h.chunk_id for h in hits] == [baseline[3].chunk_id, baseline[2].chunk_id]
    assert [h.score for h in hits] == [3.0, 2.0]


def test_reranking_is_off_by_default_and_on_with_a_rerank_model(tmp_path: Path) -> None:
    # Given the default settings / Then the retriever does not rerank
    from service.settings import Settings
    from service.wiring import Container

    assert type(Container(Settings(data_dir=tmp_path)).retriever) is Retriever
    # Given a rerank model / Then the retriever reranks through Bedrock
    configured = Settings(data_dir=tmp_path, rerank_model_arn=MODEL_ARN, aws_region="us-west-2")
    assert isinstance(Container(configured).retriever, RerankingRetriever)
