from __future__ import annotations

from pathlib import Path

import pytest

from service.contract import Env, SearchBackendName
from service.settings import Settings, SettingsError, load_settings


def test_every_contract_variable_binds_a_settings_field() -> None:
    # Given the aliases the settings read
    aliases = {str(f.validation_alias.choices[0]) for f in Settings.model_fields.values()}  # type: ignore[union-attr]
    contract = {e.value for e in Env}
    # Then every field reads a contract variable
    assert aliases <= contract
    # And the variables the service does not read belong to other readers (Powertools, the post-deploy suite)
    assert all(name.startswith(("POWERTOOLS_", "POSTDEPLOY_")) for name in contract - aliases)


def test_reads_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given contract variables in the environment
    monkeypatch.setenv(Env.ENVIRONMENT, "staging")
    monkeypatch.setenv(Env.LEDGER_TABLE, "ledger")
    monkeypatch.setenv(Env.SEARCH_BACKEND, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT, "https://search.example")
    monkeypatch.setenv(Env.EMBEDDER, "bedrock")
    monkeypatch.setenv(Env.CHUNK_SIZE, "800")
    monkeypatch.setenv(Env.API_KEYS, "a, b")
    # When settings load
    settings = load_settings()
    # Then they are typed and split
    assert settings.environment == "staging"
    assert settings.chunk_size == 800
    assert [k.get_secret_value() for k in settings.api_keys] == ["a", "b"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (Env.ENVIRONMENT, "Prod EU", "ENVIRONMENT"),
        (Env.CHUNK_SIZE, "ten", "CHUNK_SIZE"),
        (Env.HYBRID_ALPHA, "1.5", "HYBRID_ALPHA"),
        (Env.SEARCH_MODE, "fuzzy", "SEARCH_MODE"),
    ],
)
def test_invalid_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: Env, value: str, named: str
) -> None:
    # Given an invalid value
    monkeypatch.setenv(variable, value)
    # When settings load, then the error names the variable
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_any_tag_safe_environment_is_a_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stack whose environment is neither staging nor prod (issue 13: `dev` failed to load)
    monkeypatch.setenv(Env.ENVIRONMENT, "dev")
    monkeypatch.setenv(Env.LEDGER_TABLE, "ledger")
    monkeypatch.setenv(Env.SEARCH_BACKEND, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT, "https://search.example")
    monkeypatch.setenv(Env.EMBEDDER, "bedrock")
    # When settings load, Then it is accepted, and held to the cloud's rules like any non-local one
    assert load_settings().require_serving().environment == "dev"
    monkeypatch.delenv(Env.LEDGER_TABLE)
    with pytest.raises(SettingsError, match="LEDGER_TABLE is required when ENVIRONMENT=dev"):
        load_settings().require_serving()


def test_overlap_must_be_smaller_than_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.CHUNK_SIZE, "200")
    monkeypatch.setenv(Env.CHUNK_OVERLAP, "200")
    with pytest.raises(SettingsError, match="CHUNK_OVERLAP"):
        load_settings()


def test_remote_backend_requires_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.SEARCH_BACKEND, SearchBackendName.OPENSEARCH)
    with pytest.raises(SettingsError, match="SEARCH_ENDPOINT"):
        load_settings()


def test_every_contract_variable_is_documented() -> None:
    # Given the configuration guide
    guide = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    # Then every environment variable of the contract has a row in it
    assert [e.value for e in Env if f"| `{e.value}` |" not in guide] == []


@pytest.mark.parametrize(
    ("dropped", "named"),
    [(Env.LEDGER_TABLE, "LEDGER_TABLE"), (Env.SEARCH_BACKEND, "SEARCH_BACKEND"), (Env.EMBEDDER, "EMBEDDER")],
)
def test_cloud_environment_refuses_the_local_fallbacks(
    monkeypatch: pytest.MonkeyPatch, dropped: Env, named: str
) -> None:
    # Given a staging function's variables with one of them dropped
    cloud = {
        Env.ENVIRONMENT: "staging",
        Env.LEDGER_TABLE: "ledger",
        Env.SEARCH_BACKEND: "opensearch",
        Env.SEARCH_ENDPOINT: "https://search.example",
        Env.EMBEDDER: "bedrock",
    }
    for variable, value in cloud.items():
        if variable is not dropped:
            monkeypatch.setenv(variable, value)
    # When a serving function's settings load, then the error names the missing variable
    # instead of using a local default
    with pytest.raises(SettingsError, match=named):
        load_settings().require_serving()


def test_the_search_provisioner_needs_no_ledger_or_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the provisioner's variables: a cluster, and neither a ledger table nor an embedder
    monkeypatch.setenv(Env.ENVIRONMENT, "staging")
    monkeypatch.setenv(Env.SEARCH_BACKEND, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT, "https://search.example")
    # When its settings load, then they are valid; only serving functions need the rest
    assert load_settings().search_endpoint == "https://search.example"
    with pytest.raises(SettingsError, match="LEDGER_TABLE"):
        load_settings().require_serving()
