"""A scoped or filtered local k-NN returns exactly the chunks the scope and filters allow, and
lists them from the `chunk_key` fast field, not by reading every allowed chunk's stored document."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from service.access import AccessScope, operator_scope
from service.contract import LocalVectorIndex
from service.models import Chunk, EmbeddedChunk, SearchFilters
from service.search import local, vector_store
from service.search.local import LocalSearchBackend
from service.search.vector_store import approximate_for
from tests.scoped_chunks import allowed, scoped_chunks

DIM = 4
SCOPES = [
    AccessScope(workspace="default", user="ann"),
    AccessScope(workspace="default", user="bob", groups=frozenset({"finance"})),
    AccessScope(workspace="default", groups=frozenset({"legal", "finance"})),
    AccessScope(workspace="acme"),
    operator_scope(),
    operator_scope("acme"),
    AccessScope(workspace="nobody-here"),
]
FILTERS = [
    None,
    SearchFilters(tags=("even",)),
    SearchFilters(source="s3://b/default/doc-1*"),
    SearchFilters(date_from=date(2024, 1, 10), date_to=date(2024, 1, 20)),
    SearchFilters(tags=("even",), source="s3://b/*"),
]


def _backend(tmp_path: Path, chunks: list[Chunk]) -> LocalSearchBackend:
    backend = LocalSearchBackend(tmp_path / "index", DIM)
    backend.ensure_index()
    backend.upsert([EmbeddedChunk(chunk=c, vector=_vector(i)) for i, c in enumerate(chunks)])
    return backend


def _vector(number: int) -> tuple[float, ...]:
    return (1.0, float(number % 9), float(number % 4), 0.5)


def _check_exact(backend: LocalSearchBackend, chunks: list[Chunk]) -> None:
    for scope, filters in itertools.product(SCOPES, FILTERS):
        expected = {c.chunk_id for c in chunks if allowed(c, scope, filters)}
        # The whole allowed set, when k exceeds it
        found = [h.chunk_id for h in backend.knn([1.0, 2.0, 1.0, 0.5], len(chunks), filters, scope=scope)]
        assert len(found) == len(set(found))
        assert set(found) == expected, (scope, filters)
        # The k best of it, when k is smaller: as many as allowed, all allowed
        top = [h.chunk_id for h in backend.knn([1.0, 2.0, 1.0, 0.5], 5, filters, scope=scope)]
        assert len(top) == min(5, len(expected))
        assert set(top) <= expected
        assert top == found[: len(top)]


# The two ways a search restricts its candidates (`local._list_allowed`): listing the allowed
# chunks' keys for the scan, or checking the whole scan's best candidates against the scope.
STRATEGIES = {"list the allowed chunks": 10**9, "check the candidates": 0}


@pytest.fixture(params=list(STRATEGIES))
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(local, "_CHECK_COST", STRATEGIES[request.param])
    return str(request.param)


def test_a_scoped_or_filtered_knn_returns_exactly_the_allowed_chunks(tmp_path: Path, strategy: str) -> None:
    # Given chunks in two workspaces, restricted to users and groups, tagged, dated, from sources
    chunks = scoped_chunks()
    backend = _backend(tmp_path, chunks)
    # Then every scope and filter gets exactly the chunks the access rule and filters allow
    _check_exact(backend, chunks)


def test_chunks_sharing_a_key_never_leak_across_the_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    # Given keys that collide wholesale (three keys for 120 chunks; real keys collide about once
    # in 10^7 indexes of a million chunks), so the key mask admits chunks outside the scope
    def colliding(chunk_id: str) -> int:
        return len(chunk_id) % 3

    monkeypatch.setattr(local, "chunk_key", colliding)
    monkeypatch.setattr(vector_store, "chunk_key", colliding)
    chunks = scoped_chunks()
    backend = _backend(tmp_path, chunks)
    # Then the k-NN still returns exactly, and only, what each scope and filter allows
    _check_exact(backend, chunks)


class _CountingSearcher:
    def __init__(self, searcher: Any) -> None:
        self._searcher = searcher
        self.docs = 0

    def doc(self, address: Any) -> Any:
        self.docs += 1
        return self._searcher.doc(address)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._searcher, name)


def test_the_allowed_set_is_read_without_fetching_the_allowed_chunks_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    # Given 120 chunks, 81 of them readable by a reader of `default`
    chunks = scoped_chunks()
    readable = sum(allowed(c, SCOPES[0], None) for c in chunks)
    assert readable == 81
    backend = _backend(tmp_path, chunks)
    counting: list[_CountingSearcher] = []

    def searcher() -> _CountingSearcher:
        counting.append(_CountingSearcher(local.LocalSearchBackend._searcher(backend)))
        return counting[-1]

    monkeypatch.setattr(backend, "_searcher", searcher)
    # When a reader asks for the 3 nearest chunks
    hits = backend.knn([1.0, 2.0, 1.0, 0.5], 3, scope=SCOPES[0])
    # Then only the stored documents of the candidates that pass were read: k + 8 at most when
    # the allowed chunks are listed, else about 1.5 (k + 8), never one for each readable chunk
    assert len(hits) == 3
    most = (
        3 + 8 if strategy == "list the allowed chunks" else local._candidates(3 + 8, readable / len(chunks))
    )
    assert counting[0].docs <= most < readable


@pytest.mark.parametrize("engine", [LocalVectorIndex.PROJECTED, LocalVectorIndex.HNSW])
def test_an_approximate_engine_returns_only_allowed_chunks(
    tmp_path: Path, strategy: str, engine: LocalVectorIndex
) -> None:
    # Given the chunks in an index searched by an approximate engine (HNSW ranks the candidates
    # that are checked against the scope when most chunks are allowed)
    chunks = scoped_chunks()
    backend = LocalSearchBackend(tmp_path / "index", DIM, approximate_for(engine))
    backend.ensure_index()
    backend.upsert([EmbeddedChunk(chunk=c, vector=_vector(i)) for i, c in enumerate(chunks)])
    for scope, filters in itertools.product(SCOPES, FILTERS):
        expected = {c.chunk_id for c in chunks if allowed(c, scope, filters)}
        # Then whatever it ranks, it returns only what the scope and filters allow, k of them
        found = {h.chunk_id for h in backend.knn([1.0, 2.0, 1.0, 0.5], 5, filters, scope=scope)}
        assert found <= expected, (scope, filters)
        assert len(found) == min(5, len(expected))
