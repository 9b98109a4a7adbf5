"""Fusion of BM25 and vector result lists into one hybrid ranking.

The default is a convex combination of z-score normalised scores,
`alpha * z(vector) + (1 - alpha) * z(bm25)` with alpha = 0.5 over the top
`candidates` of each list (Bruch, Gai and Ingber, "An Analysis of Fusion
Functions for Hybrid Retrieval", ACM TOIS 2023: a convex combination beats
reciprocal-rank fusion in and out of domain and needs one parameter). Each list's
scores are measured in its own standard deviations above its weakest candidate,
so a chunk missing from one list gets 0 from it, the value of that list's weakest
candidate. Unlike min-max, one outlying top score (common in BM25) does not squash
the rest of its list towards 0.

Measured on Cranfield and CISI (docs/retrieval.md, issue 14): z-score lifted
nDCG@10 on both collections over min-max (0.5717 -> 0.5731 and 0.4373 -> 0.4419
fused 300 deep; 0.5673 -> 0.5692 and 0.4346 -> 0.4388 fused 100 deep), so it is the
default; RRF is about 0.01 lower on both, and normalising with the theoretical minimum
(TM2C2: 0 for BM25, -1 for cosine) compresses MiniLM's narrow cosine range and
under-weights the vector list at alpha 0.5. Min-max (`convex`) and RRF stay selectable.
Fused scores are comparable within one ranking only: z-scores are not bounded to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import StrEnum

from service.models import SearchHit

RRF_K = 60

_Scorer = Callable[[str], float]
_Normaliser = Callable[[Sequence[SearchHit]], dict[str, float]]


class Fusion(StrEnum):
    CONVEX = "convex"
    ZSCORE = "zscore"
    RRF = "rrf"


DEFAULT = Fusion.ZSCORE


def minmax(hits: Sequence[SearchHit]) -> dict[str, float]:
    """Scores mapped onto [0, 1] by the list's own range; a list of equal scores maps to 1."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {h.chunk_id: ((h.score - low) / span if span > 0 else 1.0) for h in hits}


def zscore(hits: Sequence[SearchHit]) -> dict[str, float]:
    """Standard scores, shifted so the list's weakest candidate (and a missing chunk) gets 0."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    mean = sum(scores) / len(scores)
    spread = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores)) or 1.0
    low = min(scores)
    return {h.chunk_id: (h.score - low) / spread for h in hits}


def convex(
    lexical: Sequence[SearchHit],
    semantic: Sequence[SearchHit],
    alpha: float,
    k: int,
    normalise: _Normaliser = minmax,
) -> list[SearchHit]:
    """alpha * norm(vector) + (1 - alpha) * norm(bm25); ties keep the vector order."""
    lex, sem = normalise(lexical), normalise(semantic)
    return _ranked(
        lexical, semantic, lambda cid: alpha * sem.get(cid, 0.0) + (1 - alpha) * lex.get(cid, 0.0), k
    )


def rrf(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], k: int, rrf_k: int = RRF_K
) -> list[SearchHit]:
    """Reciprocal-rank fusion (Cormack et al., SIGIR 2009): sum of 1 / (rrf_k + rank)."""
    lex = {h.chunk_id: rank for rank, h in enumerate(lexical, 1)}
    sem = {h.chunk_id: rank for rank, h in enumerate(semantic, 1)}

    def score(cid: str) -> float:
        return sum(1.0 / (rrf_k + ranks[cid]) for ranks in (lex, sem) if cid in ranks)

    return _ranked(lexical, semantic, score, k)


def fuse(
    method: Fusion, lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], alpha: float, k: int
) -> list[SearchHit]:
    """The top `k` of both lists by `method`; `alpha` is the vector weight (unused by RRF)."""
    if method is Fusion.RRF:
        return rrf(lexical, semantic, k)
    if method is Fusion.ZSCORE:
        return convex(lexical, semantic, alpha, k, normalise=zscore)
    return convex(lexical, semantic, alpha, k)


def _ranked(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], score: _Scorer, k: int
) -> list[SearchHit]:
    # Lexical hits overwrite vector hits: their snippets mark the query terms that matched.
    by_id: dict[str, SearchHit] = {hit.chunk_id: hit for hit in [*semantic, *lexical]}
    scored = {cid: score(cid) for cid in by_id}
    fused = sorted(by_id, key=lambda cid: scored[cid], reverse=True)[:k]
    return [by_id[cid].model_copy(update={"score": round(scored[cid], 6)}) for cid in fused]
