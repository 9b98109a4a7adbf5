"""Split documents into chunks with semantic-text-splitter (sentence- and heading-aware)."""

from __future__ import annotations

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from service.ingest.ids import chunk_id, content_hash
from service.models import Chunk, Document


class Chunker:
    """Character-sized chunks with overlap; Markdown is split on its structure first."""

    def __init__(self, size: int, overlap: int) -> None:
        if overlap >= size:
            raise ValueError(f"chunk overlap {overlap} must be smaller than chunk size {size}")
        self.size = size
        self.overlap = overlap
        self._text = TextSplitter(size, overlap=overlap, trim=True)
        self._markdown = MarkdownSplitter(size, overlap=overlap, trim=True)

    def split(self, document: Document) -> list[Chunk]:
        splitter = self._markdown if document.content_type == "text/markdown" else self._text
        pieces = [p for p in splitter.chunks(document.text) if p.strip()]
        chunks = []
        for position, text in enumerate(pieces):
            digest = content_hash(text)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(document.document_id, position, digest),
                    document_id=document.document_id,
                    position=position,
                    title=document.title,
                    text=text,
                    source=document.source,
                    content_hash=digest,
                    tags=document.tags,
                    published=document.published,
                    workspace=document.workspace,
                    allowed_users=document.allowed_users,
                    allowed_groups=document.allowed_groups,
                )
            )
        return chunks
