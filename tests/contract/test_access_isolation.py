"""Isolation, property-based, on every backend in `backend_factory` (issue 15, "Must show").

Hypothesis draws workspaces, documents with random readers (some changed after indexing),
and callers; for each caller every read path is checked against an oracle written here,
independently of the backends' filters: BM25, k-NN, hybrid, counts, snippets, and the
answer, citations and streamed events of a query. No path may return, cite or quote a
chunk the caller may not read.

Completeness is checked too, with k equal to the number of readable chunks: a backend that
filtered a top-k afterwards would come back short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.access import Principal, Role, authorize
from service.contract import SearchMode
from service.generate.extractive import ExtractiveGenerator
from service.ingest.ids import chunk_id, content_hash
from service.models import Chunk, EmbeddedChunk, QueryRequest, SearchHit
from service.query.service import QueryService
from service.search.protocol import SearchBackend
from service.search.retriever import Retriever
from service.workspaces import document_key
from tests.contract.chunks import EMBEDDER
from tests.contract.conftest import BackendFactory

WORKSPACES = ("default", "acme", "globex")
USERS = ("ann", "bob", "cid")
GROUPS = ("eng", "ops", "hr")
NAMES = ("handbook.md", "plan.md", "notes.txt")  # few names: the same name recurs across workspaces
# Every document holds this word, so one query matches them all and only the filters decide.
COMMON = "quarterly"


@dataclass(frozen=True)
class Doc:
    number: int
    workspace: str
    name: str
    users: tuple[str, ...]
    groups: tuple[str, ...]

    @property
    def marker(self) -> str:
        """A word only this document holds: if it shows up anywhere, the document leaked."""
        return f"zq{self.number}x"

    def readable_by(self, workspace: str, user: str | None, groups: frozenset[str]) -> bool:
        if self.workspace != workspace:
            return False
        if not self.users and not self.groups:
            return True
        return (user is not None and user in self.users) or bool(groups & set(self.groups))


@dataclass(frozen=True)
class Caller:
    workspace: str
    user: str | None
    groups: frozenset[str]


subsets = st.lists(st.sampled_from(USERS), max_size=2, unique=True).map(tuple)
group_subsets = st.lists(st.sampled_from(GROUPS), max_size=2, unique=True).map(tuple)


@st.composite
def corpora(draw: st.DrawFn) -> list[Doc]:
    count = draw(st.integers(1, 7))
    docs: list[Doc] = []
    seen: set[tuple[str, str]] = set()
    for number in range(count):
        workspace, name = draw(st.sampled_from(WORKSPACES)), draw(st.sampled_from(NAMES))
        if (workspace, name) in seen:
            continue
        seen.add((workspace, name))
        docs.append(Doc(number, workspace, name, draw(subsets), draw(group_subsets)))
    return docs


callers = st.builds(
    Caller,
    workspace=st.sampled_from(WORKSPACES),
    user=st.none() | st.sampled_from(USERS),
    groups=st.frozensets(st.sampled_from(GROUPS), max_size=2),
)
# Permission changes after indexing: (document position, new users, new groups).
changes = st.lists(st.tuples(st.integers(0, 6), subsets, group_subsets), max_size=3)


def _chunk(doc: Doc) -> EmbeddedChunk:
    document_id = document_key(doc.workspace, doc.name)
    text = f"The {COMMON} review of {doc.marker} covers plans and figures. It is filed as {doc.marker}."
    digest = content_hash(text)
    chunk = Chunk(
        chunk_id=chunk_id(document_id, 0, digest),
        document_id=document_id,
        position=0,
        title=f"Review {doc.marker}",
        text=text,
        source=f"s3://bucket/{document_id}",
        content_hash=digest,
        workspace=doc.workspace,
        allowed_users=doc.users,
        allowed_groups=doc.groups,
    )
    return EmbeddedChunk(chunk=chunk, vector=tuple(EMBEDDER.embed_query(text)))


@pytest.fixture
def index(backend_factory: BackendFactory) -> tuple[BackendFactory, SearchBackend]:
    return backend_factory, backend_factory.backend()


def _leaks(text: str, hidden: list[Doc]) -> list[str]:
    return [doc.marker for doc in hidden if re.search(rf"\b{doc.marker}\b", text)]


def _check_hits(hits: list[SearchHit], readable: dict[str, Doc], hidden: list[Doc], where: str) -> None:
    for hit in hits:
        assert hit.chunk_id in readable, f"{where} returned {hit.document_id}, not readable by the caller"
        assert not _leaks(hit.snippet + hit.text + hit.title, hidden), f"{where} leaked in a snippet"


@settings(
    max_examples=20,
    deadline=None,
    # One index per test; each example deletes what it wrote before the next one runs.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=corpora(), updates=changes, who=st.lists(callers, min_size=1, max_size=4))
def test_no_read_path_returns_a_chunk_the_caller_may_not_read(
    index: tuple[BackendFactory, SearchBackend],
    docs: list[Doc],
    updates: list[tuple[int, tuple[str, ...], tuple[str, ...]]],
    who: list[Caller],
) -> None:
    factory, backend = index
    # Given documents in several workspaces, some readable only by listed users or groups,
    # and some whose readers change after they were indexed (without re-embedding)
    items = [_chunk(doc) for doc in docs]
    ids = [item.chunk.chunk_id for item in items]
    assert len(set(ids)) == len(ids), "the same name in two workspaces must be two chunks"
    backend.upsert(items)
    try:
        for position, users, groups in updates:
            if position < len(docs):
                doc = docs[position]
                backend.update_permissions(document_key(doc.workspace, doc.name), users, groups)
                docs[position] = Doc(doc.number, doc.workspace, doc.name, users, groups)
        by_id = {item.chunk.chunk_id: doc for item, doc in zip(items, docs, strict=True)}
        for caller in who:
            _check_caller(factory, backend, caller, by_id)
    finally:
        backend.delete_chunks(ids)


def _check_caller(
    factory: BackendFactory, backend: SearchBackend, caller: Caller, by_id: dict[str, Doc]
) -> None:
    principal = Principal(
        subject="caller",
        role=Role.READER,
        workspaces=frozenset({caller.workspace}),
        user=caller.user,
        groups=caller.groups,
    )
    scope = authorize(principal, caller.workspace, Role.READER)
    readable = {i: d for i, d in by_id.items() if d.readable_by(caller.workspace, caller.user, caller.groups)}
    hidden = [d for i, d in by_id.items() if i not in readable]
    k = max(1, len(readable))

    # When the caller counts, then it sees exactly its readable chunks
    assert backend.count(scope) == len(readable)

    # When it searches lexically with k = what it may read, then it gets exactly that
    lexical = backend.bm25(COMMON, k, scope=scope)
    _check_hits(lexical, readable, hidden, "bm25")
    assert {h.chunk_id for h in lexical} == set(readable)
    # And a query naming a hidden document's own word finds nothing of it
    for doc in hidden:
        _check_hits(backend.bm25(doc.marker, 10, scope=scope), readable, hidden, "bm25 by marker")

    modes = [SearchMode.BM25]
    if factory.supports_knn:
        modes += [SearchMode.VECTOR, SearchMode.HYBRID]
        semantic = backend.knn(EMBEDDER.embed_query(COMMON), k, highlight=COMMON, scope=scope)
        _check_hits(semantic, readable, hidden, "knn")
        if factory.kind == "local":  # exact k-NN: every readable chunk comes back
            assert {h.chunk_id for h in semantic} == set(readable)

    retriever = Retriever(backend, EMBEDDER, candidates=10)
    answers = QueryService(retriever, ExtractiveGenerator())
    for mode in modes:
        _check_hits(retriever.search(COMMON, 10, mode, scope=scope).hits, readable, hidden, f"{mode} search")
        # When it asks a question, then the answer, its citations and the stream hold only readable chunks
        request = QueryRequest(question=f"What does the {COMMON} review cover?", mode=mode, top_k=10)
        response = answers.answer(request, scope)
        assert not _leaks(response.answer, hidden), f"{mode} answer quoted a hidden document"
        for citation in response.citations:
            assert citation.chunk_id in readable, f"{mode} cited a hidden document"
            assert not _leaks(citation.snippet + citation.title, hidden)
        for event in answers.stream(request, scope):
            assert not _leaks(str(event.data), hidden), f"{mode} stream {event.event} leaked"


def test_an_index_from_before_workspaces_is_upgraded_in_place_and_keeps_serving(
    backend_factory: BackendFactory,
) -> None:
    if backend_factory.kind == "local":
        pytest.skip(
            "the local engine migrates an older schema when it opens the index, "
            "covered by tests/unit/test_local_migration.py"
        )
    # Given an index behind the alias built with mapping v2 (no access fields), holding a chunk
    old = backend_factory.backend()
    engine = old.engine  # type: ignore[attr-defined]
    concrete = next(iter(engine.mappings(backend_factory.alias)))
    legacy = {
        "chunk_id": "legacy",
        "document_id": "old.md",
        "title": "Old",
        "text": "An old quarterly note.",
        "source": "s3://b/old.md",
        "tags": [],
        "position": 0,
        "vector": list(EMBEDDER.embed_query("old")),
    }
    engine.client.indices.delete(index=concrete)
    body = engine.index_body(EMBEDDER.dimension, backend_factory.alias)
    for name in ("workspace", "allowed_users", "allowed_groups", "restricted"):
        del body["mappings"]["properties"][name]
    body["mappings"]["_meta"]["mapping_version"] = 2
    engine.client.indices.create(index=concrete, body=body)
    engine.client.index(index=concrete, id="legacy", body=legacy, refresh=True)
    # When a backend opens it
    backend = backend_factory.backend()
    # Then it accepts chunks of other workspaces, and the old chunk reads as the default workspace's
    doc = Doc(1, "acme", "plan.md", ("ann",), ())
    backend.upsert([_chunk(doc)])
    reader = authorize(Principal("r", Role.READER, frozenset({"default"})), "default", Role.READER)
    assert [h.chunk_id for h in backend.bm25(COMMON, 5, scope=reader)] == ["legacy"]
    ann = authorize(Principal("a", Role.READER, frozenset({"acme"}), user="ann"), "acme", Role.READER)
    assert [h.document_id for h in backend.bm25(COMMON, 5, scope=ann)] == ["workspaces/acme/plan.md"]
