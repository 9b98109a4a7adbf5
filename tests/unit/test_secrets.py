"""service/secrets.py and its wiring: credentials of endpoints outside AWS come from Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from service.contract import Env
from service.secrets import wanted, with_secrets
from service.settings import SettingsError, load_settings
from service.wiring import Container, build_embedder

CLOUD = {
    Env.AWS_REGION.value: "eu-west-1",
    Env.SEARCH_CREDENTIALS_SECRET_ID.value: "rag-platform-dev/search-credentials",
    Env.OPENAI_API_KEY_SECRET_ID.value: "rag-platform-dev/model-api-key",
    Env.EMBEDDER.value: "openai",
    Env.GENERATOR.value: "openai",
    Env.OPENAI_BASE_URL.value: "https://llm.example.test/v1",
    Env.EMBEDDING_MODEL_ID.value: "text-embedding-3-small",
    Env.EMBEDDING_DIMENSION.value: "1536",
}


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CLOUD.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def secrets_manager(cloud_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_both_secrets_are_read_once_into_their_settings(cloud_env: None) -> None:
    # Given settings naming both secrets
    settings = load_settings()
    assert wanted(settings) == ["rag-platform-dev/search-credentials", "rag-platform-dev/model-api-key"]
    fetched: list[str] = []

    def fetch(secret_id: str) -> str:
        fetched.append(secret_id)
        return {
            "rag-platform-dev/search-credentials": "ZWxhc3RpYw==\n",
            "rag-platform-dev/model-api-key": "sk-live",
        }[secret_id]

    # When the secrets are resolved
    resolved = with_secrets(settings, fetch)
    # Then each value lands in its setting, stripped, and nothing is left to fetch
    assert resolved.search_api_key is not None
    assert resolved.search_api_key.get_secret_value() == "ZWxhc3RpYw=="
    assert resolved.openai_api_key is not None
    assert resolved.openai_api_key.get_secret_value() == "sk-live"
    assert fetched == ["rag-platform-dev/search-credentials", "rag-platform-dev/model-api-key"]
    assert wanted(resolved) == []


def test_an_empty_or_unreadable_secret_stops_the_function_naming_variable_and_secret(cloud_env: None) -> None:
    def fetch(secret_id: str) -> str:
        if secret_id.endswith("model-api-key"):
            raise RuntimeError("AccessDeniedException")
        return "   "

    with pytest.raises(SettingsError) as caught:
        with_secrets(load_settings(), fetch)
    message = str(caught.value)
    assert (
        "SEARCH_CREDENTIALS_SECRET_ID=rag-platform-dev/search-credentials: the secret holds no value"
        in message
    )
    assert "OPENAI_API_KEY_SECRET_ID=rag-platform-dev/model-api-key: cannot read the secret" in message


def test_a_value_set_directly_is_not_fetched_again(cloud_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.OPENAI_API_KEY.value, "sk-local")
    monkeypatch.delenv(Env.SEARCH_CREDENTIALS_SECRET_ID.value)
    settings = load_settings()
    assert wanted(settings) == []
    assert with_secrets(settings, lambda secret_id: pytest.fail("fetched")) is settings


def test_the_container_reads_the_secrets_from_secrets_manager(secrets_manager: Any) -> None:
    # Given both secrets in (moto's) Secrets Manager
    secrets_manager.create_secret(Name="rag-platform-dev/search-credentials", SecretString="ZWxhc3RpYw==")
    secrets_manager.create_secret(Name="rag-platform-dev/model-api-key", SecretString="sk-live")
    # When a container is built from the environment, as at a cold start
    container = Container(load_settings())
    # Then the embedder it builds sends the key from the secret
    embedder: Any = build_embedder(container.settings)
    assert embedder._headers["Authorization"] == "Bearer sk-live"
    assert embedder.model_id == "text-embedding-3-small"
    assert embedder.dimension == 1536


def test_a_missing_secret_fails_the_cold_start(secrets_manager: Any) -> None:
    with pytest.raises(SettingsError, match="OPENAI_API_KEY_SECRET_ID=rag-platform-dev/model-api-key"):
        Container(load_settings())


def test_the_openai_embedder_needs_its_base_url(cloud_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(Env.OPENAI_BASE_URL.value)
    monkeypatch.setenv(Env.GENERATOR.value, "extractive")
    with pytest.raises(SettingsError, match="OPENAI_BASE_URL is required when EMBEDDER=openai"):
        load_settings()


def test_opensearch_credentials_are_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.search.opensearch import basic_auth

    monkeypatch.setenv(Env.SEARCH_BACKEND.value, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT.value, "https://search.example.com:9200")
    monkeypatch.setenv(Env.SEARCH_API_KEY.value, "rag-writer:pa:ss")
    assert basic_auth(load_settings()) == ("rag-writer", "pa:ss")
    monkeypatch.setenv(Env.SEARCH_API_KEY.value, "no-colon")
    with pytest.raises(ValueError, match="must be 'username:password'"):
        basic_auth(load_settings())
