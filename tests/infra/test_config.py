"""StackConfig: the stack files validate, and bad config fails naming the key."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.config import ConfigError, StackConfig, load_stack_config
from infra.tools.offline import config_map, stack_file

SECRET = ["rag-platform:apiKeys"]


def raw_config(stack: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(stack_file(stack).read_text())["config"]
    config["rag-platform:apiKeys"] = ["key-1"]
    return config


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_files_validate(stack: str) -> None:
    # Given the committed stack file, When it is loaded, Then it validates.
    config = load_stack_config(stack, raw_config(stack), SECRET)
    assert config.stack == stack
    assert config.environment.value == stack


def test_unknown_key_fails_with_its_name() -> None:
    # Given a typo in a nested section
    raw = raw_config("staging")
    raw["rag-platform:search"] = {**raw["rag-platform:search"], "instanceTypo": "x"}
    raw["rag-platform:bogus"] = 1
    # When / Then: loading fails naming both keys
    with pytest.raises(ConfigError) as error:
        load_stack_config("staging", raw, SECRET)
    assert "rag-platform:search.instanceTypo" in str(error.value)
    assert "rag-platform:bogus" in str(error.value)


def test_unknown_provider_key_fails() -> None:
    raw = {**raw_config("staging"), "aws:regoin": "us-east-1"}
    with pytest.raises(ConfigError, match="aws:regoin: unknown key"):
        load_stack_config("staging", raw, SECRET)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("search", "instanceType", "t3.tiny.search", "rag-platform:search.instanceType"),
        ("search", "tlsPolicy", "Policy-Min-TLS-1-0-2019-07", "TLS below 1.2"),
        ("ingest", "timeoutSeconds", 900, "must be below visibilityTimeoutSeconds"),
        ("ingest", "maxConcurrency", 1, "rag-platform:ingest.maxConcurrency"),
        ("observability", "logRetentionDays", 10, "rag-platform:observability.logRetentionDays"),
        ("models", "embeddingDimension", 384, "rag-platform:models.embeddingDimension"),
    ],
)
def test_invalid_values_fail_with_the_key(section: str, key: str, value: Any, message: str) -> None:
    # Given one invalid value
    raw = raw_config("staging")
    raw[f"rag-platform:{section}"] = {**raw[f"rag-platform:{section}"], key: value}
    # When / Then
    with pytest.raises(ConfigError, match=message):
        load_stack_config("staging", raw, SECRET)


def test_runtime_is_checked_against_botocore() -> None:
    raw = {**raw_config("staging"), "rag-platform:lambdaRuntime": "python3.99"}
    with pytest.raises(ConfigError, match=r"rag-platform:lambdaRuntime.*not a valid Lambda runtime"):
        load_stack_config("staging", raw, SECRET)


def test_api_keys_must_be_a_secret() -> None:
    # Given apiKeys set in plain text
    with pytest.raises(
        ConfigError, match="rag-platform:apiKeys: must be set with `pulumi config set --secret`"
    ):
        load_stack_config("staging", raw_config("staging"), [])


def test_structured_values_arrive_as_json_strings() -> None:
    # Given the map the engine hands the program (structured values as JSON strings)
    values, secret_keys = config_map("prod")
    # When it is loaded
    config = load_stack_config("prod", values, secret_keys)
    # Then nested sections are typed
    assert isinstance(config, StackConfig)
    assert config.search.dedicated_master_count == 3
    assert "rag-platform:apiKeys" in secret_keys


def test_a_third_stack_needs_only_values() -> None:
    # Given a `dev` stack written like staging (as docs/deploying.md shows)
    raw = raw_config("staging")
    raw["rag-platform:network"] = {**raw["rag-platform:network"], "cidr": "10.60.0.0/16"}
    # When it is loaded, Then it validates with the dev names
    config = load_stack_config("dev", raw, SECRET)
    assert config.domain_name == "rag-platform-dev"
    assert config.tags()["stack"] == "dev"
