"""Mode dispatch and hybrid fusion above any `SearchBackend`, so every backend ranks alike.

Hybrid asks each backend list for its top `candidates` (at least `k`) chunks and
fuses them with `service.search.fusion` (convex z-score, alpha 0.5 by default:
see docs/retrieval.md for why and for the measurements).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from service.access import AccessScope
from service.contract import SearchMode
from service.embed.protocol import Embedder
from service.models import SearchFilters, SearchHit
from service.search import fusion
from service.search.protocol import SearchBackend


@dataclass
class Retrieval:
    hits: list[SearchHit]
    mode: SearchMode
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    def __init__(
        self,
        backend: SearchBackend,
        embedder: Embedder,
        *,
        default_mode: SearchMode = SearchMode.HYBRID,
        alpha: float = 0.5,
        candidates: int = 100,
        method: fusion.Fusion = fusion.DEFAULT,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.default_mode = default_mode
        self.alpha = alpha
        self.candidates = candidates
        self.method = method

    def search(
        self,
        query: str,
        k: int = 10,
        mode: SearchMode | None = None,
        filters: SearchFilters | None = None,
        *,
        scope: AccessScope,
    ) -> Retrieval:
        """The top k chunks `scope` may read; the backends apply the scope inside each query."""
        mode = mode or self.default_mode
        timings: dict[str, float] = {}
        depth = max(k, self.candidates) if mode is SearchMode.HYBRID else k
        lexical: list[SearchHit] = []
        semantic: list[SearchHit] = []
        if mode in (SearchMode.BM25, SearchMode.HYBRID):
            started = time.perf_counter()
            lexical = self.backend.bm25(query, depth, filters, scope=scope)
            timings["bm25"] = _ms(started)
        if mode in (SearchMode.VECTOR, SearchMode.HYBRID):
            started = time.perf_counter()
            vector = self.embedder.embed_query(query)
            timings["embed"] = _ms(started)
            started = time.perf_counter()
            semantic = self.backend.knn(vector, depth, filters, highlight=query, scope=scope)
            timings["knn"] = _ms(started)
        if mode is SearchMode.BM25:
            hits = lexical[:k]
        elif mode is SearchMode.VECTOR:
            hits = semantic[:k]
        else:
            hits = fusion.fuse(self.method, lexical, semantic, self.alpha, k)
        return Retrieval(hits=hits, mode=mode, timings_ms=timings)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
