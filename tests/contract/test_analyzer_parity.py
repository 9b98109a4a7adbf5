"""Analyzer and BM25 ranking parity: each engine makes the local engine's tokens and rankings.

The local engine (tantivy) is the reference. Each cluster engine analyses the corpus with
its index's `rag_english` analyzer (`_analyze`), and ranks one small collection for a
few queries; both must match the local engine. Runs on osmem here and on OpenSearch and
Elasticsearch in CI (`backend_factory`).
"""

from __future__ import annotations

import itertools

import pytest
import tantivy

from service.search.local import analyzer
from service.search.mappings import MAX_TOKEN_BYTES
from service.search.protocol import SearchBackend
from tests.contract.chunks import embedded
from tests.contract.conftest import OSMEM_STAND_INS, BackendFactory
from tests.factories import DEFAULT_READER

REFERENCE = "the local engine is the reference these tests compare every other engine with"

# Strings where a tokenizer, the long-token rule, the stop list or the stemmer could differ.
CORPUS: dict[str, str] = {
    "paths": "Edit config.yaml and docs/a.md, then run ./scripts/build-all.sh --release",
    "windows path": r"C:\Program Files\rag_platform\bin\ragctl.exe",
    "urls and email": "See https://example.com/docs?page=2#top or mail ops@example.org",
    "versions": "Upgrade from v1.2.3 to 2.19.1-rc1; python3.11 and ES 8.17.4",
    "possessives and contractions": "The fox's den isn't the foxes' den; don't, won't, can't",
    "identifiers": "foo_bar fooBar FOO-BAR foo.bar __init__ snake_case_name",
    "numbers": "1,000,000 3.14159 0x1F 42nd 1e10 -7 ½ ² ③",
    "stop words and stems": "The quick brown foxes were jumping generously over the lazy dogs' kennels",
    "accents": "Naïve café résumé Ångström Straße façade coöperate",
    "combining marks": "cafe\u0301 nai\u0308ve",
    "greek and cyrillic": "ΟΔΟΣ Ελληνικά Москва достопримечательность",
    "cjk": "東京都は日本の首都です。中文分词测试 한국어 텍스트",
    "indic": "हिन्दी भाषा தமிழ்",
    "arabic and hebrew": "اللغة العربية עִבְרִית",
    "emoji and symbols": "deploy 🚀 now ✓ done — “quoted” «guillemets» ©2026",
    "long ascii tokens": "x" * 39 + " " + "y" * 40 + " " + "z" * 200 + " sha256:" + "a1" * 32,
    "mixed scripts": "Ⓐ circled ⓑ and 𝐁𝐨𝐥𝐝 mathematical letters",
}
# Tokens whose UTF-8 length differs from their character count, around the 40-byte limit.
MULTIBYTE_LONG: dict[str, str] = {
    "cyrillic near 40 bytes": "ж" * 19 + " " + "ж" * 20 + " " + "ж" * 21,
    "cjk near 40 bytes": "漢" * 13 + " " + "漢" * 14,
    "accented near 40 bytes": "é" * 19 + "x " + "é" * 20,
    "astral near 40 bytes": "𝐀" * 9 + "abc " + "𝐀" * 10,
}
OSMEM_CHARS = (
    "osmem-server has no predicate_token_filter, so its indexes count characters instead of "
    "bytes (OsmemEngine); the byte rule runs on OpenSearch and Elasticsearch in CI"
)

OSMEM_RANKING = (
    "osmem-server's search does not follow its own _analyze: _analyze splits 'config.yaml', "
    "yet a search for 'yaml' finds nothing and 'lazy dog' matches chunks with neither word; "
    "ranking parity runs on OpenSearch and Elasticsearch in CI"
)


def local_tokens(text: str) -> list[str]:
    return list(analyzer().analyze(text))


def counts_bytes(text: str) -> bool:
    """Whether a word of `text` is under 40 characters but 40 bytes or more: only bytes tell."""
    words = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).build().analyze(text)
    return any(len(word) < MAX_TOKEN_BYTES <= len(word.encode()) for word in words)


def _require_cluster(factory: BackendFactory) -> None:
    if factory.kind == "local":
        pytest.skip(REFERENCE)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_engine_analyzer_makes_the_local_engines_tokens(backend_factory: BackendFactory, name: str) -> None:
    _require_cluster(backend_factory)
    # Given an index built with the shipped mapping
    backend_factory.backend()

    # When the engine and tantivy analyse the same tricky string
    text = CORPUS[name]
    if backend_factory.kind == "osmem" and counts_bytes(text):
        pytest.skip(OSMEM_CHARS)

    # Then they make the same tokens in the same order
    assert backend_factory.analyze(text) == local_tokens(text)


@pytest.mark.parametrize("name", sorted(MULTIBYTE_LONG))
def test_long_tokens_are_measured_in_utf8_bytes(backend_factory: BackendFactory, name: str) -> None:
    _require_cluster(backend_factory)
    text = MULTIBYTE_LONG[name]
    assert counts_bytes(text)
    if backend_factory.kind == "osmem":
        pytest.skip(OSMEM_CHARS)
    backend_factory.backend()

    # Then the engine keeps exactly the tokens under 40 bytes, as tantivy does
    tokens = backend_factory.analyze(text)
    assert tokens == local_tokens(text)
    assert all(len(token.encode()) < 40 for token in tokens)


def test_the_local_engine_drops_tokens_of_40_bytes_not_40_characters() -> None:
    # Given words of 20 two-byte letters (40 bytes) and 19 (38 bytes)
    # Then the reference drops the first: parity means counting bytes
    assert local_tokens("ж" * 20) == []
    assert local_tokens("ж" * 19) == ["ж" * 19]


# -- ranking ------------------------------------------------------------------------------------

COLLECTION: dict[str, tuple[str, str]] = {
    "d01": ("Deploying", "Run pulumi up to deploy the stack; the deploy creates the search domain."),
    "d02": ("Configuration", "Settings live in config.yaml; every key in config.yaml has a default."),
    "d03": ("Search engines", "OpenSearch and Elasticsearch index chunks; the local engine uses tantivy."),
    "d04": ("Versions", "The platform supports OpenSearch 2.19 and Elasticsearch 8.17 clusters."),
    "d05": ("Foxes", "The quick brown fox jumps over the lazy dog; foxes are quick."),
    "d06": ("Dogs", "A lazy dog sleeps all day; dogs and foxes rarely meet."),
    "d07": ("Reindexing", "Reindex builds a new index version and moves the alias atomically."),
    "d08": ("Aliases", "The read alias points at one index version; rollback moves the alias back."),
    "d09": ("Retries", "Throttled requests are retried with backoff within the time budget."),
    "d10": ("Budgets", "API Gateway allows 29 seconds; the retry budget must fit inside it."),
    "d11": ("Paths", "Documents under s3://docs/guide/ are ingested; a.md and b.md are guides."),
    "d12": ("Queue", "The ingest queue feeds the worker; poison messages reach the dead-letter queue."),
    "d13": ("Workers", "Each worker embeds chunks and writes them to the search index."),
    "d14": ("Embeddings", "MiniLM makes 384-dimensional vectors; Titan makes 1024-dimensional ones."),
    "d15": ("YAML", "YAML files such as stack.yaml describe each stack's settings."),
}
QUERIES = (
    "yaml",
    "config",
    "alias index version",
    "quick foxes",
    "lazy dog",
    "retry budget seconds",
    "opensearch elasticsearch",
    "queue worker",
    "md",
)
# BM25's k1 on both sides (tantivy's constant, Elasticsearch's and OpenSearch's default).
BM25_K1 = 1.2
# Scores within this relative distance are ties: tantivy and Lucene encode field lengths
# alike but add up floats in different orders.
TIE = 1e-2


def _fill(backend: SearchBackend) -> None:
    backend.upsert(
        [
            embedded(chunk_id, text, document_id=chunk_id, title=title)
            for chunk_id, (title, text) in COLLECTION.items()
        ]
    )


@pytest.fixture
def local_backend(tmp_path_factory: pytest.TempPathFactory) -> SearchBackend:
    from service.search.local import LocalSearchBackend
    from tests.contract.chunks import DIMENSION

    backend = LocalSearchBackend(tmp_path_factory.mktemp("reference"), DIMENSION)
    _fill(backend)
    return backend


@pytest.mark.parametrize("query", QUERIES)
def test_bm25_top10_matches_the_local_engine(
    backend_factory: BackendFactory, local_backend: SearchBackend, query: str
) -> None:
    _require_cluster(backend_factory)
    if backend_factory.kind == "osmem":
        pytest.skip(OSMEM_RANKING)
    # Given the same collection locally and on the engine
    engine = backend_factory.backend()
    _fill(engine)

    # When both rank it for the query
    expected = local_backend.bm25(query, 10, scope=DEFAULT_READER)
    found = engine.bm25(query, 10, scope=DEFAULT_READER)

    # Then they return the same chunks, in the same order up to score ties
    assert expected, f"the collection should match {query!r}"
    assert {hit.chunk_id for hit in found} == {hit.chunk_id for hit in expected}
    local_score = {hit.chunk_id: hit.score for hit in expected}
    for higher, lower in itertools.pairwise(found):
        a, b = local_score[higher.chunk_id], local_score[lower.chunk_id]
        assert a >= b * (1 - TIE), f"{query!r}: {higher.chunk_id} ranked above {lower.chunk_id} ({a} < {b})"
    # And the scores agree up to BM25's constant (k1 + 1) factor: tantivy keeps it in the numerator,
    # Lucene dropped it in 8.0 (LUCENE-8563), which scales every score alike and changes no order
    for hit in found:
        assert hit.score * (1 + BM25_K1) == pytest.approx(local_score[hit.chunk_id], rel=0.05)


@pytest.mark.parametrize(
    ("text", "query"),
    [("Edit config.yaml first", "yaml"), ("Call foo_bar()", "bar"), ("Since v1.2 it works", "v1")],
)
def test_bm25_finds_words_inside_paths_and_identifiers(
    backend_factory: BackendFactory, text: str, query: str
) -> None:
    if backend_factory.kind == "osmem":
        pytest.skip(OSMEM_STAND_INS)
    # Given a chunk whose word sits inside a file name or identifier
    backend = backend_factory.backend()
    backend.upsert([embedded("c1", text)])

    # When the word alone is searched, then every engine finds it, as the local engine does
    assert [hit.chunk_id for hit in backend.bm25(query, 5, scope=DEFAULT_READER)] == ["c1"]
