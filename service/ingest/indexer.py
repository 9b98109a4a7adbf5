"""Chunk, embed and write one document; remove the chunks it no longer has.

Idempotent by construction: chunk ids are deterministic, so a redelivered
document finds its chunks already present and embeds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.embed.protocol import Embedder
from service.ingest.chunking import Chunker
from service.models import Chunk, Document, EmbeddedChunk
from service.search.protocol import SearchBackend


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees: the title gives a passage its context."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


@dataclass(frozen=True)
class IndexResult:
    document_id: str
    chunk_ids: tuple[str, ...]
    embedded: int
    removed: int


class Indexer:
    def __init__(self, backend: SearchBackend, embedder: Embedder, chunker: Chunker) -> None:
        self.backend = backend
        self.embedder = embedder
        self.chunker = chunker

    def embed(self, chunks: Sequence[Chunk]) -> list[EmbeddedChunk]:
        vectors = self.embedder.embed_documents([embedding_text(c) for c in chunks])
        return [EmbeddedChunk(chunk=c, vector=tuple(v)) for c, v in zip(chunks, vectors, strict=True)]

    def index(self, document: Document) -> IndexResult:
        chunks = self.chunker.split(document)
        present = self.backend.chunk_ids_for_document(document.document_id)
        wanted = {c.chunk_id for c in chunks}
        missing = [c for c in chunks if c.chunk_id not in present]
        if missing:
            self.backend.upsert(self.embed(missing))
        # New chunks are written before stale ones go, so a reader never sees the document vanish.
        stale = sorted(present - wanted)
        self.backend.delete_chunks(stale)
        return IndexResult(
            document_id=document.document_id,
            chunk_ids=tuple(c.chunk_id for c in chunks),
            embedded=len(missing),
            removed=len(stale),
        )

    def delete(self, document_id: str) -> int:
        stale = sorted(self.backend.chunk_ids_for_document(document_id))
        self.backend.delete_chunks(stale)
        return len(stale)
