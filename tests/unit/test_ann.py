"""The optional HNSW index beside the exact vectors: close to exact, and never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.search import vector_store
from service.search.ann import AnnSettings
from service.search.vector_store import VectorStore

DIM = 32


def _clustered(rng: np.random.Generator, count: int, centres: np.ndarray) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), count)]
    vectors = picks + 0.35 * rng.standard_normal((count, DIM)).astype(np.float32)
    normalised: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def test_approximate_search_finds_what_exact_search_finds(tmp_path: Path) -> None:
    # Given 3,000 clustered vectors in an exact store and in an approximate one
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    vectors = _clustered(rng, 3000, centres)
    rows = [(f"c{i}", v.tolist()) for i, v in enumerate(vectors)]
    exact = VectorStore(tmp_path / "exact.sqlite", DIM)
    approx = VectorStore(tmp_path / "approx.sqlite", DIM, AnnSettings())
    exact.write(rows, ())
    approx.write(rows, ())
    # When 50 queries are asked of both
    recalls = []
    for query in _clustered(rng, 50, centres):
        truth = {cid for cid, _ in exact.search(query.tolist(), 10)}
        found = approx.search(query.tolist(), 10)
        recalls.append(len(truth & {cid for cid, _ in found}) / 10)
        # Then the scores are cosine similarities, best first
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0 - 1e-3 <= s <= 1.0 + 1e-3 for s in scores)
    # And recall@10 against exact search is at least 0.95
    assert float(np.mean(recalls)) >= 0.95


def test_deleted_and_replaced_vectors_are_never_returned_stale(tmp_path: Path) -> None:
    # Given an approximate store that has served a search
    rng = np.random.default_rng(5)
    vectors = _clustered(rng, 200, rng.standard_normal((5, DIM)).astype(np.float32))
    store = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    store.write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors)], ())
    target = vectors[7].tolist()
    assert store.search(target, 1)[0][0] == "c7"
    # When c7 is deleted and c8 is rewritten with c7's old vector
    store.write([("c8", target)], ["c7"])
    # Then the nearest to that vector is c8, and c7 is gone
    found = store.search(target, 5)
    assert found[0][0] == "c8"
    assert "c7" not in {cid for cid, _ in found}
    assert store.count() == 199


def test_filtered_searches_stay_exact(tmp_path: Path) -> None:
    # Given an approximate store and a filter allowing two chunks far from the query
    rng = np.random.default_rng(9)
    vectors = _clustered(rng, 500, rng.standard_normal((10, DIM)).astype(np.float32))
    store = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    store.write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors)], ())
    # When searching with the filter / Then exactly the allowed chunks come back
    found = store.search(vectors[0].tolist(), 10, allowed={"c100", "c200"})
    assert {cid for cid, _ in found} == {"c100", "c200"}


def test_the_approximate_store_keeps_one_half_precision_matrix_sized_from_the_log(tmp_path: Path) -> None:
    # Given 3,000 vectors written to a store
    rng = np.random.default_rng(11)
    vectors = _clustered(rng, 3000, rng.standard_normal((20, DIM)).astype(np.float32))
    VectorStore(tmp_path / "v.sqlite", DIM).write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors)], ())
    # When an exact and an approximate reader replay the log
    exact = VectorStore(tmp_path / "v.sqlite", DIM)
    approx = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    assert exact.count() == approx.count() == 3000
    # Then each sized its matrix once from the log (no doubled copy), the approximate one in
    # half precision, which is half the memory beside the index's own copy
    assert exact._matrix.shape == approx._matrix.shape == (3000, DIM)
    assert approx._matrix.nbytes * 2 == exact._matrix.nbytes
    # And a filtered search over the half-precision rows ranks as the exact store does
    allowed = {f"c{i}" for i in range(0, 3000, 7)}
    query = vectors[5].tolist()
    assert [c for c, _ in approx.search(query, 10, allowed)] == [
        c for c, _ in exact.search(query, 10, allowed)
    ]


def test_large_replays_reach_the_index_in_batches_without_superseded_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given batches of 100 rows, and a log where some chunks were rewritten and one deleted
    monkeypatch.setattr(vector_store, "_ANN_BATCH", 100)
    rng = np.random.default_rng(13)
    vectors = _clustered(rng, 350, rng.standard_normal((8, DIM)).astype(np.float32))
    writer = VectorStore(tmp_path / "v.sqlite", DIM)
    writer.write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors)], ())
    writer.write([("c3", vectors[300].tolist()), ("c250", vectors[10].tolist())], ["c42"])
    # When an approximate reader replays it
    store = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    # Then every live chunk is found by its own vector, the rewritten ones by their new one
    assert store.count() == 349
    assert store.search(vectors[300].tolist(), 2)[0][0] in {"c3", "c300"}
    assert len(store._ann or ()) == 349
    assert {c for c, _ in store.search(vectors[10].tolist(), 2)} == {"c10", "c250"}
    assert "c42" not in {c for c, _ in store.search(vectors[42].tolist(), 20)}


def _rows(vectors: np.ndarray, start: int = 0) -> list[tuple[str, list[float]]]:
    return [(f"c{start + i}", v.tolist()) for i, v in enumerate(vectors)]


def test_a_restart_loads_the_saved_graph_and_adds_only_newer_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an approximate store that built its graph over 300 rows (batches of 100) and served a search
    monkeypatch.setattr(vector_store, "_ANN_BATCH", 100)
    rng = np.random.default_rng(17)
    vectors = _clustered(rng, 400, rng.standard_normal((8, DIM)).astype(np.float32))
    first = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    first.write(_rows(vectors[:300]), ())
    first.search(vectors[0].tolist(), 1)
    first.close()
    assert (tmp_path / "v.hnsw").is_file()
    # When more is written after it (a rewrite and a delete of rows in the saved graph, new rows)
    writer = VectorStore(tmp_path / "v.sqlite", DIM)
    writer.write([*_rows(vectors[300:], 300), ("c5", vectors[350].tolist())], ["c9"])
    # And a new process opens the store
    restarted = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    # Then the graph came from the snapshot, not a rebuild: it holds the 300 saved rows at once
    assert len(restarted._ann or ()) == 300
    # And after catching up it holds every live row and none that was replaced or deleted
    assert restarted.search(vectors[350].tolist(), 2)[0][0] in {"c5", "c350"}
    assert {c for c, _ in restarted.search(vectors[350].tolist(), 2)} == {"c5", "c350"}
    assert "c9" not in {c for c, _ in restarted.search(vectors[9].tolist(), 20)}
    assert len(restarted._ann or ()) == restarted.count() == 399


@pytest.mark.parametrize("damage", ["torn graph", "other generation", "other connectivity"])
def test_a_snapshot_that_does_not_match_the_log_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    # Given a saved graph over 200 rows
    monkeypatch.setattr(vector_store, "_ANN_BATCH", 100)
    rng = np.random.default_rng(19)
    vectors = _clustered(rng, 200, rng.standard_normal((6, DIM)).astype(np.float32))
    store = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    store.write(_rows(vectors), ())
    store.search(vectors[0].tolist(), 1)
    store.close()
    settings = AnnSettings()
    # When it no longer matches: half-written, from before a compaction, or built with other links
    if damage == "torn graph":
        graph = tmp_path / "v.hnsw"
        graph.write_bytes(graph.read_bytes()[:100])
    elif damage == "other generation":
        VectorStore(tmp_path / "v.sqlite", DIM).compact()
    else:
        settings = AnnSettings(connectivity=8)
    reopened = VectorStore(tmp_path / "v.sqlite", DIM, settings)
    # Then it is not loaded, and the graph is rebuilt from the log with every row findable
    assert len(reopened._ann or ()) == 0
    assert reopened.search(vectors[123].tolist(), 1)[0][0] == "c123"
    assert len(reopened._ann or ()) == 200


def test_a_store_that_only_writes_never_builds_the_graph(tmp_path: Path) -> None:
    # Given an approximate store used as the worker uses it: writes and counts, no search
    rng = np.random.default_rng(23)
    store = VectorStore(tmp_path / "v.sqlite", DIM, AnnSettings())
    store.write(_rows(_clustered(rng, 300, rng.standard_normal((4, DIM)).astype(np.float32))), ())
    # When it counts its rows / Then no graph was built, and none saved
    assert store.count() == 300
    assert len(store._ann or ()) == 0
    assert not (tmp_path / "v.hnsw").exists()
