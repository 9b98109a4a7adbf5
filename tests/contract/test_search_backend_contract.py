"""The `SearchBackend` contract: every backend in `backend_factory` must pass every test here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import pytest

from service.models import SearchFilters, SearchHit
from service.search.protocol import DimensionMismatchError, SearchBackend
from tests.contract.chunks import DIMENSION, EMBEDDER, embedded
from tests.contract.conftest import BackendFactory
from tests.factories import DEFAULT_READER, HashingEmbedder


def ids(hits: Sequence[SearchHit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# -- index lifecycle --------------------------------------------------------------------------------


def test_ensure_index_is_idempotent_and_keeps_data(backend_factory: BackendFactory) -> None:
    # Given an index that holds one chunk
    backend = backend_factory.backend()
    backend.upsert([embedded("c1", "The quick brown fox")])

    # When ensure_index runs again, on the same and on a new backend for the same alias
    backend.ensure_index()
    again = backend_factory.backend()
    again.ensure_index()

    # Then nothing was recreated: the chunk is still there, and the dimension is the index's
    assert backend.count() == 1
    assert again.count() == 1
    assert again.dimension == DIMENSION
    backend.ping()


def test_dimension_mismatch_refuses_to_start_and_says_reindex(backend_factory: BackendFactory) -> None:
    # Given an index built for 64-dimensional vectors
    backend_factory.backend(DIMENSION).upsert([embedded("c1", "The quick brown fox")])

    # When a backend for a 32-dimensional embedder opens the same alias
    other = backend_factory.backend(32, ensure=False)
    with pytest.raises(DimensionMismatchError, match="reindex") as caught:
        other.ensure_index()

    # Then the error names both sizes and the backend reports the index's real dimension
    assert caught.value.index_dimension == DIMENSION
    assert caught.value.embedder_dimension == 32
    assert other.dimension == DIMENSION


def test_wrong_vector_size_is_rejected_before_anything_is_written(search_backend: SearchBackend) -> None:
    # Given a batch whose second chunk has a vector of the wrong size
    good = embedded("c1", "The quick brown fox")
    bad = embedded("c2", "A lazy dog", embedder=HashingEmbedder(DIMENSION // 2))

    # When it is upserted, then it is refused
    with pytest.raises(ValueError, match="c2"):
        search_backend.upsert([good, bad])

    # And not even the good chunk was written, then or by a later write
    search_backend.upsert([embedded("c3", "Another chunk")])
    assert search_backend.chunk_ids_for_document("doc-1") == {"c3"}


# -- writes -----------------------------------------------------------------------------------------


def test_upsert_then_bm25_finds_the_chunk_with_a_marked_snippet(search_backend: SearchBackend) -> None:
    # Given two chunks with all their metadata
    target = embedded(
        "c1",
        "Foxes were jumping over the <fence> & the lazy dog.",
        document_id="guide",
        position=3,
        title="Field notes",
        source="s3://bucket/guide.md",
        tags=("animals", "notes"),
        published=date(2024, 5, 17),
    )
    search_backend.upsert([target, embedded("c2", "Deploy the stack with Pulumi.", position=1)])

    # When a query uses other word forms of the chunk's words
    hits = search_backend.bm25("jumped fox", 10, scope=DEFAULT_READER)

    # Then English stemming finds it, with every field round-tripped
    assert ids(hits) == ["c1"]
    hit = hits[0]
    assert (hit.document_id, hit.position, hit.title, hit.source) == (
        "guide",
        3,
        "Field notes",
        target.chunk.source,
    )
    assert (hit.tags, hit.published, hit.text) == (("animals", "notes"), date(2024, 5, 17), target.chunk.text)
    assert hit.score > 0
    # And the snippet marks the matched words and escapes the text's HTML
    assert "<mark>Foxes</mark>" in hit.snippet
    assert "<mark>jumping</mark>" in hit.snippet
    assert "&lt;fence&gt; &amp;" in hit.snippet
    assert "<fence>" not in hit.snippet


def test_bm25_ranks_better_matches_first_and_honours_k(search_backend: SearchBackend) -> None:
    # Given chunks that mention "pulumi" three times, once, and not at all
    search_backend.upsert(
        [
            embedded("once", "Pulumi deploys the stack to the account in one region."),
            embedded("thrice", "Pulumi, Pulumi and Pulumi again."),
            embedded("never", "Nothing to see here at all."),
        ]
    )

    # When searching with k=1 and k=10
    top = search_backend.bm25("pulumi", 1, scope=DEFAULT_READER)
    all_hits = search_backend.bm25("pulumi", 10, scope=DEFAULT_READER)

    # Then the denser match ranks first, scores descend, and k caps the hits
    assert ids(top) == ["thrice"]
    assert ids(all_hits) == ["thrice", "once"]
    assert all_hits[0].score >= all_hits[1].score


def test_snippet_falls_back_to_the_escaped_start_of_the_text(search_backend: SearchBackend) -> None:
    # Given a long chunk whose only match is in its title
    text = "<p>" + "word " * 100
    search_backend.upsert([embedded("c1", text, title="Kubernetes")])

    # When the title word is searched
    hits = search_backend.bm25("kubernetes", 5, scope=DEFAULT_READER)

    # Then the snippet is the escaped text start, cut at 240 characters with an ellipsis
    assert ids(hits) == ["c1"]
    assert hits[0].snippet.startswith("&lt;p&gt;word word")
    assert hits[0].snippet.endswith("…")
    assert "<mark>" not in hits[0].snippet


def test_english_stop_words_alone_match_nothing(search_backend: SearchBackend) -> None:
    # Given a chunk full of stop words
    search_backend.upsert([embedded("c1", "The cat sat on the mat, and it was to be.")])
    # When the query holds nothing but stop words, then nothing matches (and nothing fails)
    assert search_backend.bm25("the and to it", 10, scope=DEFAULT_READER) == []
    # And a real word still does
    assert ids(search_backend.bm25("the cat", 10, scope=DEFAULT_READER)) == ["c1"]


def test_stemming_is_porter2_on_every_backend(
    backend_factory: BackendFactory, search_backend: SearchBackend
) -> None:
    backend_factory.require_porter2()
    # Given words that Porter stems alike ("gener") and Porter2 (Snowball English) does not
    search_backend.upsert(
        [
            embedded("generous", "She gave generously to the library."),
            embedded("general", "The general rode ahead."),
        ]
    )
    # Then each query finds only its own word's chunk, as the local engine does
    assert ids(search_backend.bm25("general", 10, scope=DEFAULT_READER)) == ["general"]
    assert ids(search_backend.bm25("generous", 10, scope=DEFAULT_READER)) == ["generous"]


def test_a_query_without_words_finds_nothing(search_backend: SearchBackend) -> None:
    search_backend.upsert([embedded("c1", "The quick brown fox")])
    assert search_backend.bm25("?! --", 10, scope=DEFAULT_READER) == []


def test_upserting_the_same_chunk_twice_keeps_one_copy(search_backend: SearchBackend) -> None:
    # Given a chunk that is upserted, then upserted again with new text
    search_backend.upsert([embedded("c1", "original wording about zebras")])
    search_backend.upsert([embedded("c1", "revised wording about giraffes")])

    # Then one copy exists, and it is the new one
    assert search_backend.count() == 1
    assert search_backend.bm25("zebras", 10, scope=DEFAULT_READER) == []
    assert ids(search_backend.bm25("giraffes", 10, scope=DEFAULT_READER)) == ["c1"]


def test_delete_chunks_removes_them_and_ignores_unknown_ids(search_backend: SearchBackend) -> None:
    # Given three chunks of one document
    search_backend.upsert([embedded(f"c{i}", f"chunk number {i} about otters", position=i) for i in range(3)])

    # When two are deleted along with an id that never existed
    search_backend.delete_chunks(["c0", "c2", "never-existed"])
    search_backend.delete_chunks([])

    # Then only the third remains, for every read path
    assert search_backend.count() == 1
    assert search_backend.chunk_ids_for_document("doc-1") == {"c1"}
    assert ids(search_backend.bm25("otters", 10, scope=DEFAULT_READER)) == ["c1"]


def test_chunk_ids_for_document_returns_every_id_past_the_default_page(search_backend: SearchBackend) -> None:
    # Given a document with 31 chunks (more than the engines' default of 10 hits,
    # and several of the test page size) beside another document
    many = [embedded(f"big-{i:02d}", f"part {i}", document_id="big", position=i) for i in range(31)]
    search_backend.upsert([*many, embedded("small-0", "other", document_id="small")])

    # When its chunk ids are listed
    found = search_backend.chunk_ids_for_document("big")

    # Then all of them come back, and no other document's
    assert found == {f"big-{i:02d}" for i in range(31)}
    assert search_backend.chunk_ids_for_document("small") == {"small-0"}
    assert search_backend.chunk_ids_for_document("absent") == set()


def test_count_follows_writes(search_backend: SearchBackend) -> None:
    assert search_backend.count() == 0
    search_backend.upsert([embedded(f"c{i}", f"text {i}", position=i) for i in range(5)])
    assert search_backend.count() == 5
    search_backend.delete_chunks(["c0"])
    assert search_backend.count() == 4


# -- filters ----------------------------------------------------------------------------------------

FILTER_CASES = [
    pytest.param(SearchFilters(source="s3://docs/guide/a.md"), {"a"}, id="source-exact"),
    pytest.param(SearchFilters(source="s3://docs/guide/"), set(), id="source-exact-is-not-prefix"),
    pytest.param(SearchFilters(source="s3://docs/guide/*"), {"a", "b"}, id="source-prefix"),
    pytest.param(SearchFilters(tags=("guide", "aws")), {"a"}, id="tags-all"),
    pytest.param(SearchFilters(tags=("aws",)), {"a", "c"}, id="tags-one"),
    pytest.param(
        SearchFilters(date_from=date(2024, 1, 10), date_to=date(2024, 2, 9)), {"a"}, id="date-range"
    ),
    pytest.param(SearchFilters(date_from=date(2024, 2, 10)), {"b"}, id="date-from-inclusive"),
    pytest.param(SearchFilters(date_to=date(2024, 1, 10)), {"a"}, id="date-to-inclusive"),
    pytest.param(
        SearchFilters(source="s3://docs/*", tags=("guide",), date_from=date(2024, 2, 1)), {"b"}, id="all"
    ),
]


def _filter_corpus(backend: SearchBackend) -> None:
    backend.upsert(
        [
            embedded(
                "a",
                "shared words about buckets",
                source="s3://docs/guide/a.md",
                tags=("guide", "aws"),
                published=date(2024, 1, 10),
            ),
            embedded(
                "b",
                "shared words about queues",
                source="s3://docs/guide/b.md",
                tags=("guide",),
                published=date(2024, 2, 10),
            ),
            embedded("c", "shared words about tables", source="https://example.com/c", tags=("aws",)),
        ]
    )


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_bm25_filters(search_backend: SearchBackend, filters: SearchFilters, expected: set[str]) -> None:
    # Given three chunks with different sources, tags and dates
    _filter_corpus(search_backend)
    # When searching with a filter, then exactly the matching chunks come back
    assert set(ids(search_backend.bm25("shared words", 10, filters, scope=DEFAULT_READER))) == expected


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_knn_filters(
    backend_factory: BackendFactory, search_backend: SearchBackend, filters: SearchFilters, expected: set[str]
) -> None:
    backend_factory.require_knn()
    # Given three chunks with different sources, tags and dates
    _filter_corpus(search_backend)
    # When a k-NN search is filtered, then exactly the matching chunks come back (k is not a cap here)
    assert (
        set(ids(search_backend.knn(EMBEDDER.embed_query("shared words"), 10, filters, scope=DEFAULT_READER)))
        == expected
    )


# -- vectors ----------------------------------------------------------------------------------------


def test_knn_returns_the_nearest_by_cosine_with_the_similarity_as_score(
    backend_factory: BackendFactory, search_backend: SearchBackend
) -> None:
    backend_factory.require_knn()
    # Given chunks about different things
    texts = {
        "fox": "the quick brown fox jumps over the lazy dog",
        "deploy": "deploy the pulumi stack to the staging account",
        "cook": "simmer the tomato sauce for twenty minutes",
        "mixed": "the fox watched the pulumi deploy",
    }
    search_backend.upsert([embedded(chunk_id, text) for chunk_id, text in texts.items()])
    query = EMBEDDER.embed_query("quick brown fox jumps")

    # When searching by vector
    hits = search_backend.knn(query, 3, highlight="quick fox", scope=DEFAULT_READER)

    # Then the nearest comes first, k caps the hits, and each score is the cosine similarity
    assert len(hits) == 3
    assert hits[0].chunk_id == "fox"
    for hit in hits:
        expected = cosine(query, EMBEDDER.embed_query(texts[hit.chunk_id]))
        assert hit.score == pytest.approx(expected, abs=1e-3)
        assert -1.0 <= hit.score <= 1.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # And the highlight text marks the snippet
    assert "<mark>quick</mark>" in hits[0].snippet
    assert "<mark>fox</mark>" in hits[0].snippet


def test_knn_without_highlight_text_gives_the_text_start(
    backend_factory: BackendFactory, search_backend: SearchBackend
) -> None:
    backend_factory.require_knn()
    search_backend.upsert([embedded("c1", "Otters & <beavers> build dams")])
    hits = search_backend.knn(EMBEDDER.embed_query("otters"), 5, scope=DEFAULT_READER)
    assert ids(hits) == ["c1"]
    assert hits[0].snippet == "Otters &amp; &lt;beavers&gt; build dams"


def test_knn_identical_vector_scores_one(
    backend_factory: BackendFactory, search_backend: SearchBackend
) -> None:
    backend_factory.require_knn()
    chunk = embedded("c1", "exactly this text")
    search_backend.upsert([chunk, embedded("c2", "something else entirely")])
    hits = search_backend.knn(chunk.vector, 1, scope=DEFAULT_READER)
    assert ids(hits) == ["c1"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)


# -- index admin ------------------------------------------------------------------------------------


def test_index_admin_builds_a_version_switches_atomically_and_rolls_back(
    backend_factory: BackendFactory,
) -> None:
    # Given the live alias on its first version, holding one chunk
    live = backend_factory.backend()
    live.upsert([embedded("old", "the old corpus mentions walruses")])
    admin = backend_factory.admin()
    v1 = f"{backend_factory.alias}-v1"
    assert admin.alias == backend_factory.alias
    assert admin.current_version() == v1

    # When a new version is opened and filled
    v2 = admin.new_version_name()
    assert v2 == f"{backend_factory.alias}-v2"
    building = admin.open_version(v2)
    building.upsert([embedded("new", "the new corpus mentions narwhals")])

    # Then both versions exist, and readers of the alias still see the old one
    assert admin.versions() == [v1, v2]
    assert admin.current_version() == v1
    assert ids(backend_factory.backend().bm25("walruses", 5, scope=DEFAULT_READER)) == ["old"]
    assert building.count() == 1

    # When the alias is switched, then new readers see the new version only
    admin.switch(v2)
    assert admin.current_version() == v2
    reader = backend_factory.backend()
    assert ids(reader.bm25("narwhals", 5, scope=DEFAULT_READER)) == ["new"]
    assert reader.bm25("walruses", 5, scope=DEFAULT_READER) == []
    assert admin.new_version_name() == f"{backend_factory.alias}-v3"

    # When rolled back, then the alias reads the first version again
    assert admin.rollback() == v1
    assert admin.current_version() == v1
    assert ids(backend_factory.backend().bm25("walruses", 5, scope=DEFAULT_READER)) == ["old"]

    # And there is nothing further to roll back to
    with pytest.raises(ValueError, match="roll back"):
        admin.rollback()


def test_index_admin_refuses_to_switch_to_a_missing_version(backend_factory: BackendFactory) -> None:
    backend_factory.backend()
    admin = backend_factory.admin()
    with pytest.raises(ValueError, match="does not exist"):
        admin.switch(f"{backend_factory.alias}-v9")
    assert admin.current_version() == f"{backend_factory.alias}-v1"


def test_index_admin_on_an_alias_that_does_not_exist_yet(backend_factory: BackendFactory) -> None:
    admin = backend_factory.admin()
    assert admin.current_version() is None
    assert admin.versions() == []
    assert admin.new_version_name() == f"{backend_factory.alias}-v1"
