"""The local k-NN's shortcut: it skips counting the scope's chunks only when the term dictionary
proves every chunk is readable (issue 14's 1M bench: the count read every chunk, 8 ms a query)."""

from __future__ import annotations

from pathlib import Path

from service.access import AccessScope, operator_scope
from service.models import Chunk, EmbeddedChunk, SearchFilters
from service.search.local import LocalSearchBackend

DIM = 4


def _chunk(number: int, workspace: str = "default", groups: tuple[str, ...] = ()) -> EmbeddedChunk:
    chunk = Chunk(
        chunk_id=f"{workspace}-{number}",
        document_id=f"{workspace}/doc-{number}.md",
        position=0,
        title="t",
        text=f"text {number}",
        source=f"s3://b/{workspace}/doc-{number}.md",
        content_hash=f"{number:040x}",
        workspace=workspace,
        allowed_groups=groups,
    )
    return EmbeddedChunk(chunk=chunk, vector=[1.0, float(number), 0.0, 0.5])


def _backend(tmp_path: Path, chunks: list[EmbeddedChunk]) -> LocalSearchBackend:
    backend = LocalSearchBackend(tmp_path / "index", DIM)
    backend.ensure_index()
    backend.upsert(chunks)
    return backend


def _shortcut(backend: LocalSearchBackend, scope: AccessScope, filters: SearchFilters | None = None) -> bool:
    return backend._everything_readable(backend._searcher(), scope, filters)


def test_one_workspace_without_restricted_chunks_takes_the_shortcut(tmp_path: Path) -> None:
    # Given an index holding one workspace, no chunk restricted
    backend = _backend(tmp_path, [_chunk(i) for i in range(5)])
    reader = AccessScope(workspace="default", user="u")
    # Then a reader of that workspace needs no count, and the search returns every chunk
    assert _shortcut(backend, reader)
    assert len(backend.knn([1.0, 2.0, 0.0, 0.5], 10, scope=reader)) == 5
    # But a filter, or another workspace's reader, never takes it
    assert not _shortcut(backend, reader, SearchFilters(tags=["x"]))
    assert not _shortcut(backend, AccessScope(workspace="other"))


def test_a_second_workspace_or_a_restricted_chunk_disables_the_shortcut_and_the_scope_holds(
    tmp_path: Path,
) -> None:
    # Given a second workspace's chunk, and a restricted chunk in the default workspace
    backend = _backend(tmp_path, [_chunk(1), _chunk(2, groups=("finance",)), _chunk(3, workspace="acme")])
    reader = AccessScope(workspace="default", user="u")
    # Then neither the reader nor an operator of `default` takes the shortcut
    assert not _shortcut(backend, reader)
    assert not _shortcut(backend, operator_scope())
    # And the k-NN returns only what each may read
    assert {h.chunk_id for h in backend.knn([1.0, 1.0, 0.0, 0.5], 10, scope=reader)} == {"default-1"}
    assert {h.chunk_id for h in backend.knn([1.0, 1.0, 0.0, 0.5], 10, scope=operator_scope())} == {
        "default-1",
        "default-2",
    }
    finance = AccessScope(workspace="default", groups=frozenset({"finance"}))
    assert {h.chunk_id for h in backend.knn([1.0, 1.0, 0.0, 0.5], 10, scope=finance)} == {
        "default-1",
        "default-2",
    }


def test_a_restricted_chunk_still_allows_the_shortcut_for_a_scope_that_reads_everything(
    tmp_path: Path,
) -> None:
    # Given one workspace with a restricted chunk
    backend = _backend(tmp_path, [_chunk(1), _chunk(2, groups=("finance",))])
    # Then an operator (who bypasses document permissions) takes it, a reader does not
    assert _shortcut(backend, operator_scope())
    assert not _shortcut(backend, AccessScope(workspace="default", user="u"))
