"""The projected k-NN scan (LOCAL_VECTOR_INDEX=projected): close to exact, exact scores, filters
respected inside the scan, and never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.search.projection import Projection, ProjectionSettings
from service.search.vector_store import VectorStore

DIM = 48
# Small enough to run here: the scan starts at 1,000 rows, in 16 of 48 dimensions.
SETTINGS = ProjectionSettings(dimensions=16, candidates=200, sample=2_000, from_rows=1_000)


def _anisotropic(rng: np.random.Generator, count: int) -> np.ndarray:
    """Unit vectors whose variance sits in few directions, as sentence embeddings' does."""
    scales = np.geomspace(1.0, 0.05, DIM).astype(np.float32)
    vectors = (rng.standard_normal((count, DIM)).astype(np.float32) * scales) + 0.3
    normalised: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def _stores(tmp_path: Path, vectors: np.ndarray) -> tuple[VectorStore, VectorStore]:
    rows = [(f"c{i}", v.tolist()) for i, v in enumerate(vectors)]
    exact = VectorStore(tmp_path / "exact.sqlite", DIM)
    projected = VectorStore(tmp_path / "projected.sqlite", DIM, SETTINGS)
    exact.write(rows, ())
    projected.write(rows, ())
    return exact, projected


def test_projected_search_finds_what_exact_search_finds_with_exact_scores(tmp_path: Path) -> None:
    # Given 4,000 anisotropic vectors in an exact store and a projected one
    rng = np.random.default_rng(1)
    exact, projected = _stores(tmp_path, _anisotropic(rng, 4_000))
    # When 50 queries from the same distribution are asked of both
    recalls = []
    for query in _anisotropic(rng, 50):
        truth = dict(exact.search(query.tolist(), 10))
        found = projected.search(query.tolist(), 10)
        recalls.append(len(truth.keys() & {c for c, _ in found}) / 10)
        # Then each score is the exact cosine (reranked on the full vectors), best first
        for chunk_id, score in found:
            if chunk_id in truth:
                assert abs(score - truth[chunk_id]) < 2e-3
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    # And recall@10 against exact search is at least 0.95
    assert float(np.mean(recalls)) >= 0.95
    # And the scan really ran in the reduced space
    assert projected._projection is not None
    assert projected._reduced.shape[1] == SETTINGS.dimensions


def test_a_filter_is_applied_inside_the_scan_not_to_its_top(tmp_path: Path) -> None:
    # Given a projected store and a filter allowing two chunks far from the query
    rng = np.random.default_rng(2)
    vectors = _anisotropic(rng, 2_000)
    _, projected = _stores(tmp_path, vectors)
    query = vectors[0].tolist()
    far = sorted(projected.search(query, 2_000), key=lambda hit: hit[1])[:2]
    allowed = {chunk_id for chunk_id, _ in far}
    # When searching with that filter / Then exactly those two come back, though no top-k held them
    assert {c for c, _ in projected.search(query, 10, allowed=allowed)} == allowed


def test_deleted_and_replaced_vectors_are_never_returned_stale(tmp_path: Path) -> None:
    # Given a projected store that has served a search
    rng = np.random.default_rng(3)
    vectors = _anisotropic(rng, 1_500)
    _, store = _stores(tmp_path, vectors)
    target = vectors[7].tolist()
    assert store.search(target, 1)[0][0] == "c7"
    # When c7 is deleted and c8 is rewritten with c7's old vector
    store.write([("c8", target)], ["c7"])
    # Then the nearest to that vector is c8, and c7 is gone
    found = store.search(target, 5)
    assert found[0][0] == "c8"
    assert "c7" not in {c for c, _ in found}


def test_small_indexes_stay_exact_and_the_axes_are_refitted_as_the_index_doubles(tmp_path: Path) -> None:
    # Given a projected store below the size where the scan starts
    rng = np.random.default_rng(4)
    vectors = _anisotropic(rng, 2_400)
    exact = VectorStore(tmp_path / "exact.sqlite", DIM)
    store = VectorStore(tmp_path / "projected.sqlite", DIM, SETTINGS)
    first = [(f"c{i}", v.tolist()) for i, v in enumerate(vectors[:900])]
    exact.write(first, ())
    store.write(first, ())
    query = vectors[5].tolist()
    # When it is searched / Then it ranks as the exact store does (its vectors are half precision)
    assert [c for c, _ in store.search(query, 10)] == [c for c, _ in exact.search(query, 10)]
    assert store._projection is None
    # When it grows past the threshold, and later doubles
    store.write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors[900:1_100], 900)], ())
    store.search(query, 10)
    fitted = store._fitted_on
    store.write([(f"c{i}", v.tolist()) for i, v in enumerate(vectors[1_100:], 1_100)], ())
    found = store.search(vectors[2_300].tolist(), 1)
    # Then the axes were fitted at 1,100 rows, refitted at 2,400, and the newest rows are found
    assert (fitted, store._fitted_on) == (1_100, 2_400)
    assert found[0][0] == "c2300"


def test_the_projection_orders_rows_as_their_dot_product_within_the_axes() -> None:
    # Given vectors that lie exactly in a 3-dimensional subspace, and axes fitted on them
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.standard_normal((DIM, 3)))[0].astype(np.float32)
    vectors = (rng.standard_normal((500, 3)).astype(np.float32) @ basis.T).astype(np.float32)
    projection = Projection.fit(vectors, 3)
    query = vectors[0]
    # When rows are scored in the reduced space
    reduced = projection.rows(vectors) @ projection.query(query)
    # Then the order is the full dot product's (the mean's share is the same for every row)
    assert list(np.argsort(-reduced)[:20]) == list(np.argsort(-(vectors @ query))[:20])
