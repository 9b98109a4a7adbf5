"""An optional rerank stage: retrieve `depth` candidates, let a cross-encoder reorder them, keep k.

Off by default (no `RERANK_MODEL_ID`): locally there is no reranker model, and retrieval is
measured without one (docs/retrieval.md). In the cloud, Amazon Bedrock's Rerank API scores each
passage against the query (bedrock-agent-runtime `Rerank`:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_Rerank.html; at most
1,000 sources a call, each text counted against the model's token limit, so passages are cut).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from service.access import AccessScope
from service.contract import SearchMode
from service.models import SearchFilters, SearchHit
from service.search.retriever import Retrieval, Retriever

# Bedrock Rerank accepts up to 1,000 sources; 50 keeps one call small and fast.
DEFAULT_DEPTH = 50
# Rerank models read about 512 tokens of each passage; 2,000 characters is safely above that.
MAX_PASSAGE_CHARS = 2000


class RerankError(RuntimeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Reranker(Protocol):
    def rerank(self, query: str, passages: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        """(index into `passages`, relevance) for the best `top_n`, best first."""
        ...


class BedrockReranker:
    """Bedrock's Rerank API through a `bedrock-agent-runtime` client (a constructor seam)."""

    def __init__(self, client: Any, model_arn: str) -> None:
        self._client = client
        self._model_arn = model_arn

    def rerank(self, query: str, passages: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        if not passages:
            return []
        try:
            response = self._client.rerank(
                queries=[{"type": "TEXT", "textQuery": {"text": query}}],
                sources=[
                    {
                        "type": "INLINE",
                        "inlineDocumentSource": {
                            "type": "TEXT",
                            "textDocument": {"text": text[:MAX_PASSAGE_CHARS]},
                        },
                    }
                    for text in passages
                ],
                rerankingConfiguration={
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": min(top_n, len(passages)),
                        "modelConfiguration": {"modelArn": self._model_arn},
                    },
                },
            )
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            raise RerankError(
                f"Bedrock rerank failed: {code or type(error).__name__}",
                transient=code in ("ThrottlingException", "ServiceUnavailableException"),
            ) from error
        return [(int(r["index"]), float(r["relevanceScore"])) for r in response["results"]]


class RerankingRetriever(Retriever):
    """A `Retriever` whose results a `Reranker` reorders; any mode, any backend."""

    def __init__(self, inner: Retriever, reranker: Reranker, depth: int = DEFAULT_DEPTH) -> None:
        super().__init__(
            inner.backend,
            inner.embedder,
            default_mode=inner.default_mode,
            alpha=inner.alpha,
            candidates=inner.candidates,
            method=inner.method,
        )
        self._inner = inner
        self._reranker = reranker
        self._depth = depth

    def search(
        self,
        query: str,
        k: int = 10,
        mode: SearchMode | None = None,
        filters: SearchFilters | None = None,
        *,
        scope: AccessScope,
    ) -> Retrieval:
        retrieval = self._inner.search(query, max(k, self._depth), mode, filters, scope=scope)
        ranked = rerank_hits(self._reranker, query, retrieval.hits, k)
        return Retrieval(hits=ranked, mode=retrieval.mode, timings_ms=retrieval.timings_ms)


def rerank_hits(reranker: Reranker, query: str, hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
    order = reranker.rerank(query, [f"{h.title}\n{h.text}" for h in hits], k)
    return [hits[index].model_copy(update={"score": round(score, 6)}) for index, score in order[:k]]
