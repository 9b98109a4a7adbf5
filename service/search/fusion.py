"""Fusion of BM25 and vector result lists into one hybrid ranking.

The default is a convex combination of min-max normalised scores (Bruch,
Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM
TOIS 2023: it beats reciprocal-rank fusion in and out of domain and needs one
parameter). A document missing from one list gets 0 from that list. RRF
(Cormack et al., SIGIR 2009) is kept for comparison by `ragctl eval`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

from service.models import SearchHit

RRF_K = 60

_Scorer = Callable[[str], float]


class Fusion(StrEnum):
    CONVEX = "convex"
    RRF = "rrf"


def _minmax(hits: Sequence[SearchHit]) -> dict[str, float]:
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {h.chunk_id: ((h.score - low) / span if span > 0 else 1.0) for h in hits}


def convex(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], alpha: float, k: int
) -> list[SearchHit]:
    """alpha * norm(vector) + (1 - alpha) * norm(bm25); ties keep the vector order."""
    lex, sem = _minmax(lexical), _minmax(semantic)
    return _ranked(
        lexical, semantic, lambda cid: alpha * sem.get(cid, 0.0) + (1 - alpha) * lex.get(cid, 0.0), k
    )


def rrf(lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], k: int) -> list[SearchHit]:
    lex = {h.chunk_id: rank for rank, h in enumerate(lexical, 1)}
    sem = {h.chunk_id: rank for rank, h in enumerate(semantic, 1)}

    def score(cid: str) -> float:
        return sum(1.0 / (RRF_K + ranks[cid]) for ranks in (lex, sem) if cid in ranks)

    return _ranked(lexical, semantic, score, k)


def _ranked(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], score: _Scorer, k: int
) -> list[SearchHit]:
    # Lexical hits overwrite vector hits: their snippets mark the query terms that matched.
    by_id: dict[str, SearchHit] = {hit.chunk_id: hit for hit in [*semantic, *lexical]}
    fused = sorted(by_id, key=lambda cid: score(cid), reverse=True)[:k]
    return [by_id[cid].model_copy(update={"score": round(score(cid), 6)}) for cid in fused]
