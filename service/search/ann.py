"""An approximate k-NN index (HNSW, from USearch) beside the exact vector matrix, for large indexes.

Why: exact search is one matrix-vector product, about 5 ms at 100k x 384 on two cores, but it
grows with the index: at 1M chunks the product reads 1.5 GB per query and no longer fits a
100 ms p99 with BM25, embedding and snippets beside it (`ragctl bench query --sizes 1000000`).
USearch (https://github.com/unum-cloud/usearch, Apache-2.0, wheels for every platform we run)
builds an HNSW graph (Malkov and Yashunin, IEEE TPAMI 2020) over half-precision copies of the
vectors, in a few bytes per vector beyond them, and answers in a few milliseconds.

Searches with a metadata filter stay exact: a filter can leave too few of the graph's
candidates, and the exact scan over the allowed rows is what guarantees k results.
Recall@10 against exact search is measured by the benchmark in the same run.

Building the graph is the slow part (minutes at 1M vectors), so a process saves it beside the
vector log (`save`) and the next one loads it (`load`) and adds only the newer rows: a restart
of the local platform takes seconds, not another build. A snapshot that does not match the log
(another generation, dimension or graph setting, or a torn write) is ignored and rebuilt.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# HNSW parameters: M = 16 links a node, ef_construction = 128 (USearch's defaults) and
# ef_search = 256 instead of its 64. Measured at 100k synthetic vectors shaped like MiniLM
# embeddings (`pipelines.bench_vectors`: a Gaussian with real embeddings' mean and principal
# axes, no clusters, so harder than real text): recall@10 against exact was 0.79 / 0.90 / 0.96
# at ef_search 64 / 128 / 256, at 1.6 / 3.3 / 5.7 ms a query under load. Half precision
# storage costs no recall: f16 and f32 indexes agreed within 0.01 at every ef_search.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256


@dataclass(frozen=True)
class AnnSettings:
    connectivity: int = CONNECTIVITY
    expansion_add: int = EXPANSION_ADD
    expansion_search: int = EXPANSION_SEARCH


class AnnIndex:
    """Row number -> unit vector, searched by cosine; rows are the vector store's rows."""

    def __init__(self, dimension: int, settings: AnnSettings = AnnSettings()) -> None:
        self._settings = settings
        self._dimension = dimension
        self._index = self._empty()

    def _empty(self) -> Any:
        # Imported here: the exact engine, and every process that never turns this on, runs
        # without usearch.
        from usearch.index import Index

        return Index(
            ndim=self._dimension,
            metric="cos",
            dtype="f16",
            connectivity=self._settings.connectivity,
            expansion_add=self._settings.expansion_add,
            expansion_search=self._settings.expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def save(self, path: Path, rows: int, generation: str) -> None:
        """Write the graph and what it covers (the first `rows` rows of log `generation`), atomically.

        Each file is written under a unique name and renamed into place, so a reader sees an old or
        a new snapshot, never half of one; the metadata names the graph file's size, so a crash
        between the two renames leaves a mismatch that `load` rejects.
        """
        graph, meta = path, path.with_name(path.name + ".json")
        token = uuid.uuid4().hex
        graph_tmp, meta_tmp = (
            graph.with_name(f".{graph.name}.{token}"),
            meta.with_name(f".{meta.name}.{token}"),
        )
        self._index.save(str(graph_tmp))
        described = {
            "rows": rows,
            "generation": generation,
            "dimension": self._dimension,
            "bytes": graph_tmp.stat().st_size,
            "settings": asdict(self._settings),
        }
        meta_tmp.write_text(json.dumps(described))
        os.replace(graph_tmp, graph)
        os.replace(meta_tmp, meta)

    def load(self, path: Path, generation: str) -> int:
        """Load a snapshot of log `generation` and return the rows it covers; 0 if there is none
        that matches (the graph is then empty and is rebuilt from the log)."""
        graph, meta = path, path.with_name(path.name + ".json")
        try:
            described = json.loads(meta.read_text())
            matches = (
                described["generation"] == generation
                and described["dimension"] == self._dimension
                and described["settings"]["connectivity"] == self._settings.connectivity
                and described["bytes"] == graph.stat().st_size
            )
            if not matches:
                return 0
            self._index.load(str(graph))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            self._index = self._empty()
            return 0
        # A loaded index takes the file's breadths; ours are settings.
        self._index.expansion_add = self._settings.expansion_add
        self._index.expansion_search = self._settings.expansion_search
        return int(described["rows"])

    def add(self, rows: npt.NDArray[np.int64], vectors: npt.NDArray[np.floating[Any]]) -> None:
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
