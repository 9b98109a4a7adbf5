"""The search-backend protocol: every backend (local, OpenSearch, Elasticsearch) implements it.

Fusion of BM25 and vector results lives above the backends, in
`service.search.retriever`, so hybrid search ranks the same way on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from service.access import AccessScope
from service.models import EmbeddedChunk, SearchFilters, SearchHit


class SearchBackendError(RuntimeError):
    """A backend failure. `transient` tells the ingester whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class DimensionMismatchError(RuntimeError):
    """The index was built for vectors of another size than the embedder makes."""

    def __init__(self, index: str, index_dimension: int, embedder_dimension: int) -> None:
        super().__init__(
            f"index {index!r} holds {index_dimension}-dimensional vectors but the embedder makes "
            f"{embedder_dimension}-dimensional ones; run `ragctl reindex` to build an index for the "
            "new embedder, or set EMBEDDING_MODEL_ID/EMBEDDING_DIMENSION back to the index's model"
        )
        self.index_dimension = index_dimension
        self.embedder_dimension = embedder_dimension


@runtime_checkable
class SearchBackend(Protocol):
    """Stores chunks with their vectors and answers BM25 and k-NN queries."""

    @property
    def dimension(self) -> int:
        """Vector size the index holds."""
        ...

    def ensure_index(self) -> None:
        """Create the index if missing (idempotent); raise `DimensionMismatchError` if incompatible."""
        ...

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> None:
        """Insert or replace chunks by `chunk_id`; visible to searches on return."""
        ...

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Delete the given chunks; unknown ids are ignored."""
        ...

    def chunk_ids_for_document(self, document_id: str) -> set[str]:
        """Every chunk id stored for the document, however many there are."""
        ...

    def update_permissions(
        self, document_id: str, allowed_users: Sequence[str], allowed_groups: Sequence[str]
    ) -> int:
        """Rewrite who may read the document's chunks, keeping their vectors; returns how many."""
        ...

    def bm25(
        self, query: str, k: int, filters: SearchFilters | None = None, *, scope: AccessScope
    ) -> list[SearchHit]:
        """Lexical search, best first, with highlighted snippets, over the chunks `scope` may read.

        The scope is applied inside the engine's query, never to a top-k afterwards, so k hits
        come back whenever k readable chunks match.
        """
        ...

    def knn(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        highlight: str = "",
        *,
        scope: AccessScope,
    ) -> list[SearchHit]:
        """Exact or approximate nearest neighbours by cosine similarity, best first, among the
        chunks `scope` may read (filtered during the search, as in `bm25`).

        `highlight` is the query text used to mark the snippet.
        """
        ...

    def count(self, scope: AccessScope | None = None) -> int:
        """Number of chunks `scope` may read; of the whole index without one (operators only)."""
        ...

    def ping(self) -> None:
        """Raise if the backend cannot serve queries."""
        ...
