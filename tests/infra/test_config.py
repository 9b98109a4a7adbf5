"""StackConfig: the stack files validate, and bad config fails naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from infra.config import PROVIDER_KEYS, ConfigError, OpenSearchServiceConfig, StackConfig, load_stack_config
from infra.naming import domain_name
from infra.stacks import stack_names
from infra.tools.offline import config_map, stack_file
from service.contract import PROJECT

# Every committed stack file, found on disk: a new one is checked without editing this test.
COMMITTED_STACKS = list(stack_names())


def raw_config(stack: str) -> dict[str, Any]:
    """The file's `config:` map exactly as the Pulumi CLI reads it: nothing added."""
    config: dict[str, Any] = yaml.safe_load(stack_file(stack).read_text())["config"]
    return config


def test_every_stack_file_is_found() -> None:
    assert {"prod", "staging"} <= set(COMMITTED_STACKS)


def engine_form(raw: dict[str, Any]) -> dict[str, str]:
    """How the engine hands config to the program: strings, structured values as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_committed_stack_file_validates_as_the_cli_reads_it(stack: str) -> None:
    # Given the committed stack file, with namespaced keys and no value filled in
    raw = raw_config(stack)
    assert all(k.startswith(f"{PROJECT}:") or k in PROVIDER_KEYS for k in raw), sorted(raw)
    # and no encrypted value: a first deploy needs no secret set by hand
    assert [k for k, v in raw.items() if isinstance(v, dict) and "secure" in v] == []
    # When it is loaded as `pulumi up` would hand it to the program
    config = load_stack_config(stack, engine_form(raw))
    # Then it validates: no key the program requires is missing (e.g. no manual apiKeys)
    assert config.stack == stack
    assert config.environment == stack


@pytest.mark.parametrize(
    ("section", "key"), [(None, "owner"), ("search", "replicas"), ("observability", "alarmEmail")]
)
def test_a_missing_key_is_named(section: str | None, key: str) -> None:
    # Given the staging file without one required key
    raw = raw_config("staging")
    if section is None:
        del raw[f"{PROJECT}:{key}"]
        expected = f"{PROJECT}:{key}"
    else:
        raw[f"{PROJECT}:{section}"] = {k: v for k, v in raw[f"{PROJECT}:{section}"].items() if k != key}
        expected = f"{PROJECT}:{section}.{key}"
    # When / Then: loading fails naming the key, as the cloud deploy would
    with pytest.raises(ConfigError, match=f"{expected}: Field required"):
        load_stack_config("staging", raw)


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_offline_runs_add_no_config_key(stack: str) -> None:
    # Given the map the offline tools hand the program
    values, secret_keys = config_map(stack)
    # Then it holds exactly the file's keys: no placeholder hides a key the cloud would miss
    assert set(values) == set(raw_config(stack))
    assert secret_keys == []


def test_unknown_key_fails_with_its_name() -> None:
    # Given a typo in a nested section
    raw = raw_config("staging")
    raw[f"{PROJECT}:search"] = {**raw[f"{PROJECT}:search"], "instanceTypo": "x"}
    raw[f"{PROJECT}:bogus"] = 1
    # When / Then: loading fails naming both keys
    with pytest.raises(ConfigError) as error:
        load_stack_config("staging", raw)
    assert f"{PROJECT}:search.instanceTypo" in str(error.value)
    assert f"{PROJECT}:bogus" in str(error.value)


def test_unknown_provider_key_fails() -> None:
    raw = {**raw_config("staging"), "aws:regoin": "us-east-1"}
    with pytest.raises(ConfigError, match="aws:regoin: unknown key"):
        load_stack_config("staging", raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("search", "instanceType", "t3.tiny.search", f"{PROJECT}:search.instanceType"),
        ("search", "tlsPolicy", "Policy-Min-TLS-1-0-2019-07", "TLS below 1.2"),
        ("ingest", "timeoutSeconds", 900, "must be below visibilityTimeoutSeconds"),
        ("ingest", "maxConcurrency", 1, f"{PROJECT}:ingest.maxConcurrency"),
        ("observability", "logRetentionDays", 10, f"{PROJECT}:observability.logRetentionDays"),
        ("models", "embeddingDimension", 384, f"{PROJECT}:models.embeddingDimension"),
    ],
)
def test_invalid_values_fail_with_the_key(section: str, key: str, value: Any, message: str) -> None:
    # Given one invalid value
    raw = raw_config("staging")
    raw[f"{PROJECT}:{section}"] = {**raw[f"{PROJECT}:{section}"], key: value}
    # When / Then
    with pytest.raises(ConfigError, match=message):
        load_stack_config("staging", raw)


def test_runtime_is_checked_against_botocore() -> None:
    raw = {**raw_config("staging"), f"{PROJECT}:lambdaRuntime": "python3.99"}
    with pytest.raises(ConfigError, match=rf"{PROJECT}:lambdaRuntime.*not a valid Lambda runtime"):
        load_stack_config("staging", raw)


def test_api_keys_are_no_config_key() -> None:
    # Given a stack file that still sets the old manual apiKeys
    raw = {**raw_config("staging"), f"{PROJECT}:apiKeys": ["key-1"]}
    # Then it is refused by name: the stack generates its key
    with pytest.raises(ConfigError, match=f"{PROJECT}:apiKeys: Extra inputs are not permitted"):
        load_stack_config("staging", raw)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"instanceCount": 1, "replicas": 1}, "replicas .1. must be at most instanceCount - 1 .0."),
        (
            {"instanceCount": 2, "availabilityZoneCount": 2, "replicas": 0},
            "replicas must be at least 1 when availabilityZoneCount > 1",
        ),
    ],
)
def test_replicas_must_fit_the_nodes(search: dict[str, Any], message: str) -> None:
    # Given replicas that a cluster of this size cannot place (yellow forever) or needs
    raw = raw_config("staging")
    raw[f"{PROJECT}:search"] = {**raw[f"{PROJECT}:search"], **search}
    # When / Then
    with pytest.raises(ConfigError, match=message):
        load_stack_config("staging", raw)


def test_structured_values_arrive_as_json_strings() -> None:
    # Given the map the engine hands the program (structured values as JSON strings)
    values, secret_keys = config_map("prod")
    # When it is loaded
    config = load_stack_config("prod", values)
    # Then nested sections are typed, and nothing arrives as a secret
    assert isinstance(config, StackConfig)
    assert isinstance(config.search, OpenSearchServiceConfig)
    assert config.search.dedicated_master_count == 3
    assert config.search.replicas == 1
    assert secret_keys == []


def test_a_third_stack_needs_only_values() -> None:
    # Given a `dev` stack written like staging, with its own environment name and tier (issue 13:
    # `environment` had to be staging or prod, so every dev resource was tagged staging)
    raw = raw_config("staging")
    raw[f"{PROJECT}:network"] = {**raw[f"{PROJECT}:network"], "cidr": "10.60.0.0/16"}
    raw[f"{PROJECT}:environment"] = "dev"
    raw[f"{PROJECT}:tier"] = "dev"
    # When it is loaded, Then it validates with the dev names and tags
    config = load_stack_config("dev", raw)
    assert config.domain_name == domain_name("dev")
    assert config.tags()["stack"] == "dev"
    assert config.tags()["environment"] == "dev"
    assert config.tags()["tier"] == "dev"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("environment", "Prod EU", "environment: String should match pattern"),
        ("tier", "gold", "tier: Value error, 'gold' is not a tier of infra/tiers.yaml"),
        ("tier", None, "tier: Field required"),
    ],
)
def test_environment_is_free_form_but_tag_safe_and_tier_is_declared(
    key: str, value: str | None, message: str
) -> None:
    # Given the staging file with a bad environment or tier (or none)
    raw = raw_config("staging")
    if value is None:
        del raw[f"{PROJECT}:{key}"]
    else:
        raw[f"{PROJECT}:{key}"] = value
    # When / Then it fails naming the key
    with pytest.raises(ConfigError, match=f"{PROJECT}:{message}"):
        load_stack_config("staging", raw)


@pytest.mark.parametrize(("stack", "replicas"), [("staging", 0), ("prod", 1)])
def test_cost_prices_the_replicas_of_the_stack_file(stack: str, replicas: int) -> None:
    from infra.tools.cost import StackFacts

    # Given the committed stack file, Then the index-growth estimate uses its search.replicas
    assert StackFacts.read(stack).replicas == replicas == raw_config(stack)[f"{PROJECT}:search"]["replicas"]
