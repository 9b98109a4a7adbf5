"""Elasticsearch 8.14+/9.x through elasticsearch-py, with API-key auth.

The shared behaviour is in `service.search.cluster`; this module adds the
client, the `dense_vector` mapping, the top-level `knn` search option and the
decoding of elasticsearch-py's exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elastic_transport import TransportError as ElasticTransportError
from elasticsearch import ApiError, Elasticsearch

from service.access import AccessScope
from service.models import SearchFilters
from service.search import mappings
from service.search.budget import policies
from service.search.cluster import ClusterBackend, ClusterIndexAdmin, Engine, EngineError
from service.settings import Settings

# Retries and timeouts are `Engine.call`'s (service.search.budget); the client's own are off.
TIMEOUT_SECONDS = 10
MAX_RETRIES = 0


class ElasticsearchEngine(Engine):
    name = "elasticsearch"

    def describe(self, error: Exception) -> EngineError | None:
        if isinstance(error, ApiError):
            body = error.body if isinstance(error.body, dict) else {}
            detail = body.get("error")
            kind = str(detail.get("type", error.message)) if isinstance(detail, dict) else str(error.message)
            reason = str(detail.get("reason", detail)) if isinstance(detail, dict) else str(error)
            return EngineError(error.meta.status, kind, reason)
        if isinstance(error, ElasticTransportError):  # connection errors, timeouts, TLS: no response
            return EngineError(None, type(error).__name__, str(error))
        return None

    def with_timeout(self, seconds: float) -> Any:
        # Per-request transport options go through `options()` in elasticsearch-py 8
        # (https://www.elastic.co/docs/reference/elasticsearch/clients/python/configuration#timeouts).
        return self.client.options(request_timeout=seconds) if self.client is not None else None

    def send_bulk(self, client: Any, operations: list[dict[str, Any]], refresh: str) -> Any:
        return client.bulk(operations=operations, refresh=refresh)

    def index_body(self, dimension: int, alias: str | None) -> dict[str, Any]:
        return mappings.elasticsearch_index_body(dimension, alias)

    def knn_body(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None,
        highlight: str,
        scope: AccessScope,
    ) -> dict[str, Any]:
        return mappings.elasticsearch_knn_body(vector, k, filters, highlight, scope=scope)


def elasticsearch_client(endpoint: str, api_key: str | None) -> Elasticsearch:
    """A client for `endpoint`, authenticated with an API key when one is given.

    https://www.elastic.co/docs/reference/elasticsearch/clients/python/connecting#auth-apikey
    """
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    return Elasticsearch(
        url,
        api_key=api_key,
        request_timeout=TIMEOUT_SECONDS,
        max_retries=MAX_RETRIES,
        retry_on_timeout=False,
        retry_on_status=(),
    )


def _client(settings: Settings) -> Elasticsearch:
    if not settings.search_endpoint:
        raise ValueError("SEARCH_ENDPOINT is required for the elasticsearch backend")
    api_key = settings.search_api_key.get_secret_value() if settings.search_api_key else None
    return elasticsearch_client(settings.search_endpoint, api_key)


class ElasticsearchBackend(ClusterBackend):
    """`SearchBackend` on Elasticsearch: BM25 via multi_match, k-NN via the `knn` search option."""

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        dimension: int,
        *,
        engine: Engine | None = None,
        **options: Any,
    ) -> None:
        super().__init__(engine or ElasticsearchEngine(client), index, dimension, **options)

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int) -> ElasticsearchBackend:
        client = _client(settings)
        return cls(
            client, settings.index_alias, dimension, engine=ElasticsearchEngine(client, **policies(settings))
        )


class ElasticsearchIndexAdmin(ClusterIndexAdmin):
    """`IndexAdmin` on Elasticsearch aliases, for `ragctl reindex` and rollback."""

    def __init__(
        self,
        client: Elasticsearch,
        alias: str,
        dimension: int,
        *,
        engine: Engine | None = None,
        **backend_options: int,
    ) -> None:
        super().__init__(engine or ElasticsearchEngine(client), alias, dimension, **backend_options)

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int) -> ElasticsearchIndexAdmin:
        client = _client(settings)
        return cls(
            client, settings.index_alias, dimension, engine=ElasticsearchEngine(client, **policies(settings))
        )
