"""The behaviour OpenSearch and Elasticsearch share: one backend and one index admin over an `Engine`.

The two engines speak the same REST dialect for everything this platform
uses (bulk, search with highlight and `search_after`, aliases, `_meta`); they
differ in the vector mapping, the k-NN request, the client library and its
exceptions. Those differences live in an `Engine` (`service.search.opensearch`,
`service.search.elastic`); everything else is here, once, so both backends
behave alike and match the local engine (`tests/contract/`).

Reads and writes go through the read alias (`<alias>` -> `<alias>-vN`): an
alias that points at one index accepts writes too
(https://docs.opensearch.org/latest/im-plugin/index-alias/,
https://www.elastic.co/docs/manage-data/data-store/aliases).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from service.access import AccessScope
from service.models import EmbeddedChunk, SearchFilters, SearchHit
from service.search import mappings
from service.search.budget import (
    DEFAULT_READS,
    DEFAULT_WRITES,
    MIN_ATTEMPT_SECONDS,
    RetryPolicy,
    Timing,
    caller_seconds_left,
    retryable,
)
from service.search.protocol import DimensionMismatchError, SearchBackend, SearchBackendError

log = logging.getLogger(__name__)

# Writes are visible to searches when the call returns, without forcing a
# refresh per request: the bulk call waits for the next scheduled refresh
# (https://docs.opensearch.org/latest/api-reference/document-apis/bulk/).
REFRESH = "wait_for"
# 200 chunks of 1,024 floats are about 4 MB of JSON, under the 10 MiB request
# limit of the smallest OpenSearch Service instances
# (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/limits.html#network-limits).
BULK_BATCH = 200
ID_PAGE = 1000
# How many alias switches `rollback` can undo.
HISTORY_LIMIT = 20
HTTP_TOO_MANY_REQUESTS = 429
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500


@dataclass(frozen=True)
class EngineError:
    """What an engine exception means: HTTP status (None: no response at all), error type, reason."""

    status: int | None
    kind: str
    reason: str

    @property
    def transient(self) -> bool:
        # Throttling, server errors and lost connections or timeouts may pass; 4xx will not.
        return (
            self.status is None or self.status == HTTP_TOO_MANY_REQUESTS or self.status >= HTTP_SERVER_ERROR
        )

    @property
    def missing(self) -> bool:
        return self.status == HTTP_NOT_FOUND

    @property
    def already_exists(self) -> bool:
        return self.kind == "resource_already_exists_exception"


Tolerate = Callable[[EngineError], bool]


class Engine(ABC):
    """The per-engine pieces: client calls, error decoding, index and k-NN bodies.

    Every call goes through `call`, which gives each attempt a timeout and retries
    throttling and gateway errors inside the read budget (`service.search.budget`).
    """

    name: ClassVar[str]

    def __init__(
        self,
        client: Any,
        *,
        reads: RetryPolicy = DEFAULT_READS,
        writes: RetryPolicy = DEFAULT_WRITES,
        timing: Timing | None = None,
    ) -> None:
        self.client = client
        self.reads = reads
        self.writes = writes
        self.timing = timing or Timing()

    @abstractmethod
    def describe(self, error: Exception) -> EngineError | None:
        """Decode a client exception; None if it is not one of the client's errors."""

    @abstractmethod
    def with_timeout(self, seconds: float) -> Any:
        """The client, with every request it sends limited to `seconds`."""

    @abstractmethod
    def send_bulk(self, client: Any, operations: list[dict[str, Any]], refresh: str) -> Any:
        """The raw bulk call (the clients name its body differently)."""

    @abstractmethod
    def index_body(self, dimension: int, alias: str | None) -> dict[str, Any]: ...

    @abstractmethod
    def knn_body(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None,
        highlight: str,
        scope: AccessScope,
    ) -> dict[str, Any]:
        """A k-NN request whose filter holds `scope` (applied during the graph search)."""

    def call(
        self,
        action: str,
        request: Callable[[Any], Any],
        *,
        tolerate: Tolerate | None = None,
        write: bool = False,
    ) -> Any:
        """Run `request(client)`; engine errors become `SearchBackendError` (or None if tolerated).

        Retryable failures (`budget.retryable`) are tried again with full-jitter backoff while
        the policy's budget lasts; each attempt's timeout is cut to what is left of it.
        """
        policy = self.writes if write else self.reads
        timing = self.timing
        deadline = timing.clock() + policy.budget_seconds
        caller_left = caller_seconds_left()
        if caller_left is not None:
            if caller_left < MIN_ATTEMPT_SECONDS:
                raise SearchBackendError(
                    f"{self.name} {action}: no time left before the caller's deadline", transient=True
                )
            deadline = min(deadline, timing.clock() + caller_left)
        attempt = 0
        while True:
            timeout = max(min(policy.attempt_timeout_seconds, deadline - timing.clock()), MIN_ATTEMPT_SECONDS)
            try:
                result = request(self.with_timeout(timeout))
            except Exception as error:
                info = self.describe(error)
                if info is None:
                    raise
                if tolerate is not None and tolerate(info):
                    return None
                delay = timing.rng() * min(policy.cap_seconds, policy.base_seconds * 2**attempt)
                if (
                    policy.retry
                    and retryable(info.status)
                    and timing.clock() + delay + MIN_ATTEMPT_SECONDS < deadline
                ):
                    attempt += 1
                    timing.sleep(delay)
                    continue
                status = info.status if info.status is not None else "no response"
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise SearchBackendError(
                    f"{self.name} {action} failed{tries} ({status} {info.kind}): {info.reason}",
                    transient=info.transient,
                ) from error
            # elasticsearch-py wraps bodies in ApiResponse objects; opensearch-py returns dicts.
            return getattr(result, "body", result)

    def bulk(self, operations: list[dict[str, Any]]) -> None:
        response = self.call("bulk", lambda client: self.send_bulk(client, operations, REFRESH), write=True)
        if response.get("errors"):
            raise bulk_error(self.name, response)

    def mappings(self, index: str) -> dict[str, Any] | None:
        """`{concrete index: mappings}` for an index or alias; None if neither exists."""
        response = self.call(
            "get mapping", lambda client: client.indices.get_mapping(index=index), tolerate=_missing
        )
        if response is None:
            return None
        return {name: body.get("mappings", {}) for name, body in response.items()}


def _missing(info: EngineError) -> bool:
    return info.missing


def bulk_error(engine: str, response: Mapping[str, Any]) -> SearchBackendError:
    """One error for a bulk response with failed items; transient only if every failure is."""
    failures: list[EngineError] = []
    for item in response.get("items", []):
        for result in item.values():
            error = result.get("error")
            if error is None:
                continue  # a delete of an unknown id reports 404 without an error: ignored.
            kind = error.get("type", "error") if isinstance(error, Mapping) else "error"
            reason = error.get("reason", "") if isinstance(error, Mapping) else str(error)
            failures.append(EngineError(int(result.get("status", 0)), kind, f"{result.get('_id')}: {reason}"))
    transient = bool(failures) and all(f.transient for f in failures)
    first = failures[0] if failures else EngineError(None, "error", "unknown")
    return SearchBackendError(
        f"{engine} bulk: {len(failures)} item(s) failed, first ({first.status} {first.kind}): {first.reason}",
        transient=transient,
    )


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ClusterBackend:
    """A `SearchBackend` on an OpenSearch or Elasticsearch index.

    `index` is the read alias when `versioned` (the default): `ensure_index`
    then creates `<index>-v1` behind it. With `versioned=False` it names one
    concrete index, as `IndexAdmin.open_version` needs while reindexing.
    """

    def __init__(
        self,
        engine: Engine,
        index: str,
        dimension: int,
        *,
        versioned: bool = True,
        batch_size: int = BULK_BATCH,
        page_size: int = ID_PAGE,
    ) -> None:
        self.engine = engine
        self.index = index
        self._expected_dimension = dimension
        self._index_dimension: int | None = None
        self._versioned = versioned
        self._batch_size = batch_size
        self._page_size = page_size

    @property
    def dimension(self) -> int:
        """The index's vector size once `ensure_index` has read it; the embedder's until then."""
        return self._index_dimension if self._index_dimension is not None else self._expected_dimension

    # -- index lifecycle ----------------------------------------------------------------------------

    def ensure_index(self) -> None:
        found = self.engine.mappings(self.index)
        if found is None:
            found = self._create()
        for concrete, mapping in found.items():
            self._check(concrete, mapping)

    def _create(self) -> dict[str, Any]:
        concrete = f"{self.index}-v1" if self._versioned else self.index
        alias = self.index if self._versioned else None
        body = self.engine.index_body(self._expected_dimension, alias)
        created = self.engine.call(
            "create index",
            lambda client: client.indices.create(index=concrete, body=body),
            tolerate=lambda info: info.already_exists,
            write=True,
        )
        if created is not None:
            log.info(
                "created %s index %s (mapping v%d)", self.engine.name, concrete, mappings.MAPPING_VERSION
            )
            return {concrete: body["mappings"]}
        # Another process created it first (or the alias was removed): read what is there.
        found = self.engine.mappings(self.index)
        if found is None:
            raise SearchBackendError(
                f"index {concrete!r} exists but alias {self.index!r} does not point at it; "
                f"point the alias at a version (`ragctl reindex`) or delete {concrete!r}",
                transient=False,
            )
        return found

    def _check(self, concrete: str, mapping: Mapping[str, Any]) -> None:
        dimension = mappings.mapped_dimension(mapping)
        if dimension is None:
            raise SearchBackendError(
                f"index {concrete!r} has no {mappings.VECTOR_FIELD!r} vector field: it was not created by "
                "rag-platform; run `ragctl reindex` to build one",
                transient=False,
            )
        self._index_dimension = dimension
        if dimension != self._expected_dimension:
            raise DimensionMismatchError(self.index, dimension, self._expected_dimension)
        version = mappings.mapped_version(mapping) or 0
        upgrade = mappings.upgrade_in_place_body(mapping)
        if upgrade is not None:
            self.engine.call(
                "put mapping",
                lambda client: client.indices.put_mapping(index=concrete, body=upgrade),
                write=True,
            )
            log.info("index %s: mapping v%d -> v%d in place", concrete, version, mappings.MAPPING_VERSION)
        elif version < mappings.MAPPING_VERSION:
            log.warning(
                "index %s uses mapping v%d, the code defines v%d; run `ragctl reindex` to upgrade",
                concrete,
                version,
                mappings.MAPPING_VERSION,
            )

    def ping(self) -> None:
        self.count()

    def count(self, scope: AccessScope | None = None) -> int:
        if scope is None:
            response = self.engine.call("count", lambda client: client.count(index=self.index))
        else:
            body = mappings.count_body(scope)
            response = self.engine.call("count", lambda client: client.count(index=self.index, body=body))
        return int(response["count"])

    # -- writes -------------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> None:
        # Check every vector before writing any, so a bad batch leaves the index untouched.
        for item in chunks:
            if len(item.vector) != self._expected_dimension:
                raise ValueError(
                    f"vector for {item.chunk.chunk_id} has {len(item.vector)} dimensions, "
                    f"the index holds {self._expected_dimension}"
                )
        for batch in _batches(chunks, self._batch_size):
            self.engine.bulk(mappings.bulk_index_operations(self.index, batch))

    def update_permissions(
        self, document_id: str, allowed_users: Sequence[str], allowed_groups: Sequence[str]
    ) -> int:
        # Partial updates by id (the ids are read first, paged): the vectors are not touched.
        chunk_ids = sorted(self.chunk_ids_for_document(document_id))
        fields = mappings.permissions_fields(allowed_users, allowed_groups)
        for batch in _batches(chunk_ids, self._batch_size * 5):
            self.engine.bulk(mappings.bulk_update_operations(self.index, batch, fields))
        return len(chunk_ids)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for batch in _batches(chunk_ids, self._batch_size * 5):
            self.engine.bulk(mappings.bulk_delete_operations(self.index, batch))

    # -- reads --------------------------------------------------------------------------------------

    def _search(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        response = self.engine.call("search", lambda client: client.search(index=self.index, body=body))
        return list(response["hits"]["hits"])

    def chunk_ids_for_document(self, document_id: str) -> set[str]:
        # Pages follow the unique `chunk_id`, so none is skipped or repeated. No point-in-time
        # is opened: one worker handles a document at a time, so its chunks do not change
        # while they are listed, and a PIT would cost an extra round trip and server state.
        ids: set[str] = set()
        after: list[Any] | None = None
        while True:
            hits = self._search(mappings.chunk_ids_page_body(document_id, self._page_size, after))
            ids.update(str(hit["_id"]) for hit in hits)
            if len(hits) < self._page_size:
                return ids
            after = list(hits[-1]["sort"])

    def bm25(
        self, query: str, k: int, filters: SearchFilters | None = None, *, scope: AccessScope
    ) -> list[SearchHit]:
        if k <= 0 or not mappings.has_terms(query):
            return []
        hits = self._search(mappings.bm25_body(query, k, filters, scope=scope))
        return [mappings.search_hit(hit, float(hit["_score"])) for hit in hits]

    def knn(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        highlight: str = "",
        *,
        scope: AccessScope,
    ) -> list[SearchHit]:
        if k <= 0:
            return []
        hits = self._search(self.engine.knn_body(vector, k, filters, highlight, scope))
        return [mappings.search_hit(hit, mappings.cosine_from_score(float(hit["_score"]))) for hit in hits][
            :k
        ]


class ClusterIndexAdmin:
    """`IndexAdmin` with engine aliases: versions are `<alias>-vN`, the alias moves in one `_aliases` call.

    The switch history that `rollback` walks back is kept in the `_meta` of the
    index the alias points at (`alias_history`), so it lives with the data and
    needs no extra store.
    """

    def __init__(self, engine: Engine, alias: str, dimension: int, **backend_options: int) -> None:
        self.engine = engine
        self._alias = alias
        self._dimension = dimension
        self._backend_options = backend_options

    @property
    def alias(self) -> str:
        return self._alias

    def current_version(self) -> str | None:
        response = self.engine.call(
            "get alias", lambda client: client.indices.get_alias(name=self._alias), tolerate=_missing
        )
        names: list[str] = sorted(response or {}, key=self._number)
        return names[-1] if names else None

    def versions(self) -> list[str]:
        response = self.engine.call(
            "list indexes", lambda client: client.indices.get(index=f"{self._alias}-v*"), tolerate=_missing
        )
        names = [name for name in response or {} if mappings.version_number(name, self._alias) is not None]
        return sorted(names, key=self._number)

    def new_version_name(self) -> str:
        numbers = [self._number(name) for name in self.versions()]
        current = self.current_version()
        if current:
            numbers.append(self._number(current))
        return f"{self._alias}-v{max(numbers, default=0) + 1}"

    def open_version(self, name: str) -> SearchBackend:
        backend = ClusterBackend(self.engine, name, self._dimension, versioned=False, **self._backend_options)
        backend.ensure_index()
        return backend

    def switch(self, name: str) -> None:
        if name not in self.versions():
            raise ValueError(f"index version {name!r} does not exist")
        previous = self.current_version()
        if previous == name:
            return
        history = [*self._history(previous), previous] if previous else []
        self._move_alias(previous, name, history)

    def rollback(self) -> str:
        current = self.current_version()
        history = self._history(current) if current else []
        if not current or not history:
            raise ValueError(f"alias {self._alias!r} has no earlier version to roll back to")
        target = history[-1]
        if target not in self.versions():
            raise ValueError(f"alias {self._alias!r} would roll back to {target!r}, which no longer exists")
        self._move_alias(current, target, history[:-1])
        return target

    # -- helpers ------------------------------------------------------------------------------------

    def _number(self, name: str) -> int:
        return mappings.version_number(name, self._alias) or 0

    def _meta(self, index: str) -> dict[str, Any]:
        for mapping in (self.engine.mappings(index) or {}).values():
            return dict(mapping.get("_meta", {}))
        return {}

    def _history(self, index: str) -> list[str]:
        return [str(name) for name in self._meta(index).get("alias_history", [])]

    def _move_alias(self, previous: str | None, target: str, history: list[str]) -> None:
        # The target's history first: if the alias move then fails, nothing reads it.
        meta = {**self._meta(target), "alias_history": history[-HISTORY_LIMIT:]}
        self.engine.call(
            "put mapping",
            lambda client: client.indices.put_mapping(index=target, body={"_meta": meta}),
            write=True,
        )
        actions: list[dict[str, Any]] = []
        if previous:
            actions.append({"remove": {"index": previous, "alias": self._alias}})
        actions.append({"add": {"index": target, "alias": self._alias, **mappings.alias_options()}})
        # Both actions in one request: readers see the old index or the new one, never neither
        # (https://docs.opensearch.org/latest/im-plugin/index-alias/#add-or-remove-indexes).
        self.engine.call(
            "update aliases",
            lambda client: client.indices.update_aliases(body={"actions": actions}),
            write=True,
        )
        log.info("alias %s now reads %s (was %s)", self._alias, target, previous)
