"""Projected k-NN for large local indexes: a scan in a few principal dimensions, then exact rerank.

Why: exact search reads every vector for every query (1.5 GB at 1M x 384 in float32, about
150 ms on two cores), too slow for a 100 ms p99 with BM25 and embedding beside it. Sentence
embeddings keep most of their variance in few directions (all-MiniLM-L6-v2 on Cranfield and
CISI: 64 of 384 principal axes hold 71% of it, `pipelines.bench_vectors`), so a dot product in
those directions ranks nearly as the full one does. Each query therefore scans the rows
projected onto the top `dimensions` principal axes (64 float32 numbers a row: 256 MB at 1M),
keeps the best `candidates`, and reranks those exactly on the full vectors. This is the
two-stage "reduce, then re-rank" scheme of Jégou, Douze and Schmid (IEEE TPAMI 2011, the
asymmetric distance with re-ranking of FAISS's IndexRefine), with PCA for the reduction.

Against an HNSW graph (`service.search.ann`) it needs no build (a PCA fit on a sample takes
seconds), every scan respects a filter (the scope and filters mask rows before the top
candidates are chosen, so a filtered search is as good as an unfiltered one), and its recall
does not depend on a graph's navigability. It is still linear in the index: at 1M chunks one
query scans 256 MB. `ragctl bench query --sizes 1000000 --engines exact,projected` measures its
latency, memory and recall@10 against exact search in the same run (docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# The principal axes fitted, the candidates reranked exactly, the sample the axes are fitted on,
# and the index size from which a projection is worth it (below it an exact scan is a few ms).
# Measured at 1M vectors shaped like MiniLM embeddings: 64 axes with 400 candidates gave recall@10
# 0.989 (profile queries) and 0.985 (real questions) at 23 ms a query on one core; 96 axes gave
# 0.998 / 0.997 at 32 ms (docs/api.md, "Performance").
DIMENSIONS = 64
CANDIDATES = 400
SAMPLE = 50_000
FROM_ROWS = 50_000


@dataclass(frozen=True)
class ProjectionSettings:
    dimensions: int = DIMENSIONS
    candidates: int = CANDIDATES
    sample: int = SAMPLE
    from_rows: int = FROM_ROWS


@dataclass(frozen=True)
class Projection:
    """The mean and top principal axes (columns of `basis`) of a sample of the index's vectors."""

    mean: Matrix
    basis: Matrix

    @classmethod
    def fit(cls, sample: npt.NDArray[np.floating[Any]], dimensions: int) -> Projection:
        vectors = np.asarray(sample, dtype=np.float32)
        mean = vectors.mean(axis=0)
        # Right singular vectors of the centred sample are its principal axes, largest first.
        _, _, axes = np.linalg.svd(vectors - mean, full_matrices=False)
        return cls(mean.astype(np.float32), np.ascontiguousarray(axes[:dimensions].T, dtype=np.float32))

    def rows(self, vectors: npt.NDArray[np.floating[Any]]) -> Matrix:
        """Stored rows in the reduced space: (v - mean) projected onto the axes."""
        reduced: Matrix = ((np.asarray(vectors, dtype=np.float32) - self.mean) @ self.basis).astype(
            np.float32
        )
        return reduced

    def query(self, vector: Matrix) -> Matrix:
        """The query in the reduced space. Ranking rows by `rows(v) . query(q)` ranks them by
        (v - mean) . q within the axes, which orders them as v . q would: mean . q is the same
        for every row."""
        reduced: Matrix = (vector @ self.basis).astype(np.float32)
        return reduced


def candidates(scores: Matrix, count: int) -> npt.NDArray[np.int64]:
    """Indices of the `count` highest scores (unordered); all finite-scored ones if fewer."""
    finite = int(np.isfinite(scores).sum())
    count = min(count, finite)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(-scores, count - 1)[:count].astype(np.int64)
