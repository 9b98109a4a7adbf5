"""Search engine settings the engine itself would refuse are refused at config load, naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from service.contract import Env
from service.settings import SettingsError, load_settings
from service.wiring import build_backend


def test_elasticsearch_refuses_more_than_4096_dimensions() -> None:
    # Given an Elasticsearch backend and an 8192-dimension embedder (dense_vector takes 4096)
    # When settings load, then they fail naming EMBEDDING_DIMENSION
    with pytest.raises(SettingsError, match=f"{Env.EMBEDDING_DIMENSION}=8192 exceeds the 4096"):
        load_settings(
            search_backend="elasticsearch", search_endpoint="https://es.example.com", embedding_dimension=8192
        )
    # And 4096 itself, or 8192 on OpenSearch (16,000 allowed), still loads
    assert (
        load_settings(
            search_backend="elasticsearch", search_endpoint="https://es.example.com", embedding_dimension=4096
        ).embedding_dimension
        == 4096
    )
    assert (
        load_settings(
            search_backend="opensearch", search_endpoint="https://os.example.com", embedding_dimension=8192
        ).embedding_dimension
        == 8192
    )


@pytest.mark.parametrize(
    "endpoint", ["abc123.us-east-1.aoss.amazonaws.com", "https://abc123.eu-west-1.aoss.amazonaws.com:443"]
)
def test_opensearch_serverless_is_refused_at_config_load(endpoint: str) -> None:
    # Given an OpenSearch Serverless collection endpoint, with or without a scheme
    # When settings load, then they fail naming SEARCH_ENDPOINT and why
    with pytest.raises(
        SettingsError, match=f"{Env.SEARCH_ENDPOINT}=.*OpenSearch Serverless.*own document ids"
    ):
        load_settings(search_backend="opensearch", search_endpoint=endpoint)


def test_opensearch_service_domains_still_load() -> None:
    settings = load_settings(
        search_backend="opensearch", search_endpoint="vpc-rag.eu-west-1.es.amazonaws.com"
    )
    assert settings.search_endpoint == "vpc-rag.eu-west-1.es.amazonaws.com"


def test_local_vector_index_hnsw_puts_the_graph_behind_the_local_engine(tmp_path: Path) -> None:
    # Given LOCAL_VECTOR_INDEX=hnsw, and the default
    hnsw = load_settings(data_dir=tmp_path / "a", local_vector_index="hnsw")
    exact = load_settings(data_dir=tmp_path / "b")
    # When the local backend is built and a vector is written and searched
    backends = {}
    for name, settings in (("hnsw", hnsw), ("exact", exact)):
        backend = build_backend(settings, 4)
        backend.ensure_index()
        backends[name] = backend
    # Then only the hnsw backend searches through an approximate graph
    assert hnsw.local_ann is not None
    assert exact.local_ann is None
    assert cast(Any, backends["hnsw"])._current()._vectors._ann is not None
    assert cast(Any, backends["exact"])._current()._vectors._ann is None


def test_an_unknown_local_vector_index_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a typo in the environment / Then settings fail naming LOCAL_VECTOR_INDEX and the choices
    monkeypatch.setenv(Env.LOCAL_VECTOR_INDEX, "hnws")
    with pytest.raises(SettingsError, match=f"{Env.LOCAL_VECTOR_INDEX}.*'exact', 'projected' or 'hnsw'"):
        load_settings()
