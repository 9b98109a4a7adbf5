"""Exact cosine k-NN over a persistent vector log, for the local engine.

Vectors live in SQLite as an append-only log (`seq`, `chunk_id`, `vector`; a
NULL vector deletes). Every process keeps an in-memory float32 matrix and
replays only the rows it has not seen, so the API sees the worker's writes
without reloading everything. SQLite in WAL mode gives us crash safety and one
writer beside many readers across processes (https://sqlite.org/wal.html).

Exact search is a single matrix-vector product: at 100k x 384 it takes about
5 ms on 2 cores (`ragctl bench query`), so no approximate index is needed at
the local platform's usual scale. For millions of chunks, `approximate` adds either a
projected scan with exact rerank (`service.search.projection`) or an HNSW graph
(`service.search.ann`, for searches not restricted to listed chunks: the local backend
checks their candidates against a scope that admits most chunks). The matrix is then kept in half
precision: it only reranks candidates or serves filtered exact scans, whose cosines need
no more than float16's three significant digits, and at 1M x 384 it takes 768 MB instead
of 1.5 GB (`ragctl bench query --sizes 1000000 --engines exact,projected,hnsw`).

A search restricted to some chunks gets them as ids, or as sorted 63-bit keys of their ids
(`chunk_key`), which the text index lists from a fast field without reading stored documents;
each row keeps its key, and the rows are kept in key order to match them (`_allowed_rows`).

The matrix is sized once from the log's row count, an upper bound on the live rows, so a
replay of a large log never holds the old and the doubled array at once.

The HNSW graph is built lazily, by the first unfiltered search, so a process that only writes
(the worker) never builds one. After adding a batch or more it is saved beside the log
(`vectors.hnsw`), and the next process loads it and adds only the rows written since.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from service.contract import LocalVectorIndex
from service.search.ann import AnnSettings
from service.search.projection import Projection, ProjectionSettings, candidates

if TYPE_CHECKING:
    from service.search.ann import AnnIndex

# The local engine's approximate k-NN: an HNSW graph, or a projected scan with exact rerank.
Approximate = AnnSettings | ProjectionSettings


def approximate_for(index: LocalVectorIndex) -> Approximate | None:
    """The settings of a `LOCAL_VECTOR_INDEX` choice; None for exact k-NN."""
    if index is LocalVectorIndex.HNSW:
        return AnnSettings()
    if index is LocalVectorIndex.PROJECTED:
        return ProjectionSettings()
    return None


Matrix = npt.NDArray[np.float32]
# Chunk keys (`chunk_key`), sorted: the chunks a filtered search may return, as the text index
# lists them from its `chunk_key` fast field without reading a stored document.
Keys = npt.NDArray[np.int64]


def chunk_key(chunk_id: str) -> int:
    """A chunk id's 63-bit key (BLAKE2b; non-negative, so it fits tantivy's i64 fast field).
    Two chunk ids may share a key (about 1 in 10^7 for a million chunks), so a search
    restricted to `Keys` may return a chunk outside them: its caller checks the ids it gets."""
    return int.from_bytes(hashlib.blake2b(chunk_id.encode(), digest_size=8).digest(), "big") >> 1


# HNSW inserts run in batches of this many rows: one large batch uses every core (USearch
# inserts a batch in parallel), and a bounded one bounds the copy handed to it.
_ANN_BATCH = 65_536
# Filtered exact scans over the half-precision matrix convert this many rows at a time.
_SCAN_BLOCK = 65_536

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL,
    vector BLOB
);
"""


class VectorStore:
    def __init__(self, path: Path, dimension: int, approximate: Approximate | None = None) -> None:
        self._path = path
        # An HNSW graph (AnnSettings) or a projected scan with exact rerank (ProjectionSettings).
        self._graph = approximate if isinstance(approximate, AnnSettings) else None
        self._projected = approximate if isinstance(approximate, ProjectionSettings) else None
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(dimension),))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self.dimension = int(self._meta("dimension"))
        self._reset_cache()

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def _reset_cache(self) -> None:
        self._generation = self._meta("generation")
        self._last_seq = 0
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        (logged,) = self._db.execute("SELECT COUNT(*) FROM log").fetchone()
        capacity = max(1024, int(logged))
        # Half precision beside an approximate structure: the full vectors then only rerank or
        # serve filtered scans, where float16's three significant digits are enough.
        half = self._graph is not None or self._projected is not None
        dtype = np.float16 if half else np.float32
        self._matrix: npt.NDArray[np.floating[Any]] = np.zeros((capacity, self.dimension), dtype=dtype)
        self._alive = np.zeros(capacity, dtype=bool)
        # Each row's `chunk_key`, hashed below `_keyed_rows` only: computed by the first search
        # restricted to keys, not at start-up (hashing 1M ids takes about 0.5 s).
        self._keys: Keys = np.zeros(capacity, dtype=np.int64)
        self._keyed_rows = 0
        # Rows below `_sorted_rows` in key order, for `_allowed_rows`'s merge (rebuilt lazily).
        self._key_order: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self._sorted_rows = 0
        self._rows = 0
        self._ann: AnnIndex | None = None
        # Rows below `_ann_rows` are in the graph (or were superseded before it reached them);
        # the graph catches up lazily, at the next unfiltered search.
        self._ann_rows = 0
        if self._graph is not None:
            from service.search.ann import AnnIndex  # usearch: only where approximate search is on

            self._ann = AnnIndex(self.dimension, self._graph)
            self._ann_rows = self._ann.load(self._snapshot, self._generation)
        self._saved_rows = self._ann_rows
        # The projected scan: axes fitted lazily, at the first search of a large enough index.
        self._projection: Projection | None = None
        self._reduced = np.zeros((0, 0), dtype=np.float32)
        self._reduced_rows = 0
        self._fitted_on = 0

    @property
    def _snapshot(self) -> Path:
        return self._path.with_name(self._path.stem + ".hnsw")

    def close(self) -> None:
        self._db.close()

    # -- writes ---------------------------------------------------------------------------------

    def write(self, upserts: Iterable[tuple[str, Sequence[float]]], deletes: Iterable[str]) -> None:
        """Apply deletes then upserts in one transaction."""
        rows: list[tuple[str, bytes | None]] = [(chunk_id, None) for chunk_id in deletes]
        for chunk_id, vector in upserts:
            array = np.asarray(vector, dtype=np.float32)
            if array.shape != (self.dimension,):
                raise ValueError(
                    f"vector for {chunk_id} has shape {array.shape}, expected ({self.dimension},)"
                )
            rows.append((chunk_id, _normalise(array).tobytes()))
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO log (chunk_id, vector) VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if self._dead_rows() > max(10_000, self.count()):
                self.compact()

    def _dead_rows(self) -> int:
        (total,) = self._db.execute("SELECT COUNT(*) FROM log").fetchone()
        return int(total) - self.count()

    def compact(self) -> None:
        """Drop superseded log rows; readers see the new generation and reload."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "DELETE FROM log WHERE seq NOT IN (SELECT MAX(seq) FROM log GROUP BY chunk_id)"
                )
                self._db.execute("DELETE FROM log WHERE vector IS NULL")
                generation = int(self._meta("generation")) + 1
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- reads ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Replay log rows written since the last refresh (by any process)."""
        with self._lock:
            if self._meta("generation") != self._generation:
                self._reset_cache()
            cursor = self._db.execute(
                "SELECT seq, chunk_id, vector FROM log WHERE seq > ? ORDER BY seq", (self._last_seq,)
            )
            for seq, chunk_id, blob in cursor:
                self._apply(chunk_id, blob)
                self._last_seq = seq

    def _catch_up_graph(self) -> None:
        """Add the rows replayed since the graph last caught up, skipping superseded ones, in
        batches (each copy handed to USearch stays bounded); save it after a batch or more."""
        if self._ann is None:
            return
        if self._ann_rows > self._rows and self._graph is not None:
            # A snapshot ahead of this log (which only grows within a generation): never trust it.
            from service.search.ann import AnnIndex

            self._ann = AnnIndex(self.dimension, self._graph)
            self._ann_rows = self._saved_rows = 0
        while self._ann_rows < self._rows:
            end = min(self._rows, self._ann_rows + _ANN_BATCH)
            added = np.arange(self._ann_rows, end, dtype=np.int64)
            live = added[self._alive[self._ann_rows : end]]
            self._ann.add(live, self._matrix[live])
            self._ann_rows = end
        if self._ann_rows - self._saved_rows >= _ANN_BATCH:
            self._ann.save(self._snapshot, self._ann_rows, self._generation)
            self._saved_rows = self._ann_rows

    def _catch_up_projection(self) -> bool:
        """Fit the axes (again, once the index has doubled since) and project the newer rows;
        False while the index is too small for a projection to pay."""
        settings = self._projected
        if settings is None or self._rows < settings.from_rows:
            return False
        if self._projection is None or self._rows >= 2 * self._fitted_on:
            live = np.flatnonzero(self._alive[: self._rows])
            rng = np.random.default_rng(0)  # the same sample, so the same axes, in every process
            if len(live) > settings.sample:
                live = np.sort(rng.choice(live, settings.sample, replace=False))
            self._projection = Projection.fit(self._matrix[live], settings.dimensions)
            self._fitted_on = self._rows
            self._reduced = np.zeros((len(self._matrix), settings.dimensions), dtype=np.float32)
            self._reduced_rows = 0
        if len(self._reduced) < len(self._matrix):  # the matrix grew
            grown = np.zeros((len(self._matrix), self._reduced.shape[1]), dtype=np.float32)
            grown[: self._reduced_rows] = self._reduced[: self._reduced_rows]
            self._reduced = grown
        for start in range(self._reduced_rows, self._rows, _SCAN_BLOCK):
            end = min(self._rows, start + _SCAN_BLOCK)
            self._reduced[start:end] = self._projection.rows(self._matrix[start:end])
        self._reduced_rows = self._rows
        return True

    def _projected_top(
        self, projection: Projection, depth: int, query: Matrix, k: int, mask: npt.NDArray[np.bool_]
    ) -> list[tuple[str, float]]:
        """The k best rows under `mask`: the best `depth` (at least 4k) by the projected scan,
        reranked exactly on the full vectors."""
        n = len(mask)
        scan = self._reduced[:n] @ projection.query(query)
        if not mask.all():  # an unfiltered scan of a store with no dead rows skips the masking
            scan[~mask] = -np.inf
        picked = candidates(scan, max(depth, 4 * k))
        exact = (self._matrix[picked].astype(np.float32) @ query).astype(np.float32)
        order = np.argsort(-exact, kind="stable")[:k]
        return [(self._ids[picked[i]], float(exact[i])) for i in order]

    def _apply(self, chunk_id: str, blob: bytes | None) -> None:
        old = self._row_of.pop(chunk_id, None)
        if old is not None:
            self._alive[old] = False
            # Rows below `_ann_rows` are in the HNSW index; newer ones wait for the catch-up.
            if self._ann is not None and old < self._ann_rows:
                self._ann.remove(old)
        if blob is None:
            return
        if self._rows == len(self._alive):
            grown = np.zeros((self._rows * 2, self.dimension), dtype=self._matrix.dtype)
            grown[: self._rows] = self._matrix
            self._matrix = grown
            self._alive = np.concatenate([self._alive, np.zeros(self._rows, dtype=bool)])
            self._keys = np.concatenate([self._keys, np.zeros(self._rows, dtype=np.int64)])
        self._matrix[self._rows] = np.frombuffer(blob, dtype=np.float32)
        self._alive[self._rows] = True
        self._row_of[chunk_id] = self._rows
        self._ids.append(chunk_id)
        self._rows += 1

    def count(self) -> int:
        self.refresh()
        return len(self._row_of)

    def ids(self) -> set[str]:
        self.refresh()
        return set(self._row_of)

    def search(
        self, query: Sequence[float], k: int, allowed: Set[str] | Keys | None = None
    ) -> list[tuple[str, float]]:
        """The k most similar chunk ids with their cosine similarity, best first; only among
        `allowed` if given: chunk ids, or sorted chunk keys (which may also admit a chunk
        whose key another chunk shares: see `chunk_key`)."""
        self.refresh()
        with self._lock:
            n = self._rows
            if n == 0:
                return []
            q = _normalise(np.asarray(query, dtype=np.float32))
            if self._ann is not None and allowed is None:
                self._catch_up_graph()
                rows, similarities = self._ann.search(q, k)
                return [(self._ids[r], float(v)) for r, v in zip(rows, similarities, strict=True)]
            mask = self._alive[:n].copy()
            if isinstance(allowed, np.ndarray):
                mask &= self._allowed_rows(allowed, n)
            elif allowed is not None:
                allowed_rows = [self._row_of[c] for c in allowed if c in self._row_of]
                restricted = np.zeros(n, dtype=bool)
                restricted[allowed_rows] = True
                mask &= restricted
            if self._catch_up_projection() and self._projection and self._projected:
                depth = self._projected.candidates
                return self._projected_top(self._projection, depth, q, min(k, int(mask.sum())), mask)
            scores = np.where(mask, self._scores(q, mask), -np.inf)
            live = int(mask.sum())
            k = min(k, live)
            if k == 0:
                return []
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._ids[i], float(scores[i])) for i in top]

    def _allowed_rows(self, allowed: Keys, n: int) -> npt.NDArray[np.bool_]:
        """The first `n` rows whose key is in `allowed` (sorted), dead rows included.

        Both sides sorted, so NumPy's binary searches walk them in order (60 ms for 1M rows,
        against 380 ms for the rows in log order): the rows are kept in key order, sorted
        again once a tenth of them came after the last sort; the newer ones are searched as
        they are. Every row whose key is allowed is found, whichever chunk it belongs to."""
        if self._keyed_rows < n:
            fresh = self._ids[self._keyed_rows : n]
            self._keys[self._keyed_rows : n] = np.fromiter(map(chunk_key, fresh), np.int64, len(fresh))
            self._keyed_rows = n
        if n - self._sorted_rows > max(_SCAN_BLOCK, n // 10):
            self._key_order = np.argsort(self._keys[:n], kind="stable")
            self._sorted_rows = n
        rows = np.zeros(n, dtype=bool)
        if len(allowed) == 0:
            return rows
        for order in (self._key_order, np.arange(self._sorted_rows, n)):
            keys = self._keys[order]
            at = np.minimum(np.searchsorted(allowed, keys), len(allowed) - 1)
            rows[order[allowed[at] == keys]] = True
        return rows

    def _scores(self, query: Matrix, mask: npt.NDArray[np.bool_]) -> Matrix:
        """Cosines of the query with the first `len(mask)` rows; rows outside `mask` may be anything."""
        n = len(mask)
        if self._matrix.dtype == np.float32:
            return np.asarray(self._matrix[:n] @ query, dtype=np.float32)
        # Half precision: only the masked rows, converted a block at a time (NumPy has no
        # float16 BLAS, and converting the whole matrix would double its memory).
        scores = np.full(n, -np.inf, dtype=np.float32)
        rows = np.flatnonzero(mask)
        for start in range(0, len(rows), _SCAN_BLOCK):
            block = rows[start : start + _SCAN_BLOCK]
            scores[block] = (self._matrix[block].astype(np.float32) @ query).astype(np.float32)
        return scores


def _normalise(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
