"""Index settings, mappings and request bodies for OpenSearch and Elasticsearch, as code.

Everything here is a pure function of its arguments, so the unit tests pin the
exact JSON the engines receive (`tests/unit/test_search_bodies.py`) and the
contract suite checks what the engines do with it (`tests/contract/`).

Versioning: `MAPPING_VERSION` is written to each index's `_meta`. Bump it
whenever a field, analyzer or vector method changes; an index built with an
older version keeps working, and `ensure_index` logs that `ragctl reindex`
will move it to the new mapping. Mappings of existing fields cannot be changed
in place, which is why versions live in separate concrete indexes behind the
read alias (see `service.search.admin`).

Field semantics mirror the local engine (`service.search.local`):
`title`/`text` are English text with the local engine's analyzer, `chunk_id`, `document_id`, `source`
and `tags` are exact keywords, `published` is a day, `position` an integer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from service.access import DEFAULT_WORKSPACE, AccessScope
from service.models import EmbeddedChunk, SearchFilters, SearchHit
from service.search import token_chars

# v2: pattern tokenizer and byte-counted long-token filter (same tokens as the local engine).
# v3: `workspace`, `allowed_users`, `allowed_groups` and `restricted` (issue 15).
MAPPING_VERSION = 3
VECTOR_FIELD = "vector"
TEXT_FIELDS = ("title", "text")
ANALYZER = "rag_english"
# Same snippet length as the local engine's `_SNIPPET_CHARS`.
SNIPPET_CHARS = 240
MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"

# HNSW graph parameters, the engines' documented defaults made explicit so a
# change is a visible mapping change: m=16 links per node, ef_construction=100.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
# ES's `num_candidates` is capped at 10,000
# (https://www.elastic.co/docs/solutions/search/vector/knn#approximate-knn).
MAX_NUM_CANDIDATES = 10_000

# The BEIR lexical baseline: `multi_match` of type `best_fields` over title and
# text with `tie_breaker` 0.5
# (https://github.com/beir-cellar/beir/blob/main/beir/retrieval/search/lexical/elastic_search.py),
# which the local engine's `bm25` also implements (a tantivy disjunction-max query).
# best_fields scores a chunk by its better field plus half the other, so a
# title match lifts a chunk without drowning body matches, close to the local
# engine's sum over both fields.
MULTI_MATCH_TYPE = "best_fields"
TIE_BREAKER = 0.5

_WORD = re.compile(r"\w+", re.UNICODE)
_VERSION_NAME = r"-v(\d+)$"


# -- index bodies ---------------------------------------------------------------------------------


def _meta(dimension: int) -> dict[str, Any]:
    return {"mapping_version": MAPPING_VERSION, "dimension": dimension, "created_by": "rag-platform"}


# tantivy's `RemoveLongFilter` drops tokens of 40 BYTES or more of UTF-8 (`token.text.len()`,
# https://github.com/quickwit-oss/tantivy/blob/main/src/tokenizer/remove_long.rs). Lucene's
# `length` filter counts UTF-16 chars instead, so a 20-letter Cyrillic word or a 14-character
# CJK run (40+ bytes, 20 and 14 chars) would be dropped locally and kept on a cluster. The
# cluster counts bytes with a predicate script
# (https://docs.opensearch.org/latest/analyzers/token-filters/predicate-token-filter/,
# https://www.elastic.co/docs/reference/text-analysis/analysis-predicatefilter-tokenfilter).
# Bytes are also what Lucene limits: a term over 32,766 bytes fails the whole document
# ("immense term", `IndexWriter.MAX_TERM_LENGTH`,
# https://lucene.apache.org/core/9_12_0/core/org/apache/lucene/index/IndexWriter.html#MAX_TERM_LENGTH);
# the pattern tokenizer has no token length cap, so this filter is what keeps a 40 kB base64
# run from failing the bulk request.
MAX_TOKEN_BYTES = 40
LONG_TOKEN_FILTER = "rag_english_long"  # noqa: S105 - a filter name, not a secret
# UTF-8 length of the token from its UTF-16 chars: 1 byte below U+0080, 2 below U+0800, 4 per
# surrogate pair (2 + 2), 3 for the rest of the BMP. Painless, in the analysis predicate context
# (`token.term` is a CharSequence).
_UTF8_LENGTH_SCRIPT = (
    "CharSequence t = token.term; int n = 0; "
    "for (int i = 0; i < t.length(); ++i) { char c = t.charAt(i); "
    "if (c < 0x80) { n += 1; } else if (c < 0x800) { n += 2; } "
    "else if (c >= 0xD800 && c <= 0xDFFF) { n += 2; } else { n += 3; } } "
    "return n < {limit};"
)


def long_token_filter() -> dict[str, Any]:
    """Drops tokens of `MAX_TOKEN_BYTES` or more UTF-8 bytes, as tantivy's `remove_long` does."""
    return {
        "type": "predicate_token_filter",
        "script": {"source": _UTF8_LENGTH_SCRIPT.replace("{limit}", str(MAX_TOKEN_BYTES))},
    }


def analysis() -> dict[str, Any]:
    """`rag_english`: the local engine's `en_std` analyzer (`service.search.local.analyzer`), token for token.

    - Tokenizer: tantivy's simple tokenizer cuts at every character that is not
      alphanumeric in Rust's sense; the `pattern` tokenizer cuts at the same characters
      (`service.search.token_chars`). The `standard` tokenizer would keep `config.yaml`,
      `foo_bar`, `v1.2` and `fox's` whole, so "yaml" would find a chunk locally and not here
      (https://docs.opensearch.org/latest/analyzers/tokenizers/pattern/).
    - Tokens of 40 UTF-8 bytes or more dropped (`long_token_filter`), before lowercasing,
      as in tantivy.
    - Lowercase, Lucene's English stop words (`_english_`, the same 33 words as tantivy's
      English list), Snowball English (`porter2`) stemming. The built-in `english` analyzer
      stems with the older Porter algorithm ("generously" -> "gener" where Porter2 gives
      "generous")
      (https://www.elastic.co/docs/reference/text-analysis/analysis-stemmer-tokenfilter,
      https://docs.opensearch.org/latest/analyzers/token-filters/stemmer/).

    Known difference: tantivy lowercases with Rust's full Unicode mapping, Lucene one code point
    at a time, so "İ" (U+0130) becomes "i̇" locally and "i" here. `tests/contract/test_analyzer_parity.py`
    checks the rest against the engines' `_analyze`.
    """
    return {
        "tokenizer": {
            "rag_words": {"type": "pattern", "pattern": token_chars.separator_pattern(), "group": -1}
        },
        "filter": {
            LONG_TOKEN_FILTER: long_token_filter(),
            "rag_english_stop": {"type": "stop", "stopwords": "_english_"},
            "rag_english_stemmer": {"type": "stemmer", "language": "porter2"},
        },
        "analyzer": {
            ANALYZER: {
                "type": "custom",
                "tokenizer": "rag_words",
                "filter": [LONG_TOKEN_FILTER, "lowercase", "rag_english_stop", "rag_english_stemmer"],
            }
        },
    }


def _common_properties() -> dict[str, Any]:
    return {
        "chunk_id": {"type": "keyword"},
        "document_id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": ANALYZER},
        "text": {"type": "text", "analyzer": ANALYZER},
        "source": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "published": {"type": "date", "format": "strict_date"},
        "position": {"type": "integer"},
        # Access (issue 15): filtered on in every query, never scored.
        "workspace": {"type": "keyword"},
        "allowed_users": {"type": "keyword"},
        "allowed_groups": {"type": "keyword"},
        # True when the lists above limit who may read the chunk (false: anyone in the workspace).
        # An empty list is indistinguishable from a missing field to `terms`/`exists`, hence the flag.
        "restricted": {"type": "boolean"},
    }


def _with_alias(body: dict[str, Any], alias: str | None) -> dict[str, Any]:
    # Creating the index and its alias in one request means no reader ever sees
    # the alias missing (https://docs.opensearch.org/latest/im-plugin/index-alias/).
    if alias:
        body["aliases"] = {alias: alias_options()}
    return body


def alias_options() -> dict[str, Any]:
    """How the read alias points at its one index: that index takes the alias's writes.

    An alias over one index accepts writes without it, but once a second index joins the
    alias (a reindex adding before removing, or an operator's manual add) writes through it
    fail with "no write index is defined" unless one index is marked
    (https://www.elastic.co/docs/manage-data/data-store/aliases#write-index,
    https://docs.opensearch.org/latest/im-plugin/index-alias/).
    """
    return {"is_write_index": True}


def opensearch_index_body(dimension: int, alias: str | None = None) -> dict[str, Any]:
    """`PUT <index>` body for Amazon OpenSearch Service with the k-NN plugin.

    Engine choice: `lucene` HNSW with `cosinesimil`. Lucene applies metadata
    filters *during* the graph search ("efficient filtering", OpenSearch 2.4+),
    switching to exact search when the filter is selective, so a filtered
    query still returns k hits
    (https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/).
    It keeps vectors in the JVM page cache rather than native memory, which
    suits the small and medium domains this template deploys; faiss pays off
    at tens of millions of vectors or with quantization
    (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/).
    Faiss only accepts `cosinesimil` from 2.19, nmslib is deprecated.
    """
    properties = _common_properties()
    properties[VECTOR_FIELD] = {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        },
    }
    body: dict[str, Any] = {
        # `index.knn` turns on the k-NN codec for `knn_vector` fields
        # (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-vector/).
        "settings": {"index": {"knn": True, "number_of_shards": 1, "analysis": analysis()}},
        "mappings": {"dynamic": "strict", "_meta": _meta(dimension), "properties": properties},
    }
    return _with_alias(body, alias)


def elasticsearch_index_body(dimension: int, alias: str | None = None) -> dict[str, Any]:
    """`PUT <index>` body for Elasticsearch 8.14+/9.x.

    `index_options.type: hnsw` keeps full float vectors: since 8.14 the default
    is int8-quantized HNSW, whose scores only approximate cosine, and the
    contract promises cosine similarity like the local engine
    (https://www.elastic.co/docs/reference/elasticsearch/mapping-reference/dense-vector).
    """
    properties = _common_properties()
    properties[VECTOR_FIELD] = {
        "type": "dense_vector",
        "dims": dimension,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": "hnsw", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
    }
    body: dict[str, Any] = {
        "settings": {"index": {"number_of_shards": 1, "analysis": analysis()}},
        "mappings": {"dynamic": "strict", "_meta": _meta(dimension), "properties": properties},
    }
    return _with_alias(body, alias)


def mapped_dimension(mapping: Mapping[str, Any]) -> int | None:
    """The vector size in an index's `mappings` (OpenSearch `dimension`, Elasticsearch `dims`)."""
    field = mapping.get("properties", {}).get(VECTOR_FIELD, {})
    value = field.get("dimension", field.get("dims"))
    return int(value) if value is not None else None


# The fields v3 added: new fields only, so a v2 index gains them in place (PUT _mapping accepts
# new fields on an existing index; its documents simply lack them, which `scope_clauses` reads as
# open chunks of the default workspace) instead of refusing every write under `dynamic: strict`.
# https://docs.opensearch.org/latest/api-reference/index-apis/put-mapping/
ACCESS_FIELDS = ("workspace", "allowed_users", "allowed_groups", "restricted")
_UPGRADABLE_IN_PLACE = {2}


def upgrade_in_place_body(mapping: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `PUT <index>/_mapping` body that brings an index to `MAPPING_VERSION` without a
    reindex, keeping the rest of its `_meta` (which the request replaces whole); None when the
    index is current or needs `ragctl reindex`."""
    version = mapped_version(mapping) or 0
    if version not in _UPGRADABLE_IN_PLACE:
        return None
    properties = _common_properties()
    return {
        "_meta": {**mapping.get("_meta", {}), "mapping_version": MAPPING_VERSION},
        "properties": {name: properties[name] for name in ACCESS_FIELDS},
    }


def mapped_version(mapping: Mapping[str, Any]) -> int | None:
    value = mapping.get("_meta", {}).get("mapping_version")
    return int(value) if value is not None else None


def version_number(index: str, alias: str) -> int | None:
    """3 for `<alias>-v3`; None for any other name."""
    match = re.fullmatch(re.escape(alias) + _VERSION_NAME, index)
    return int(match.group(1)) if match else None


# -- documents --------------------------------------------------------------------------------------


def document(item: EmbeddedChunk) -> dict[str, Any]:
    """The `_source` stored for one chunk; `_id` is the chunk id, so re-indexing replaces it."""
    chunk = item.chunk
    source: dict[str, Any] = {
        **chunk.stored_fields(),
        "restricted": chunk.restricted,
        VECTOR_FIELD: list(item.vector),
    }
    if chunk.published is not None:
        source["published"] = chunk.published.isoformat()
    return source


def bulk_index_operations(index: str, items: Sequence[EmbeddedChunk]) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for item in items:
        operations.append({"index": {"_index": index, "_id": item.chunk.chunk_id}})
        operations.append(document(item))
    return operations


def permissions_fields(allowed_users: Sequence[str], allowed_groups: Sequence[str]) -> dict[str, Any]:
    """The fields a permissions-only change rewrites (a partial update: the vector stays)."""
    return {
        "allowed_users": sorted(allowed_users),
        "allowed_groups": sorted(allowed_groups),
        "restricted": bool(allowed_users or allowed_groups),
    }


def bulk_update_operations(
    index: str, chunk_ids: Sequence[str], fields: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Partial updates by id: only `fields` change, so no chunk is re-embedded
    (https://docs.opensearch.org/latest/api-reference/document-apis/bulk/)."""
    operations: list[dict[str, Any]] = []
    for chunk_id in chunk_ids:
        operations.append({"update": {"_index": index, "_id": chunk_id}})
        operations.append({"doc": dict(fields)})
    return operations


def bulk_delete_operations(index: str, chunk_ids: Sequence[str]) -> list[dict[str, Any]]:
    return [{"delete": {"_index": index, "_id": chunk_id}} for chunk_id in chunk_ids]


# -- queries ----------------------------------------------------------------------------------------


def has_terms(query: str) -> bool:
    """Whether the query holds any word; the local engine returns nothing for one without."""
    return _WORD.search(query) is not None


def filter_clauses(filters: SearchFilters | None) -> list[dict[str, Any]]:
    """Filter-context clauses (no scoring) with the local engine's semantics."""
    if filters is None or filters.is_empty():
        return []
    clauses: list[dict[str, Any]] = []
    if filters.source:
        if filters.source.endswith("*"):
            clauses.append({"prefix": {"source": filters.source[:-1]}})
        else:
            clauses.append({"term": {"source": filters.source}})
    # One term clause per tag: every tag must be present (a `terms` clause would mean any).
    clauses.extend({"term": {"tags": tag}} for tag in filters.tags)
    if filters.date_from or filters.date_to:
        bounds: dict[str, str] = {"format": "strict_date"}
        if filters.date_from:
            bounds["gte"] = filters.date_from.isoformat()
        if filters.date_to:
            bounds["lte"] = filters.date_to.isoformat()
        clauses.append({"range": {"published": bounds}})
    return clauses


def _missing(name: str) -> dict[str, Any]:
    return {"bool": {"must_not": [{"exists": {"field": name}}]}}


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def scope_clauses(scope: AccessScope) -> list[dict[str, Any]]:
    """What a caller may read, as filter clauses inside every query (issue 15): its one workspace,
    and of that only chunks open to the workspace or listing the caller's user or a group.

    Chunks written before mapping v3 carry neither field; they belong to the default workspace
    and are open to it, so an index not yet reindexed keeps today's behaviour there.
    """
    workspace: dict[str, Any] = {"term": {"workspace": scope.workspace}}
    if scope.workspace == DEFAULT_WORKSPACE:
        workspace = _any_of([workspace, _missing("workspace")])
    clauses = [workspace]
    if scope.bypass_document_permissions:
        return clauses
    readable: list[dict[str, Any]] = [{"term": {"restricted": False}}, _missing("restricted")]
    if scope.user:
        readable.append({"term": {"allowed_users": scope.user}})
    if scope.groups:
        readable.append({"terms": {"allowed_groups": sorted(scope.groups)}})
    clauses.append(_any_of(readable))
    return clauses


def count_body(scope: AccessScope) -> dict[str, Any]:
    """`_count` of the chunks `scope` may read."""
    return {"query": {"bool": {"filter": scope_clauses(scope)}}}


def highlight_body(highlight_query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One best fragment of `text`, HTML-encoded, query terms in <mark>.

    `encoder: html` escapes the text around the tags, as the local engine does
    (https://docs.opensearch.org/latest/search-plugins/searching-data/highlight/).
    Without `highlight_query` the engine highlights the terms of the main query.
    """
    field: dict[str, Any] = {"type": "unified", "fragment_size": SNIPPET_CHARS, "number_of_fragments": 1}
    if highlight_query is not None:
        field["highlight_query"] = dict(highlight_query)
    return {
        "pre_tags": [MARK_OPEN],
        "post_tags": [MARK_CLOSE],
        "encoder": "html",
        "fields": {"text": field},
    }


def _source_without_vector() -> dict[str, Any]:
    return {"excludes": [VECTOR_FIELD]}


def bm25_body(
    query: str, k: int, filters: SearchFilters | None = None, *, scope: AccessScope
) -> dict[str, Any]:
    """Lexical search: BEIR's multi_match in a bool query whose filters do not score.

    The user's text goes in as `multi_match.query`, which is analysed, never
    parsed as query syntax, so it needs no escaping.
    """
    match = {
        "multi_match": {
            "query": query,
            "type": MULTI_MATCH_TYPE,
            "fields": list(TEXT_FIELDS),
            "tie_breaker": TIE_BREAKER,
        }
    }
    return {
        "size": k,
        "track_total_hits": False,
        "query": {"bool": {"must": [match], "filter": [*scope_clauses(scope), *filter_clauses(filters)]}},
        "_source": _source_without_vector(),
        "highlight": highlight_body(),
    }


def _knn_highlight(highlight: str) -> dict[str, Any] | None:
    if not has_terms(highlight):
        return None
    return highlight_body({"match": {"text": {"query": highlight}}})


def opensearch_knn_body(
    vector: Sequence[float],
    k: int,
    filters: SearchFilters | None = None,
    highlight: str = "",
    *,
    scope: AccessScope,
) -> dict[str, Any]:
    """OpenSearch `knn` query with efficient filtering: the filter sits inside the knn clause.

    https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/
    """
    clause: dict[str, Any] = {"vector": list(vector), "k": k}
    # The access scope always sits in the filter: efficient filtering applies it during the search.
    clause["filter"] = {"bool": {"filter": [*scope_clauses(scope), *filter_clauses(filters)]}}
    body: dict[str, Any] = {
        "size": k,
        "track_total_hits": False,
        "query": {"knn": {VECTOR_FIELD: clause}},
        "_source": _source_without_vector(),
    }
    marks = _knn_highlight(highlight)
    if marks is not None:
        body["highlight"] = marks
    return body


def elasticsearch_knn_body(
    vector: Sequence[float],
    k: int,
    filters: SearchFilters | None = None,
    highlight: str = "",
    *,
    scope: AccessScope,
) -> dict[str, Any]:
    """Elasticsearch top-level `knn` search option; its `filter` is applied during the search.

    https://www.elastic.co/docs/solutions/search/vector/knn#knn-search-filter-example
    """
    clause: dict[str, Any] = {
        "field": VECTOR_FIELD,
        "query_vector": list(vector),
        "k": k,
        # More candidates per shard than k raises recall; 100 is ES's own floor in examples.
        "num_candidates": min(max(2 * k, 100), MAX_NUM_CANDIDATES),
    }
    clause["filter"] = [*scope_clauses(scope), *filter_clauses(filters)]
    body: dict[str, Any] = {
        "size": k,
        "track_total_hits": False,
        "knn": clause,
        "_source": _source_without_vector(),
    }
    marks = _knn_highlight(highlight)
    if marks is not None:
        body["highlight"] = marks
    return body


def chunk_ids_page_body(document_id: str, size: int, after: Sequence[Any] | None = None) -> dict[str, Any]:
    """One page of a document's chunk ids, in `chunk_id` order.

    A plain search returns 10 hits by default and `from`+`size` stops at
    10,000, so the ids are read with `search_after` on the unique `chunk_id`
    (https://docs.opensearch.org/latest/search-plugins/searching-data/paginate/,
    https://www.elastic.co/docs/reference/elasticsearch/rest-apis/paginate-search-results#search-after).
    """
    body: dict[str, Any] = {
        "size": size,
        "track_total_hits": False,
        "_source": False,
        "query": {"bool": {"filter": [{"term": {"document_id": document_id}}]}},
        "sort": [{"chunk_id": "asc"}],
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


# -- responses --------------------------------------------------------------------------------------


def cosine_from_score(score: float) -> float:
    """Cosine similarity from a k-NN `_score`, clamped to [-1, 1].

    Both engines turn cosine into a non-negative score as (1 + cos) / 2:
    OpenSearch `cosinesimil` scores (2 - d) / 2 with d = 1 - cos
    (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/),
    Elasticsearch `cosine` scores (1 + cosine) / 2
    (https://www.elastic.co/docs/reference/elasticsearch/mapping-reference/dense-vector#dense-vector-similarity).
    """
    return max(-1.0, min(1.0, 2.0 * score - 1.0))


def fallback_snippet(text: str) -> str:
    """The escaped start of the text, as the local engine shows when no term matched."""
    cut = text[:SNIPPET_CHARS]
    return html.escape(cut + ("…" if len(text) > SNIPPET_CHARS else ""))


def snippet(hit: Mapping[str, Any], text: str) -> str:
    fragments = hit.get("highlight", {}).get("text") or []
    if not fragments:
        return fallback_snippet(text)
    # The engines' HTML encoder also escapes "/" (as &#x2F;); Python's html.escape, used by the
    # local engine, does not. Both are safe in HTML text; this keeps snippets identical.
    return str(fragments[0]).replace("&#x2F;", "/")


def search_hit(hit: Mapping[str, Any], score: float) -> SearchHit:
    source = hit["_source"]
    text = str(source.get("text", ""))
    published = source.get("published")
    return SearchHit(
        chunk_id=str(source.get("chunk_id", hit.get("_id", ""))),
        document_id=str(source["document_id"]),
        title=str(source.get("title", "")),
        source=str(source.get("source", "")),
        text=text,
        snippet=snippet(hit, text),
        score=score,
        position=int(source.get("position", 0)),
        tags=tuple(source.get("tags") or ()),
        published=date.fromisoformat(published) if published else None,
    )
