"""The JSON the OpenSearch and Elasticsearch backends send, and how they read answers and errors."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, ConnectionTimeout, HttpHeaders, NodeConfig
from elasticsearch import ApiError
from opensearchpy import ConnectionError as OpenSearchConnectionError
from opensearchpy import TransportError as OpenSearchTransportError

from service.access import AccessScope, operator_scope
from service.models import SearchFilters
from service.search import mappings
from service.search.budget import RetryPolicy
from service.search.cluster import EngineError, bulk_error
from service.search.elastic import ElasticsearchBackend, ElasticsearchEngine
from service.search.opensearch import OpenSearchBackend, OpenSearchEngine, aws_service
from service.search.protocol import SearchBackendError
from service.settings import Settings
from service.wiring import build_backend
from tests.contract.chunks import embedded
from tests.factories import DEFAULT_READER

# -- index bodies -----------------------------------------------------------------------------------


def test_opensearch_index_is_a_lucene_hnsw_cosine_knn_index_of_the_given_dimension() -> None:
    body = mappings.opensearch_index_body(384, alias="chunks")
    assert body["settings"]["index"]["knn"] is True
    vector = body["mappings"]["properties"]["vector"]
    assert vector["type"] == "knn_vector"
    assert vector["dimension"] == 384
    assert vector["method"]["name"] == "hnsw"
    assert vector["method"]["engine"] == "lucene"
    assert vector["method"]["space_type"] == "cosinesimil"
    # And the alias is created with the index, in the same request, as the index that takes its writes
    assert body["aliases"] == {"chunks": {"is_write_index": True}}


def test_elasticsearch_index_is_an_indexed_float_cosine_dense_vector() -> None:
    body = mappings.elasticsearch_index_body(1024)
    vector = body["mappings"]["properties"]["vector"]
    assert vector == {
        "type": "dense_vector",
        "dims": 1024,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
    }
    assert "aliases" not in body


@pytest.mark.parametrize("build", [mappings.opensearch_index_body, mappings.elasticsearch_index_body])
def test_both_mappings_share_fields_meta_and_strictness(build: Any) -> None:
    body = build(64)
    properties = body["mappings"]["properties"]
    # Exact-match metadata is keyword; text uses the local engine's analyzer: stop words, Porter2
    for name in ("chunk_id", "document_id", "source", "tags"):
        assert properties[name] == {"type": "keyword"}
    for name in ("title", "text"):
        assert properties[name] == {"type": "text", "analyzer": "rag_english"}
    analyzer = body["settings"]["index"]["analysis"]["analyzer"]["rag_english"]
    # The local engine's word rule (a pattern tokenizer), not the `standard` tokenizer
    tokenizer = body["settings"]["index"]["analysis"]["tokenizer"][analyzer["tokenizer"]]
    assert tokenizer["type"] == "pattern"
    filters = body["settings"]["index"]["analysis"]["filter"]
    assert [filters.get(name, {"type": name})["type"] for name in analyzer["filter"]] == [
        "predicate_token_filter",
        "lowercase",
        "stop",
        "stemmer",
    ]
    assert filters["rag_english_stemmer"]["language"] == "porter2"
    assert properties["published"]["type"] == "date"
    assert properties["position"] == {"type": "integer"}
    # Access fields are exact keywords plus the flag that tells an open chunk from a restricted one
    for name in ("workspace", "allowed_users", "allowed_groups"):
        assert properties[name] == {"type": "keyword"}
    assert properties["restricted"] == {"type": "boolean"}
    # Versioned, and unknown fields are refused rather than guessed
    assert body["mappings"]["_meta"]["mapping_version"] == mappings.MAPPING_VERSION
    assert body["mappings"]["dynamic"] == "strict"
    # The readers find the dimension and the version again
    assert mappings.mapped_dimension(body["mappings"]) == 64
    assert mappings.mapped_version(body["mappings"]) == mappings.MAPPING_VERSION


def test_mapped_dimension_is_none_without_a_vector_field() -> None:
    assert mappings.mapped_dimension({"properties": {"text": {"type": "text"}}}) is None
    assert mappings.mapped_version({}) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chunks-v1", 1),
        ("chunks-v12", 12),
        ("chunks", None),
        ("chunks-v", None),
        ("other-v2", None),
        ("chunks-v2x", None),
    ],
)
def test_version_number(name: str, expected: int | None) -> None:
    assert mappings.version_number(name, "chunks") == expected


# -- documents --------------------------------------------------------------------------------------


def test_document_and_bulk_operations_use_the_chunk_id_as_id() -> None:
    item = embedded("c1", "text", tags=("a", "b"), published=date(2024, 3, 1), position=2)
    operations = mappings.bulk_index_operations("idx", [item])
    assert operations[0] == {"index": {"_index": "idx", "_id": "c1"}}
    source = operations[1]
    assert source["published"] == "2024-03-01"
    assert source["tags"] == ["a", "b"]
    assert source["position"] == 2
    assert source["vector"] == list(item.vector)
    # An open chunk of the default workspace
    assert (source["workspace"], source["allowed_users"], source["allowed_groups"]) == ("default", [], [])
    assert source["restricted"] is False
    assert mappings.bulk_delete_operations("idx", ["x"]) == [{"delete": {"_index": "idx", "_id": "x"}}]


def test_a_chunk_without_a_date_stores_no_date() -> None:
    assert "published" not in mappings.document(embedded("c1", "text"))


# -- queries ----------------------------------------------------------------------------------------

# What a default-workspace reader without user or groups may read: chunks of the default
# workspace (or written before workspaces, without the field) that are open to it.
SCOPE_CLAUSES = [
    {
        "bool": {
            "should": [
                {"term": {"workspace": "default"}},
                {"bool": {"must_not": [{"exists": {"field": "workspace"}}]}},
            ],
            "minimum_should_match": 1,
        }
    },
    {
        "bool": {
            "should": [
                {"term": {"restricted": False}},
                {"bool": {"must_not": [{"exists": {"field": "restricted"}}]}},
            ],
            "minimum_should_match": 1,
        }
    },
]


def test_scope_clauses_name_the_workspace_and_the_callers_identities() -> None:
    # Given a reader of workspace "acme" who is user "ann" in groups "eng" and "ops"
    scope = AccessScope(workspace="acme", user="ann", groups=frozenset({"ops", "eng"}))

    # Then only acme's chunks match (no legacy clause outside the default workspace), and of
    # those only open ones or ones listing ann or one of her groups
    assert mappings.scope_clauses(scope) == [
        {"term": {"workspace": "acme"}},
        {
            "bool": {
                "should": [
                    {"term": {"restricted": False}},
                    {"bool": {"must_not": [{"exists": {"field": "restricted"}}]}},
                    {"term": {"allowed_users": "ann"}},
                    {"terms": {"allowed_groups": ["eng", "ops"]}},
                ],
                "minimum_should_match": 1,
            }
        },
    ]
    # And an operator's scope skips the permission clause, never the workspace
    assert mappings.scope_clauses(operator_scope("acme")) == [{"term": {"workspace": "acme"}}]
    assert mappings.count_body(scope) == {"query": {"bool": {"filter": mappings.scope_clauses(scope)}}}


def test_a_permissions_change_is_a_partial_update_without_the_vector() -> None:
    fields = mappings.permissions_fields(["bob", "ann"], [])
    assert fields == {"allowed_users": ["ann", "bob"], "allowed_groups": [], "restricted": True}
    assert mappings.bulk_update_operations("idx", ["c1"], fields) == [
        {"update": {"_index": "idx", "_id": "c1"}},
        {"doc": fields},
    ]
    assert mappings.permissions_fields([], [])["restricted"] is False


def test_filter_clauses_match_the_local_engine_semantics() -> None:
    filters = SearchFilters(
        source="s3://docs/*", tags=("a", "b"), date_from=date(2024, 1, 1), date_to=date(2024, 1, 31)
    )
    assert mappings.filter_clauses(filters) == [
        {"prefix": {"source": "s3://docs/"}},
        {"term": {"tags": "a"}},
        {"term": {"tags": "b"}},
        {"range": {"published": {"format": "strict_date", "gte": "2024-01-01", "lte": "2024-01-31"}}},
    ]
    assert mappings.filter_clauses(SearchFilters(source="s3://docs/a.md")) == [
        {"term": {"source": "s3://docs/a.md"}}
    ]
    assert mappings.filter_clauses(SearchFilters(date_to=date(2024, 1, 31))) == [
        {"range": {"published": {"format": "strict_date", "lte": "2024-01-31"}}}
    ]
    assert mappings.filter_clauses(SearchFilters()) == []
    assert mappings.filter_clauses(None) == []


def test_bm25_body_is_beir_best_fields_with_non_scoring_filters_and_mark_highlights() -> None:
    body = mappings.bm25_body("quick fox", 7, SearchFilters(tags=("a",)), scope=DEFAULT_READER)
    assert body["size"] == 7
    assert body["query"]["bool"]["must"] == [
        {
            "multi_match": {
                "query": "quick fox",
                "type": "best_fields",
                "fields": ["title", "text"],
                "tie_breaker": 0.5,
            }
        }
    ]
    # The caller's scope first, then the metadata filters, all in filter context
    assert body["query"]["bool"]["filter"] == [*SCOPE_CLAUSES, {"term": {"tags": "a"}}]
    assert body["_source"] == {"excludes": ["vector"]}
    highlight = body["highlight"]
    assert (highlight["pre_tags"], highlight["post_tags"], highlight["encoder"]) == (
        ["<mark>"],
        ["</mark>"],
        "html",
    )
    assert highlight["fields"]["text"]["fragment_size"] == mappings.SNIPPET_CHARS


def test_opensearch_knn_body_filters_inside_the_knn_clause() -> None:
    body = mappings.opensearch_knn_body(
        [0.1, 0.2], 5, SearchFilters(source="s"), highlight="fox", scope=DEFAULT_READER
    )
    clause = body["query"]["knn"]["vector"]
    assert clause == {
        "vector": [0.1, 0.2],
        "k": 5,
        "filter": {"bool": {"filter": [*SCOPE_CLAUSES, {"term": {"source": "s"}}]}},
    }
    assert body["size"] == 5
    assert body["highlight"]["fields"]["text"]["highlight_query"] == {"match": {"text": {"query": "fox"}}}


def test_opensearch_knn_body_without_filters_or_highlight_still_filters_by_scope() -> None:
    body = mappings.opensearch_knn_body([0.1], 3, scope=DEFAULT_READER)
    assert body["query"]["knn"]["vector"]["filter"] == {"bool": {"filter": SCOPE_CLAUSES}}
    assert "highlight" not in body


def test_elasticsearch_knn_body_uses_the_knn_option_with_filter_and_bounded_candidates() -> None:
    body = mappings.elasticsearch_knn_body(
        [0.5], 10, SearchFilters(tags=("x",)), highlight="otter", scope=DEFAULT_READER
    )
    assert body["knn"] == {
        "field": "vector",
        "query_vector": [0.5],
        "k": 10,
        "num_candidates": 100,
        "filter": [*SCOPE_CLAUSES, {"term": {"tags": "x"}}],
    }
    assert "query" not in body
    assert body["highlight"]["fields"]["text"]["highlight_query"] == {"match": {"text": {"query": "otter"}}}
    assert mappings.elasticsearch_knn_body([0.5], 400, scope=DEFAULT_READER)["knn"]["num_candidates"] == 800
    assert (
        mappings.elasticsearch_knn_body([0.5], 9000, scope=DEFAULT_READER)["knn"]["num_candidates"]
        == mappings.MAX_NUM_CANDIDATES
    )


def test_chunk_ids_page_body_pages_with_search_after_on_chunk_id() -> None:
    first = mappings.chunk_ids_page_body("doc", 500)
    assert first["size"] == 500
    assert first["sort"] == [{"chunk_id": "asc"}]
    assert first["_source"] is False
    assert "search_after" not in first
    assert mappings.chunk_ids_page_body("doc", 500, ["c9"])["search_after"] == ["c9"]


# -- responses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "cosine"), [(1.0, 1.0), (0.5, 0.0), (0.0, -1.0), (0.75, 0.5), (1.2, 1.0)])
def test_knn_scores_convert_back_to_cosine(score: float, cosine: float) -> None:
    assert mappings.cosine_from_score(score) == pytest.approx(cosine)


def test_search_hit_reads_source_and_highlight() -> None:
    hit = {
        "_id": "c1",
        "_score": 2.5,
        "_source": {
            "chunk_id": "c1",
            "document_id": "d",
            "title": "T",
            "source": "s3://b/k",
            "text": "a/b fox",
            "tags": ["x"],
            "published": "2024-02-03",
            "position": 4,
        },
        "highlight": {"text": ["a&#x2F;b <mark>fox</mark>"]},
    }
    parsed = mappings.search_hit(hit, 2.5)
    assert (parsed.chunk_id, parsed.document_id, parsed.position, parsed.tags) == ("c1", "d", 4, ("x",))
    assert parsed.published == date(2024, 2, 3)
    # The engines escape "/" and Python's html.escape does not: snippets are made identical
    assert parsed.snippet == "a/b <mark>fox</mark>"


def test_snippet_without_highlight_is_the_escaped_text_start() -> None:
    long_text = "<b>" + "x" * 300
    snippet = mappings.snippet({}, long_text)
    assert snippet.startswith("&lt;b&gt;xxx")
    assert snippet.endswith("…")
    assert mappings.snippet({}, "short & sweet") == "short &amp; sweet"


def test_has_terms() -> None:
    assert mappings.has_terms("what is pulumi?")
    assert not mappings.has_terms(" ?! -- ")


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient"), [(None, True), (429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_engine_error_transience(status: int | None, transient: bool) -> None:
    assert EngineError(status, "x", "y").transient is transient


def _fail(error: Exception) -> Any:
    def call(_client: Any) -> Any:
        raise error

    return call


# One attempt: these tests are about decoding errors; retries have their own (test_search_retries.py).
ONCE = RetryPolicy(budget_seconds=0.0)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (
            OpenSearchTransportError(
                429, "es_rejected_execution_exception", {"error": {"reason": "queue full"}}
            ),
            True,
        ),
        (OpenSearchTransportError(503, "unavailable", {}), True),
        (OpenSearchTransportError(400, "mapper_parsing_exception", {"error": {"reason": "bad"}}), False),
        (OpenSearchConnectionError("N/A", "timed out", Exception()), True),
    ],
)
def test_opensearch_errors_become_search_backend_errors(error: Exception, transient: bool) -> None:
    engine = OpenSearchEngine(client=None, reads=ONCE)
    with pytest.raises(SearchBackendError) as caught:
        engine.call("search", _fail(error))
    assert caught.value.transient is transient
    assert "opensearch search failed" in str(caught.value)


def _es_api_error(status: int, kind: str) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    return ApiError(kind, meta, {"error": {"type": kind, "reason": "because"}, "status": status})


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_es_api_error(429, "circuit_breaking_exception"), True),
        (_es_api_error(502, "bad_gateway"), True),
        (_es_api_error(400, "illegal_argument_exception"), False),
        (_es_api_error(401, "security_exception"), False),
        (ConnectionTimeout("timed out"), True),
    ],
)
def test_elasticsearch_errors_become_search_backend_errors(error: Exception, transient: bool) -> None:
    engine = ElasticsearchEngine(client=None, reads=ONCE, writes=ONCE)
    with pytest.raises(SearchBackendError) as caught:
        engine.call("bulk", _fail(error))
    assert caught.value.transient is transient


def test_tolerated_errors_return_none_and_foreign_errors_pass_through() -> None:
    engine = OpenSearchEngine(client=None, reads=ONCE)
    missing = OpenSearchTransportError(404, "index_not_found_exception", {})
    assert engine.call("get", _fail(missing), tolerate=lambda info: info.missing) is None
    with pytest.raises(KeyError):
        engine.call("get", _fail(KeyError("not a client error")))


def test_bulk_errors_are_transient_only_when_every_failure_is() -> None:
    throttled = {"index": {"_id": "a", "status": 429, "error": {"type": "es_rejected_execution_exception"}}}
    rejected = {
        "index": {"_id": "b", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}
    }
    not_found = {"delete": {"_id": "c", "status": 404, "result": "not_found"}}
    assert bulk_error("opensearch", {"errors": True, "items": [throttled, not_found]}).transient is True
    mixed = bulk_error("opensearch", {"errors": True, "items": [throttled, rejected]})
    assert mixed.transient is False
    assert "2 item(s) failed" in str(mixed)


# -- clients from settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("vpc-x-abc.eu-west-1.es.amazonaws.com", "es"),
        ("abc.us-east-1.aoss.amazonaws.com", "aoss"),
        ("localhost", None),
        ("search.example.com", None),
    ],
)
def test_aws_service_is_detected_from_the_host(host: str, service: str | None) -> None:
    assert aws_service(host) == service


def test_opensearch_from_settings_signs_aws_endpoints_with_sigv4() -> None:
    # Given an OpenSearch Service endpoint without a scheme, as the stack output gives it
    settings = Settings(
        search_backend="opensearch",
        search_endpoint="vpc-rag.eu-west-1.es.amazonaws.com",
        aws_region="eu-west-1",
    )
    # When the wiring builds the backend
    backend = build_backend(settings, 384)
    # Then it is an OpenSearch backend on the alias, signing with SigV4 for "es" in the region, over https
    assert isinstance(backend, OpenSearchBackend)
    assert backend.index == settings.index_alias
    connection = backend.engine.client.transport.get_connection()
    assert connection.host == "https://vpc-rag.eu-west-1.es.amazonaws.com:443"
    signer = connection.session.auth.signer
    assert (signer.service, signer.region) == ("es", "eu-west-1")


def test_opensearch_from_settings_uses_basic_auth_from_a_local_url() -> None:
    settings = Settings(search_backend="opensearch", search_endpoint="http://admin:secret@localhost:9200")
    backend = build_backend(settings, 384)
    assert isinstance(backend, OpenSearchBackend)
    connection = backend.engine.client.transport.get_connection()
    assert connection.host == "http://localhost:9200"
    assert connection.headers["authorization"].startswith("Basic ")


def test_elasticsearch_from_settings_authenticates_with_the_api_key() -> None:
    settings = Settings(
        search_backend="elasticsearch", search_endpoint="https://es.example.com:9243", search_api_key="k3y"
    )
    backend = build_backend(settings, 384)
    assert isinstance(backend, ElasticsearchBackend)
    assert backend.dimension == 384
    assert backend.engine.client._headers["authorization"] == "ApiKey k3y"


def test_only_a_v2_mapping_is_upgraded_in_place() -> None:
    current = mappings.opensearch_index_body(8)["mappings"]
    assert mappings.upgrade_in_place_body(current) is None
    assert mappings.upgrade_in_place_body({"_meta": {"mapping_version": 1}}) is None  # needs a reindex
    body = mappings.upgrade_in_place_body({"_meta": {"mapping_version": 2, "dimension": 8}})
    assert body is not None
    assert body["_meta"] == {"mapping_version": mappings.MAPPING_VERSION, "dimension": 8}
    assert set(body["properties"]) == set(mappings.ACCESS_FIELDS)
