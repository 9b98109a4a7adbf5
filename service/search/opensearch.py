"""Amazon OpenSearch Service (or any OpenSearch 2.x/3.x with the k-NN plugin) through opensearch-py.

The shared behaviour is in `service.search.cluster`; this module adds the
client (SigV4 for AWS endpoints, plain or basic auth elsewhere), the k-NN
mapping and query, and the decoding of opensearch-py's exceptions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from opensearchpy import (
    AWSV4SignerAuth,
    OpenSearch,
    RequestsHttpConnection,
)
from opensearchpy import (
    ConnectionError as OpenSearchConnectionError,
)
from opensearchpy import (
    TransportError as OpenSearchTransportError,
)

from service.access import AccessScope
from service.models import SearchFilters
from service.search import mappings
from service.search.budget import policies
from service.search.cluster import ClusterBackend, ClusterIndexAdmin, Engine, EngineError
from service.settings import Settings

# Retries and timeouts are `Engine.call`'s (service.search.budget): the client's own retry
# (502/503/504 only, never 429, at once) is off. The client timeout is only the fallback.
TIMEOUT_SECONDS = 10
MAX_RETRIES = 0
_AWS_SUFFIXES = {".es.amazonaws.com": "es", ".aoss.amazonaws.com": "aoss"}


class OpenSearchEngine(Engine):
    name = "opensearch"

    def describe(self, error: Exception) -> EngineError | None:
        if isinstance(error, OpenSearchConnectionError):  # includes timeouts and TLS errors
            return EngineError(None, type(error).__name__, str(error))
        if isinstance(error, OpenSearchTransportError):
            status = error.status_code if isinstance(error.status_code, int) else None
            return EngineError(status, str(error.error), _reason(error.info))
        return None

    def with_timeout(self, seconds: float) -> Any:
        return _Timed(self.client, seconds)

    def send_bulk(self, client: Any, operations: list[dict[str, Any]], refresh: str) -> Any:
        return client.bulk(body=operations, refresh=refresh)

    def index_body(self, dimension: int, alias: str | None) -> dict[str, Any]:
        return mappings.opensearch_index_body(dimension, alias)

    def knn_body(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None,
        highlight: str,
        scope: AccessScope,
    ) -> dict[str, Any]:
        return mappings.opensearch_knn_body(vector, k, filters, highlight, scope=scope)


class _Timed:
    """The client (or one of its namespaces, `indices`) with `request_timeout` on every API call.

    opensearch-py takes `request_timeout` as a per-call parameter on every API method.
    """

    def __init__(self, target: Any, seconds: float) -> None:
        self._target = target
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if callable(attribute):
            return functools.partial(attribute, request_timeout=self._seconds)
        return _Timed(attribute, self._seconds)


def _reason(info: Any) -> str:
    if isinstance(info, dict):
        error = info.get("error")
        if isinstance(error, dict):
            return str(error.get("reason", error))
        return str(error or info)
    return str(info)


def aws_service(host: str) -> str | None:
    """`es` for an OpenSearch Service domain, `aoss` for Serverless, None for any other host."""
    for suffix, service in _AWS_SUFFIXES.items():
        if host.endswith(suffix):
            return service
    return None


def opensearch_client(endpoint: str, region: str, basic_auth: tuple[str, str] | None = None) -> OpenSearch:
    """A client for `endpoint`: SigV4-signed for AWS hosts, otherwise as the URL says.

    Domain endpoints come without a scheme (`vpc-x.eu-west-1.es.amazonaws.com`),
    so https is assumed. AWS requests are signed with the Lambda role's
    credentials from the boto3 chain
    (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/request-signing.html#request-signing-python).
    Elsewhere a `https://user:password@host:9200` URL, or `basic_auth` (an external cluster's
    credentials from Secrets Manager, service/secrets.py), gives basic auth.
    """
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    host = urlparse(url).hostname or ""
    service = aws_service(host)
    if service is None:
        return OpenSearch(
            hosts=[url],
            http_auth=basic_auth,
            timeout=TIMEOUT_SECONDS,
            max_retries=MAX_RETRIES,
            retry_on_timeout=False,
        )
    import boto3

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ValueError(f"no AWS credentials to sign requests to {host}")
    return OpenSearch(
        hosts=[url],
        http_auth=AWSV4SignerAuth(credentials, region, service),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=TIMEOUT_SECONDS,
        max_retries=MAX_RETRIES,
        retry_on_timeout=False,
    )


def _endpoint(settings: Settings) -> str:
    if not settings.search_endpoint:
        raise ValueError("SEARCH_ENDPOINT is required for the opensearch backend")
    return settings.search_endpoint


def basic_auth(settings: Settings) -> tuple[str, str] | None:
    """`SEARCH_API_KEY` as `user:password` for a cluster outside AWS (issue 13), else None."""
    if settings.search_api_key is None:
        return None
    user, colon, password = settings.search_api_key.get_secret_value().partition(":")
    if not colon or not user:
        raise ValueError("SEARCH_API_KEY for an OpenSearch cluster must be 'username:password'")
    return user, password


def client_from_settings(settings: Settings) -> OpenSearch:
    return opensearch_client(_endpoint(settings), settings.aws_region, basic_auth(settings))


class OpenSearchBackend(ClusterBackend):
    """`SearchBackend` on OpenSearch: BM25 via multi_match, k-NN via the lucene HNSW `knn` query."""

    def __init__(
        self, client: OpenSearch, index: str, dimension: int, *, engine: Engine | None = None, **options: Any
    ) -> None:
        super().__init__(engine or OpenSearchEngine(client), index, dimension, **options)

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int) -> OpenSearchBackend:
        client = client_from_settings(settings)
        return cls(
            client, settings.index_alias, dimension, engine=OpenSearchEngine(client, **policies(settings))
        )


class OpenSearchIndexAdmin(ClusterIndexAdmin):
    """`IndexAdmin` on OpenSearch aliases, for `ragctl reindex` and rollback."""

    def __init__(
        self,
        client: OpenSearch,
        alias: str,
        dimension: int,
        *,
        engine: Engine | None = None,
        **backend_options: int,
    ) -> None:
        super().__init__(engine or OpenSearchEngine(client), alias, dimension, **backend_options)

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int) -> OpenSearchIndexAdmin:
        client = client_from_settings(settings)
        return cls(
            client, settings.index_alias, dimension, engine=OpenSearchEngine(client, **policies(settings))
        )
