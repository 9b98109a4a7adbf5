from __future__ import annotations

from service.ingest.indexer import Indexer
from service.search.local import LocalSearchBackend
from tests.factories import HashingEmbedder, make_document


def long_text(version: str, sentences: int) -> str:
    return " ".join(f"Paragraph {i} of version {version} covers topic number {i}." for i in range(sentences))


def test_reindexing_an_unchanged_document_embeds_nothing(
    indexer: Indexer, embedder: HashingEmbedder, backend: LocalSearchBackend
) -> None:
    # Given an indexed document
    document = make_document(text=long_text("a", 40))
    first = indexer.index(document)
    calls = embedder.embedded_texts
    # When the same document is indexed again (a duplicate delivery)
    second = indexer.index(document)
    # Then no embedding call is made and the index holds one copy
    assert embedder.embedded_texts == calls
    assert second.embedded == 0
    assert backend.count() == len(first.chunk_ids)


def test_a_changed_document_loses_every_stale_chunk_beyond_a_page_of_ten(
    indexer: Indexer, backend: LocalSearchBackend
) -> None:
    # Given a document of many more than 10 chunks
    first = indexer.index(make_document(text=long_text("old", 200)))
    assert len(first.chunk_ids) > 25
    # When it changes to a short version
    second = indexer.index(make_document(text="A short replacement text about something new."))
    # Then only the new chunks remain
    assert backend.chunk_ids_for_document("doc-1") == set(second.chunk_ids)
    assert second.removed == len(first.chunk_ids)


def test_delete_removes_all_chunks(indexer: Indexer, backend: LocalSearchBackend) -> None:
    indexer.index(make_document(text=long_text("x", 120)))
    indexer.index(make_document("other", text="Another document stays."))
    removed = indexer.delete("doc-1")
    assert removed > 10
    assert backend.chunk_ids_for_document("doc-1") == set()
    assert backend.count() == 1
