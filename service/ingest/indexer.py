"""Chunk, embed and write one document; remove the chunks it no longer has.

Idempotent by construction: chunk ids are deterministic, so a redelivered
document finds its chunks already present and embeds nothing.

Embedding is batched (`batch_size` texts per call) and rate-limited: at most
`concurrency` calls are in flight from one process. Work goes in waves of
`batch_size * concurrency` chunks; each wave is written to the index as soon as
it is embedded, so progress survives a crash or a deadline, and the next
attempt (or continuation message) only embeds what is still missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.embed.protocol import Embedder
from service.ingest.chunking import Chunker
from service.ingest.errors import PermanentIngestError
from service.ingest.retry import Retrier
from service.models import Chunk, Document, EmbeddedChunk
from service.search.protocol import SearchBackend

# 10,000 chunks of 1,000 characters is about 10 MB of text: beyond that a document
# is refused rather than letting one message monopolise the pipeline (and the
# DynamoDB ledger item, which holds every chunk id, stays under 400 KB).
MAX_CHUNKS_PER_DOCUMENT = 10_000


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees: the title gives a passage its context."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


@dataclass(frozen=True)
class IndexResult:
    document_id: str
    chunk_ids: tuple[str, ...]
    embedded: int
    removed: int
    complete: bool = True


@dataclass(frozen=True)
class WorkLimits:
    """How much of one document a single message may do before handing over to a continuation."""

    max_new_chunks: int | None = None
    # Stop starting new waves when less than this many seconds (plus the last wave's duration) remain.
    reserve_seconds: float = 0.0


class Indexer:
    def __init__(
        self,
        backend: SearchBackend,
        embedder: Embedder,
        chunker: Chunker,
        *,
        batch_size: int = 32,
        concurrency: int = 1,
        max_chunks_per_document: int = MAX_CHUNKS_PER_DOCUMENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.chunker = chunker
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_chunks_per_document = max_chunks_per_document
        self._clock = clock
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="embed")
            return self._pool

    def embed(self, chunks: Sequence[Chunk], retry: Retrier | None = None) -> list[EmbeddedChunk]:
        """Embed in batches of `batch_size`, at most `concurrency` batches at a time, retrying transients."""
        retry = retry or Retrier()
        batches = [chunks[i : i + self.batch_size] for i in range(0, len(chunks), self.batch_size)]

        def run(batch: Sequence[Chunk]) -> list[list[float]]:
            texts = [embedding_text(c) for c in batch]
            return retry.call(lambda: self.embedder.embed_documents(texts), "embedding")

        if self.concurrency == 1 or len(batches) == 1:
            vectors = [v for batch in batches for v in run(batch)]
        else:
            vectors = [v for result in self._executor().map(run, batches) for v in result]
        return [EmbeddedChunk(chunk=c, vector=tuple(v)) for c, v in zip(chunks, vectors, strict=True)]

    def split(self, document: Document) -> list[Chunk]:
        chunks = self.chunker.split(document)
        if len(chunks) > self.max_chunks_per_document:
            raise PermanentIngestError(
                f"{document.document_id}: {len(chunks)} chunks is over the "
                f"{self.max_chunks_per_document}-chunk limit per document"
            )
        return chunks

    def index(
        self, document: Document, retry: Retrier | None = None, limits: WorkLimits | None = None
    ) -> IndexResult:
        retry = retry or Retrier()
        limits = limits or WorkLimits()
        chunks = self.split(document)
        present = retry.call(
            lambda: self.backend.chunk_ids_for_document(document.document_id), "read chunk ids"
        )
        wanted = {c.chunk_id for c in chunks}
        missing = [c for c in chunks if c.chunk_id not in present]
        embedded = self._write_waves(missing, retry, limits)
        ids = tuple(c.chunk_id for c in chunks)
        if embedded < len(missing):
            return IndexResult(document.document_id, ids, embedded, 0, complete=False)
        # New chunks are written before stale ones go, so a reader never sees the document vanish.
        stale = sorted(present - wanted)
        if stale:
            retry.call(lambda: self.backend.delete_chunks(stale), "delete stale chunks")
        return IndexResult(document.document_id, ids, embedded, len(stale))

    def _write_waves(self, missing: list[Chunk], retry: Retrier, limits: WorkLimits) -> int:
        wave = self.batch_size * self.concurrency
        done = 0
        last_wave_seconds = 0.0
        while done < len(missing):
            if limits.max_new_chunks is not None and done >= limits.max_new_chunks:
                break
            if done and retry.remaining < limits.reserve_seconds + last_wave_seconds:
                break
            size = wave if limits.max_new_chunks is None else min(wave, limits.max_new_chunks - done)
            part = missing[done : done + size]
            started = self._clock()
            items = self.embed(part, retry)
            retry.call(lambda items=items: self.backend.upsert(items), "write chunks")  # type: ignore[misc]
            last_wave_seconds = self._clock() - started
            done += len(part)
        return done

    def delete(self, document_id: str, retry: Retrier | None = None) -> int:
        retry = retry or Retrier()
        stale = sorted(retry.call(lambda: self.backend.chunk_ids_for_document(document_id), "read chunk ids"))
        if stale:
            retry.call(lambda: self.backend.delete_chunks(stale), "delete chunks")
        return len(stale)
