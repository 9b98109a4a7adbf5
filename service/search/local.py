"""The local embedded engine: tantivy for BM25, filters and snippets; `VectorStore` for k-NN.

Why tantivy plus an exact vector log, and not LanceDB or SQLite FTS5 alone:
at 100k chunks on this 2-core machine, tantivy answers BM25 in 2 ms (p50),
SQLite FTS5 in 57 ms and LanceDB's FTS in 6 ms, while LanceDB's flat vector
search took 180 ms against 5 ms for a NumPy matrix product (README, "Local
engine"). Both stores persist under one directory and are written by one
process (the ingestion worker) and read by many.

BM25 analysis and query (the OpenSearch/Elasticsearch backends mirror this; see
docs/retrieval.md for the measurements behind it):

- Analyzer `en_std` on `title` and `text`: split on non-alphanumerics, drop tokens
  over 40 bytes, lowercase, remove Lucene's English stop set (the 33 words of
  Elasticsearch's `_english_`), Snowball English (Porter2) stemming. The cluster
  analyzer makes the same tokens (`service.search.mappings.analysis`, checked by
  `tests/contract/test_analyzer_parity.py`).
- Query: the user text reduced to plain words (never query syntax), OR-ed, as a
  best-fields disjunction over `title` and `text` with tie-breaker 0.5: the
  better field's BM25 score plus half the other's. That is Elasticsearch's
  `multi_match` `best_fields` with `tie_breaker: 0.5` (the BEIR Elasticsearch
  baseline). BM25 k1=1.2, b=0.75 (tantivy's fixed values, Elasticsearch's defaults).
"""

from __future__ import annotations

import html
import math
import re
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from service.access import DEFAULT_WORKSPACE, AccessScope
from service.models import Chunk, EmbeddedChunk, SearchFilters, SearchHit
from service.search.local_migration import WRITER_HEAP_BYTES, open_text_index
from service.search.protocol import DimensionMismatchError, SearchBackendError
from service.search.vector_store import Approximate, Keys, VectorStore, chunk_key

_SNIPPET_CHARS = 240
_WORD = re.compile(r"\w+", re.UNICODE)
ANALYZER = "en_std"
TIE_BREAKER = 0.5
TEXT_FIELDS = ("title", "text")


def analyzer() -> tantivy.TextAnalyzer:
    """lowercase + Lucene English stop words + Porter2: tantivy's `en_stem` with stop words removed."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


_QUERY_ANALYZER = analyzer()


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    # The chunk id's key (`vector_store.chunk_key`) as a fast field: a filtered k-NN lists the
    # chunks it may return from this column, without reading a stored document.
    builder.add_integer_field("chunk_key", stored=False, indexed=False, fast=True)
    builder.add_text_field("document_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("title", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("text", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("source", stored=True, tokenizer_name="raw")
    builder.add_text_field("tags", stored=True, tokenizer_name="raw")
    builder.add_date_field("published", stored=True, indexed=True, fast=True)
    builder.add_integer_field("position", stored=True, indexed=False)
    # Access (issue 15): the same fields and meaning as the cluster mapping (`mappings.scope_clauses`).
    builder.add_text_field("workspace", stored=True, tokenizer_name="raw")
    builder.add_text_field("allowed_users", stored=True, tokenizer_name="raw")
    builder.add_text_field("allowed_groups", stored=True, tokenizer_name="raw")
    builder.add_boolean_field("restricted", stored=True, indexed=True)
    return builder.build()


def _fields(chunk: Chunk) -> dict[str, Any]:
    fields = chunk.stored_fields()
    fields["chunk_key"] = chunk_key(chunk.chunk_id)
    fields["restricted"] = chunk.restricted
    if chunk.published is not None:
        fields["published"] = _as_datetime(chunk.published)
    return fields


def query_terms(text: str) -> list[str]:
    """Plain lower-case words: user text is never parsed as tantivy query syntax."""
    return [w.lower() for w in _WORD.findall(text)]


def searchable_terms(text: str) -> list[str]:
    """The query words the analyzer keeps. Stop words and over-long tokens alone parse to an
    empty query, which tantivy's searcher rejects ("Only excluding terms given"); such text
    matches nothing lexically, in BM25 and in the highlight of a k-NN search alike."""
    return [term for term in query_terms(text) if _QUERY_ANALYZER.analyze(term)]


class LocalSearchBackend:
    """A persistent index in `directory`: `text/` (tantivy) and `vectors.sqlite`."""

    def __init__(self, directory: Path, dimension: int, approximate: Approximate | None = None) -> None:
        self._directory = directory
        self._expected_dimension = dimension
        self._schema = _schema()
        self._lock = threading.RLock()
        self._writer: Any = None
        # An index written with an older schema (fields, or the older `en_stem` analyzer) is
        # migrated from its stored documents, which hold every field.
        self._index = open_text_index(
            directory, self._schema, _register_analyzer, lambda doc: _fields(_chunk_of(doc))
        )
        # `approximate`: an HNSW index beside the exact vectors, for millions of chunks.
        self._vectors = VectorStore(directory / "vectors.sqlite", dimension, approximate)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def dimension(self) -> int:
        return self._vectors.dimension

    def ensure_index(self) -> None:
        if self._vectors.dimension != self._expected_dimension:
            raise DimensionMismatchError(
                str(self._directory), self._vectors.dimension, self._expected_dimension
            )

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None
        self._vectors.close()

    # -- writes ---------------------------------------------------------------------------------

    def _get_writer(self) -> Any:
        if self._writer is None:
            try:
                self._writer = self._index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            except ValueError as error:  # another process holds the index lock
                raise SearchBackendError(
                    f"index is locked by another writer: {error}", transient=True
                ) from error
        return self._writer

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> None:
        if not chunks:
            return
        # Check every vector before touching the text index: a refused batch must leave no
        # uncommitted documents in the writer for the next commit to publish.
        for item in chunks:
            if len(item.vector) != self.dimension:
                raise ValueError(
                    f"vector for {item.chunk.chunk_id} has {len(item.vector)} dimensions, "
                    f"the index holds {self.dimension}"
                )
        with self._lock:
            writer = self._get_writer()
            for item in chunks:
                chunk = item.chunk
                writer.delete_documents_by_term("chunk_id", chunk.chunk_id)
                writer.add_document(tantivy.Document(**_fields(chunk)))
            # Vectors first: a crash between the two commits leaves vectors without text,
            # which searches skip, and the redelivered message rewrites both.
            self._vectors.write(((c.chunk.chunk_id, c.vector) for c in chunks), ())
            writer.commit()
        self._index.reload()

    def update_permissions(
        self, document_id: str, allowed_users: Sequence[str], allowed_groups: Sequence[str]
    ) -> int:
        # tantivy has no in-place update: each chunk's stored fields are re-added with the new
        # permissions. The vector log is not touched, so nothing is re-embedded.
        with self._lock:
            searcher = self._searcher()
            query = tantivy.Query.term_query(self._schema, "document_id", document_id)
            total = searcher.search(query, 1, count=True).count or 0
            docs = [searcher.doc(address) for _, address in searcher.search(query, max(total, 1)).hits]
            if not docs:
                return 0
            writer = self._get_writer()
            for doc in docs:
                chunk = _chunk_of(doc).model_copy(
                    update={
                        "allowed_users": tuple(sorted(allowed_users)),
                        "allowed_groups": tuple(sorted(allowed_groups)),
                    }
                )
                writer.delete_documents_by_term("chunk_id", chunk.chunk_id)
                writer.add_document(tantivy.Document(**_fields(chunk)))
            writer.commit()
        self._index.reload()
        return len(docs)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        with self._lock:
            writer = self._get_writer()
            for chunk_id in chunk_ids:
                writer.delete_documents_by_term("chunk_id", chunk_id)
            writer.commit()
            self._vectors.write((), chunk_ids)
        self._index.reload()

    # -- reads ----------------------------------------------------------------------------------

    def _searcher(self) -> Any:
        self._index.reload()
        return self._index.searcher()

    def chunk_ids_for_document(self, document_id: str) -> set[str]:
        searcher = self._searcher()
        query = tantivy.Query.term_query(self._schema, "document_id", document_id)
        total = searcher.search(query, 1, count=True).count or 0
        if total == 0:
            return set()
        hits = searcher.search(query, total).hits
        return {searcher.doc(address)["chunk_id"][0] for _, address in hits}

    def count(self, scope: AccessScope | None = None) -> int:
        searcher = self._searcher()
        if scope is None:
            return int(searcher.num_docs)
        query = self._with_scope(tantivy.Query.all_query(), scope)
        return int(searcher.search(query, 1, count=True).count or 0)

    def ping(self) -> None:
        self._searcher()
        self._vectors.refresh()

    def bm25(
        self, query: str, k: int, filters: SearchFilters | None = None, *, scope: AccessScope
    ) -> list[SearchHit]:
        terms = searchable_terms(query)
        if not terms:
            return []
        searcher = self._searcher()
        words = " ".join(terms)
        per_field = [self._index.parse_query(words, [name]) for name in TEXT_FIELDS]
        text_query = tantivy.Query.disjunction_max_query(per_field, TIE_BREAKER)
        final = self._with_scope(self._with_filters(text_query, filters), scope)
        hits = searcher.search(final, k).hits
        snippets = self._snippets(searcher, per_field[1])
        return [self._hit(searcher.doc(address), float(score), snippets) for score, address in hits]

    def knn(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        highlight: str = "",
        *,
        scope: AccessScope,
    ) -> list[SearchHit]:
        searcher = self._searcher()
        # Only chunks that the scope and filters allow are returned, and the k best of them
        # (no top-k is trimmed afterwards). When they allow every chunk, nothing is checked.
        # Else, when they allow few chunks, the scan covers only those (their keys listed from
        # the `chunk_key` column); when they allow many, listing them would cost more than
        # checking the best candidates of the whole scan against them (`_list_allowed`).
        eligible: Any = None
        allowed: Keys | None = None
        share = 1.0  # the share of the chunks that the scanned candidates are expected to pass
        if not self._everything_readable(searcher, scope, filters):
            eligible = self._with_scope(self._with_filters(tantivy.Query.all_query(), filters), scope)
            matching = searcher.search(eligible, 1, count=True).count or 0
            total = searcher.num_docs
            if matching == 0:
                return []
            if matching == total:
                eligible = None
            elif _list_allowed(matching, total, k):
                allowed = self._keys(searcher, eligible, matching)
            else:
                share = matching / total
        terms = searchable_terms(highlight)
        snippets = (
            self._snippets(searcher, self._index.parse_query(" ".join(terms), ["text"])) if terms else None
        )
        # Ask for a few more than k: a vector whose text commit has not landed yet is skipped,
        # and so is a chunk outside the scope (one sharing an allowed chunk's key: `chunk_key`;
        # or any, when the whole scan is checked); should too many be skipped, ask for twice
        # as many. The candidates are the scan's best, in order, so the first k that pass are
        # the k best that the scope and filters allow.
        wanted = k + 8
        while True:
            width = _candidates(wanted, share)
            scored = self._vectors.search(vector, width, allowed)
            docs = self._docs(searcher, [chunk_id for chunk_id, _ in scored], eligible)
            hits = [self._hit(docs[c], score, snippets) for c, score in scored if c in docs][:k]
            if len(hits) == k or len(scored) < width:
                return hits
            wanted *= 2

    def _everything_readable(self, searcher: Any, scope: AccessScope, filters: SearchFilters | None) -> bool:
        """True only if no chunk of the index can fall outside `scope` and `filters`, read from the
        term dictionary in well under a millisecond (counting the scope's chunks reads every
        chunk: 8 ms at 1M). Its counts include deleted chunks, so it can only answer no too often,
        never yes wrongly: the index holds no workspace but the caller's (every chunk stores
        one), and no chunk was ever restricted, or the scope reads restricted chunks anyway."""
        if filters is not None and not filters.is_empty():
            return False
        workspaces = {term for term, _ in searcher.terms_with_prefix("workspace", "")}
        if not workspaces <= {scope.workspace}:
            return False
        return scope.bypass_document_permissions or searcher.doc_freq("restricted", True) == 0

    def _docs(self, searcher: Any, chunk_ids: Sequence[str], eligible: Any) -> dict[str, Any]:
        """The stored documents of `chunk_ids` that `eligible` (if any) matches, by chunk id."""
        if not chunk_ids:
            return {}
        query = tantivy.Query.term_set_query(self._schema, "chunk_id", list(chunk_ids))
        if eligible is not None:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, eligible)])
        docs = (searcher.doc(address) for _, address in searcher.search(query, len(chunk_ids)).hits)
        return {doc["chunk_id"][0]: doc for doc in docs}

    def _keys(self, searcher: Any, query: Any, total: int) -> Keys:
        """The sorted keys of the `total` chunks `query` matches, read from the `chunk_key` fast
        field: no stored document is read (they took 0.6 s for 100k chunks)."""
        hits = searcher.search(
            query, total, count=False, order_by_field="chunk_key", order=tantivy.Order.Asc
        ).hits
        return np.fromiter((key for key, _ in hits), dtype=np.int64, count=len(hits))

    def _with_scope(self, query: Any, scope: AccessScope) -> Any:
        """`query` limited to what `scope` may read: `mappings.scope_clauses`, in tantivy terms."""
        schema = self._schema
        clauses = [
            (tantivy.Occur.Must, query),
            (tantivy.Occur.Must, tantivy.Query.term_query(schema, "workspace", scope.workspace)),
        ]
        if not scope.bypass_document_permissions:
            readable = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "restricted", False))]
            if scope.user:
                readable.append(
                    (tantivy.Occur.Should, tantivy.Query.term_query(schema, "allowed_users", scope.user))
                )
            readable.extend(
                (tantivy.Occur.Should, tantivy.Query.term_query(schema, "allowed_groups", group))
                for group in sorted(scope.groups)
            )
            clauses.append((tantivy.Occur.Must, tantivy.Query.boolean_query(readable)))
        return tantivy.Query.boolean_query(clauses)

    def _with_filters(self, query: Any, filters: SearchFilters | None) -> Any:
        if filters is None or filters.is_empty():
            return query
        clauses = [(tantivy.Occur.Must, query)]
        if filters.source:
            if filters.source.endswith("*"):
                pattern = re.escape(filters.source[:-1]) + ".*"
                clauses.append(
                    (tantivy.Occur.Must, tantivy.Query.regex_query(self._schema, "source", pattern))
                )
            else:
                clauses.append(
                    (tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "source", filters.source))
                )
        for tag in filters.tags:
            clauses.append((tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "tags", tag)))
        if filters.date_from or filters.date_to:
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self._schema,
                        "published",
                        tantivy.FieldType.Date,
                        _range_bound(filters.date_from),
                        _range_bound(filters.date_to),
                    ),
                )
            )
        return tantivy.Query.boolean_query(clauses)

    def _snippets(self, searcher: Any, query: Any) -> Any:
        generator = tantivy.SnippetGenerator.create(searcher, query, self._schema, "text")
        generator.set_max_num_chars(_SNIPPET_CHARS)
        return generator

    def _hit(self, doc: Any, score: float, snippets: Any) -> SearchHit:
        text = doc["text"][0]
        published = doc.get_first("published")
        return SearchHit(
            chunk_id=doc["chunk_id"][0],
            document_id=doc["document_id"][0],
            title=doc["title"][0],
            source=doc["source"][0],
            text=text,
            snippet=_marked(snippets.snippet_from_doc(doc) if snippets is not None else None, text),
            score=score,
            position=doc["position"][0],
            tags=tuple(doc["tags"]) if "tags" in doc.to_dict() else (),
            published=published.date() if isinstance(published, datetime) else None,
        )


# Checking a candidate against the scope (a term lookup, then its stored document if it passes)
# costs about as much as listing 8 allowed chunks' keys (`ragctl bench scope`, 100k chunks:
# 0.27 us a key; 300 candidates checked and fetched in 1.7 ms).
_CHECK_COST = 8
# Candidates scanned per chunk wanted beyond 1 / share, so that a scope's chunks falling a
# little below their share among the best does not cost a second round.
_OVERSAMPLE = 1.5


def _candidates(wanted: int, share: float) -> int:
    return wanted if share >= 1.0 else math.ceil(wanted / share * _OVERSAMPLE)


def _list_allowed(matching: int, total: int, k: int) -> bool:
    """Whether listing the `matching` allowed chunks costs less than checking the candidates of
    the whole scan that a search for `k` needs (about k / share of them)."""
    return matching <= _CHECK_COST * _candidates(k + 8, matching / total)


def _register_analyzer(index: tantivy.Index) -> None:
    index.register_tokenizer(ANALYZER, analyzer())


def _chunk_of(doc: Any) -> Chunk:
    """A stored document back as its chunk (for rewrites that keep everything else)."""
    values = doc.to_dict()
    published = doc.get_first("published")
    return Chunk(
        chunk_id=values["chunk_id"][0],
        document_id=values["document_id"][0],
        position=values["position"][0],
        title=values["title"][0],
        text=values["text"][0],
        source=values["source"][0],
        content_hash="",  # not stored in the index; unused by `_fields`
        tags=tuple(values.get("tags", ())),
        published=published.date() if isinstance(published, datetime) else None,
        # An index from before workspaces (issue 15) holds the default workspace's chunks.
        workspace=values.get("workspace", [DEFAULT_WORKSPACE])[0],
        allowed_users=tuple(values.get("allowed_users", ())),
        allowed_groups=tuple(values.get("allowed_groups", ())),
    )


def _marked(snippet: Any, text: str) -> str:
    """HTML-escaped fragment with query terms wrapped in <mark>; the text's start if nothing matched."""
    if snippet is None or not snippet.fragment():
        cut = text[:_SNIPPET_CHARS]
        return html.escape(cut + ("…" if len(text) > _SNIPPET_CHARS else ""))
    fragment: str = snippet.fragment()
    out: list[str] = []
    cursor = 0
    for span in snippet.highlighted():
        start, end = span.start, span.end
        out.append(html.escape(fragment[cursor:start]))
        out.append(f"<mark>{html.escape(fragment[start:end])}</mark>")
        cursor = end
    out.append(html.escape(fragment[cursor:]))
    return "".join(out)


# tantivy stores dates as i64 nanoseconds, so it rejects range bounds outside about
# 1677-09-21..2262-04-11; no indexed date can lie outside, so clamping keeps the meaning.
_EARLIEST_DAY = date(1677, 9, 22)
_LATEST_DAY = date(2262, 4, 10)


def _range_bound(day: date | None) -> datetime | None:
    return None if day is None else _as_datetime(min(max(day, _EARLIEST_DAY), _LATEST_DAY))


def _as_datetime(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
