"""Chunk builders for the contract suite: real `EmbeddedChunk`s with `HashingEmbedder` vectors."""

from __future__ import annotations

from datetime import date

from service.ingest.ids import content_hash
from service.models import Chunk, EmbeddedChunk
from tests.factories import HashingEmbedder

DIMENSION = 64
EMBEDDER = HashingEmbedder(DIMENSION)


def embedded(
    chunk_id: str,
    text: str,
    *,
    document_id: str = "doc-1",
    position: int = 0,
    title: str = "A title",
    source: str | None = None,
    tags: tuple[str, ...] = (),
    published: date | None = None,
    embedder: HashingEmbedder = EMBEDDER,
) -> EmbeddedChunk:
    chunk = Chunk(
        chunk_id=chunk_id,
        document_id=document_id,
        position=position,
        title=title,
        text=text,
        source=source or f"s3://bucket/{document_id}",
        content_hash=content_hash(text),
        tags=tags,
        published=published,
    )
    return EmbeddedChunk(chunk=chunk, vector=tuple(embedder.embed_query(text)))
