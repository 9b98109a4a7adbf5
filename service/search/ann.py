"""An approximate k-NN index (HNSW, from USearch) beside the exact vector matrix, for large indexes.

Why: exact search is one matrix-vector product, about 5 ms at 100k x 384 on two cores, but it
grows with the index: at 1M chunks the product reads 1.5 GB per query and no longer fits a
100 ms p99 with BM25, embedding and snippets beside it (`ragctl bench query --sizes 1000000`).
USearch (https://github.com/unum-cloud/usearch, Apache-2.0, wheels for every platform we run)
builds an HNSW graph (Malkov and Yashunin, IEEE TPAMI 2020) over half-precision copies of the
vectors, in a few bytes per vector beyond them, and answers in well under a millisecond.

Searches with a metadata filter stay exact: a filter can leave too few of the graph's
candidates, and the exact scan over the allowed rows is what guarantees k results.
Recall@10 against exact search is measured by the benchmark in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# HNSW parameters: M = 16 links a node, ef_construction = 128, ef_search = 128. USearch's
# defaults (16 / 128 / 64) plus a deeper search, which lifts recall@10 above 0.95 on the
# benchmark's clustered vectors at a fraction of a millisecond more.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128


@dataclass(frozen=True)
class AnnSettings:
    connectivity: int = CONNECTIVITY
    expansion_add: int = EXPANSION_ADD
    expansion_search: int = EXPANSION_SEARCH


class AnnIndex:
    """Row number -> unit vector, searched by cosine; rows are the vector store's rows."""

    def __init__(self, dimension: int, settings: AnnSettings = AnnSettings()) -> None:
        # Imported here: the exact engine, and every process that never turns this on, runs
        # without usearch.
        from usearch.index import Index

        self._index = Index(
            ndim=dimension,
            metric="cos",
            dtype="f16",
            connectivity=settings.connectivity,
            expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, rows: npt.NDArray[np.int64], vectors: Matrix) -> None:
        if len(rows):
            self._index.add(rows, vectors)

    def remove(self, row: int) -> None:
        self._index.remove(row)

    def search(self, query: Matrix, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Rows and cosine similarities of the (approximately) k nearest, best first."""
        if len(self._index) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        matches = self._index.search(query, k)
        rows = np.asarray(matches.keys, dtype=np.int64)
        # USearch's cosine *distance* is 1 - cosine similarity.
        similarities = 1.0 - np.asarray(matches.distances, dtype=np.float32)
        return rows, similarities
