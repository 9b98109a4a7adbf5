"""One contract suite, every backend: `backend_factory` is parametrized over the engines.

- `local`: the embedded engine, always.
- `osmem`: osmem-server, an in-memory OpenSearch-compatible server started once per
  session on a free 127.0.0.1 port. It runs the OpenSearch backend's text paths
  (mapping, bulk, BM25, filters, highlight, `search_after`, aliases); it has no
  k-NN plugin, so vector tests skip on it, and it stems with Porter where the
  mapping asks for Porter2, so the one test that tells them apart skips too.
  It lacks two pieces of the shipped analyzer (`OSMEM_STAND_INS`), so its indexes get
  stand-ins (`OsmemEngine`) and the analyzer parity test checks the shipped definition
  through its `_analyze`.
- `opensearch`: a real OpenSearch with the k-NN plugin at `OPENSEARCH_URL`.
- `elasticsearch`: a real Elasticsearch at `ELASTICSEARCH_URL` (`ELASTICSEARCH_API_KEY` optional).

Every test gets its own alias (`contract-<random>`) and deletes its indexes afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from osmem_server import OsmemServer

from service.search import mappings
from service.search.admin import IndexAdmin, LocalIndexAdmin
from service.search.local import LocalSearchBackend, analyzer
from service.search.local_catalog import LocalCatalog
from service.search.protocol import SearchBackend
from tests.contract.chunks import DIMENSION

OPENSEARCH_URL = "OPENSEARCH_URL"
ELASTICSEARCH_URL = "ELASTICSEARCH_URL"
ELASTICSEARCH_API_KEY = "ELASTICSEARCH_API_KEY"
# A page smaller than the 25+ chunks the paging test writes, so `search_after` really pages.
TEST_PAGE_SIZE = 7
NO_KNN = "osmem-server has no k-NN plugin ([knn] query unsupported); vector paths run on opensearch/local"
NO_PORTER2 = (
    "osmem-server indexes and searches with Porter stems whatever the stemmer's language "
    "(its _analyze shows porter2); real OpenSearch and Elasticsearch honour porter2"
)


class TrackingAdmin:
    """Delegates to an `IndexAdmin` and remembers the backends it opens, so teardown can close them."""

    def __init__(self, inner: IndexAdmin, opened: list[SearchBackend]) -> None:
        self._inner = inner
        self._opened = opened

    @property
    def alias(self) -> str:
        return self._inner.alias

    def current_version(self) -> str | None:
        return self._inner.current_version()

    def versions(self) -> list[str]:
        return self._inner.versions()

    def new_version_name(self) -> str:
        return self._inner.new_version_name()

    def open_version(self, name: str) -> SearchBackend:
        backend = self._inner.open_version(name)
        self._opened.append(backend)
        return backend

    def switch(self, name: str) -> None:
        self._inner.switch(name)

    def rollback(self) -> str:
        return self._inner.rollback()


@dataclass
class BackendFactory:
    """Builds backends and admins for one engine, all on this test's alias."""

    kind: str
    alias: str
    supports_knn: bool
    _backend: Callable[[int], SearchBackend]
    _admin: Callable[[int], IndexAdmin]
    # The tokens the index's `rag_english` analyzer makes of a text (the engine's `_analyze`).
    analyze: Callable[[str], list[str]]
    opened: list[SearchBackend] = field(default_factory=list)

    def backend(self, dimension: int = DIMENSION, *, ensure: bool = True) -> SearchBackend:
        """A fresh backend that reads the alias (it follows `switch` and `rollback`)."""
        created = self._backend(dimension)
        self.opened.append(created)
        if ensure:
            created.ensure_index()
        return created

    def admin(self, dimension: int = DIMENSION) -> IndexAdmin:
        return TrackingAdmin(self._admin(dimension), self.opened)

    def require_knn(self) -> None:
        if not self.supports_knn:
            pytest.skip(NO_KNN)

    def require_porter2(self) -> None:
        if self.kind == "osmem":
            pytest.skip(NO_PORTER2)

    def close(self) -> None:
        for backend in self.opened:
            close = getattr(backend, "close", None)
            if close is not None:
                close()


@pytest.fixture(scope="session")
def osmem() -> Iterator[OsmemServer]:
    # Port 0: the server binds a free port on 127.0.0.1 and reports its URL on stdout.
    server = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    yield server
    server.close()


def _alias() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def _local(tmp_path: Path) -> BackendFactory:
    data_dir, alias = tmp_path / "data", _alias()
    return BackendFactory(
        kind="local",
        alias=alias,
        supports_knn=True,
        # The API resolves the alias when it builds its backend (`service.wiring`); so does this.
        _backend=lambda dimension: LocalSearchBackend(LocalCatalog(data_dir).resolve(alias), dimension),
        _admin=lambda dimension: LocalIndexAdmin(data_dir, alias, dimension),
        analyze=_local_analyze,
    )


def _local_analyze(text: str) -> list[str]:
    return list(analyzer().analyze(text))


OSMEM_STAND_INS = (
    "osmem-server has no `predicate_token_filter` (400 'not supported by osmem'), and its "
    "index-time `pattern` tokenizer indexes the separators instead of the words (its _analyze "
    "is right: 'config.yaml' -> config, yaml; the indexed terms are ' ' and '.')"
)


def osmem_analysis() -> dict[str, Any]:
    """The shipped analysis with osmem's stand-in for the long-token filter (`length` counts chars)."""
    analysis = mappings.analysis()
    analysis["filter"][mappings.LONG_TOKEN_FILTER] = {"type": "length", "max": mappings.MAX_TOKEN_BYTES - 1}
    return analysis


def _osmem_engine() -> type[Any]:
    from service.search.opensearch import OpenSearchEngine

    class OsmemEngine(OpenSearchEngine):
        """The OpenSearch engine with the stand-ins osmem-server needs (`OSMEM_STAND_INS`).

        Its indexes count long tokens in characters (the same as bytes for ASCII) and
        tokenize with `standard`, so the text paths (bulk, BM25, filters, highlight, paging,
        aliases) still run here. The shipped tokenizer is checked on osmem through `_analyze`
        (`osmem_analyze`), and end to end on OpenSearch and Elasticsearch in CI.
        """

        def index_body(self, dimension: int, alias: str | None) -> dict[str, Any]:
            body = super().index_body(dimension, alias)
            analysis = osmem_analysis()
            analysis["analyzer"][mappings.ANALYZER]["tokenizer"] = "standard"
            del analysis["tokenizer"]
            body["settings"]["index"]["analysis"] = analysis
            return body

    return OsmemEngine


def osmem_analyze(client: Any, text: str) -> list[str]:
    """The shipped analyzer's tokens on osmem, defined inline (`_analyze` without an index)."""
    analysis = osmem_analysis()
    analyzer_def = analysis["analyzer"][mappings.ANALYZER]
    body = {
        "tokenizer": analysis["tokenizer"][analyzer_def["tokenizer"]],
        "filter": [analysis["filter"].get(name, name) for name in analyzer_def["filter"]],
        "text": text,
    }
    return [token["token"] for token in client.indices.analyze(body=body)["tokens"]]


def _opensearch(kind: str, url: str, supports_knn: bool) -> tuple[BackendFactory, Callable[[], None]]:
    from service.search.cluster import ClusterBackend, ClusterIndexAdmin
    from service.search.opensearch import OpenSearchEngine, opensearch_client

    client = opensearch_client(url, "us-east-1")
    engine = _osmem_engine()(client) if kind == "osmem" else OpenSearchEngine(client)
    alias = _alias()

    def analyze(text: str) -> list[str]:
        if kind == "osmem":
            return osmem_analyze(client, text)
        response = client.indices.analyze(index=alias, body={"analyzer": mappings.ANALYZER, "text": text})
        return [token["token"] for token in response["tokens"]]

    factory = BackendFactory(
        kind=kind,
        alias=alias,
        supports_knn=supports_knn,
        _backend=lambda dimension: ClusterBackend(engine, alias, dimension, page_size=TEST_PAGE_SIZE),
        _admin=lambda dimension: ClusterIndexAdmin(engine, alias, dimension, page_size=TEST_PAGE_SIZE),
        analyze=analyze,
    )
    return factory, lambda: _delete_indexes(client, alias)


def _elasticsearch(url: str) -> tuple[BackendFactory, Callable[[], None]]:
    from service.search.elastic import ElasticsearchBackend, ElasticsearchIndexAdmin, elasticsearch_client

    client = elasticsearch_client(url, os.environ.get(ELASTICSEARCH_API_KEY))
    alias = _alias()

    def analyze(text: str) -> list[str]:
        response = client.indices.analyze(index=alias, analyzer=mappings.ANALYZER, text=text)
        return [token["token"] for token in response["tokens"]]

    factory = BackendFactory(
        kind="elasticsearch",
        alias=alias,
        supports_knn=True,
        _backend=lambda dimension: ElasticsearchBackend(client, alias, dimension, page_size=TEST_PAGE_SIZE),
        _admin=lambda dimension: ElasticsearchIndexAdmin(client, alias, dimension, page_size=TEST_PAGE_SIZE),
        analyze=analyze,
    )
    return factory, lambda: _delete_indexes(client, alias)


def _delete_indexes(client: Any, alias: str) -> None:
    # By name, not by wildcard: Elasticsearch refuses wildcard deletes by default
    # (`action.destructive_requires_name`).
    found = client.indices.get(index=f"{alias}*")
    names = list(getattr(found, "body", found))
    if names:
        client.indices.delete(index=",".join(names))


@pytest.fixture(params=["local", "osmem", "opensearch", "elasticsearch"])
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendFactory]:
    kind: str = request.param
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if kind == "local":
        factory = _local(tmp_path)
    elif kind == "osmem":
        server: OsmemServer = request.getfixturevalue("osmem")
        factory, cleanup = _opensearch("osmem", server.url, supports_knn=False)
    elif kind == "opensearch":
        url = os.environ.get(OPENSEARCH_URL)
        if not url:
            pytest.skip(f"{OPENSEARCH_URL} is not set (CI runs OpenSearch as a service container)")
        factory, cleanup = _opensearch("opensearch", url, supports_knn=True)
    else:
        url = os.environ.get(ELASTICSEARCH_URL)
        if not url:
            pytest.skip(f"{ELASTICSEARCH_URL} is not set (CI runs Elasticsearch as a service container)")
        factory, cleanup = _elasticsearch(url)
    yield factory
    factory.close()
    cleanup()


@pytest.fixture
def search_backend(backend_factory: BackendFactory) -> SearchBackend:
    """A backend on a fresh alias, with its index created."""
    return backend_factory.backend()
