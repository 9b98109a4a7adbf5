"""API keys: where they come from (API_KEYS, Secrets Manager), how a request's key is checked (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.access import ALL_WORKSPACES, Role
from service.api.auth import Authenticator, load_api_keys
from service.contract import API_KEY_HEADER
from service.settings import Settings


@pytest.fixture
def secretsmanager() -> Iterator[Any]:
    """moto Secrets Manager, with Powertools' secret cache emptied before and after."""
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    parameters.clear_caches()  # type: ignore[no-untyped-call]
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def settings_with(tmp_path: Path, **values: object) -> Settings:
    return Settings.model_validate({"data_dir": tmp_path / "data", **values})


# The formats docs/api.md and service/api/auth.py promise for the secret's value; infra stores a JSON list.
SECRET_FORMATS = [
    pytest.param('["key-one", "key-two"]', ("key-one", "key-two"), id="json-list"),
    pytest.param('["key-one", ""]', ("key-one",), id="json-list-with-a-blank"),
    pytest.param('"key-one"', ("key-one",), id="json-string"),
    pytest.param("key-one, key-two ,,", ("key-one", "key-two"), id="comma-separated"),
    pytest.param("key-one", ("key-one",), id="one-plain-key"),
]


@pytest.mark.parametrize(("secret", "expected"), SECRET_FORMATS)
def test_keys_load_from_secrets_manager_in_each_documented_format(
    secretsmanager: Any, tmp_path: Path, secret: str, expected: tuple[str, ...]
) -> None:
    # Given the keys secret in Secrets Manager, named by API_KEYS_SECRET_ARN
    arn = secretsmanager.create_secret(Name="rag/api-keys", SecretString=secret)["ARN"]
    settings = settings_with(tmp_path, api_keys_secret_arn=arn)
    # When the API loads its keys the way the Lambda does (no injected fetcher)
    keys = load_api_keys(settings)
    # Then they are exactly the secret's keys
    assert keys == expected


def test_keys_from_the_variable_come_first_then_the_secret(secretsmanager: Any, tmp_path: Path) -> None:
    # Given keys in API_KEYS and in the secret
    arn = secretsmanager.create_secret(Name="rag/api-keys", SecretString='["cloud-key"]')["ARN"]
    settings = settings_with(tmp_path, api_keys="env-one,env-two", api_keys_secret_arn=arn)
    # Then both sets are accepted, the variable's first
    assert load_api_keys(settings) == ("env-one", "env-two", "cloud-key")


def test_a_missing_secret_fails_loudly_instead_of_leaving_the_api_open_or_shut(
    secretsmanager: Any, tmp_path: Path
) -> None:
    # Given an ARN naming no secret (a stack output read wrongly, a missing grant)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rag/missing-AbCdEf"
    settings = settings_with(tmp_path, api_keys_secret_arn=arn)
    # Then loading the keys raises: the cold start fails where the operator can see it
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    with pytest.raises(GetParameterError, match="ResourceNotFound"):
        load_api_keys(settings)


def test_without_a_secret_only_the_variable_counts_and_nothing_is_fetched(tmp_path: Path) -> None:
    # Given API_KEYS only
    fetched: list[str] = []

    def fetch(arn: str) -> str:
        fetched.append(arn)
        return '["unexpected"]'

    settings = settings_with(tmp_path, api_keys="only-key")
    # Then no secret is fetched
    assert load_api_keys(settings, fetch) == ("only-key",)
    assert fetched == []


def test_an_injected_fetcher_gets_the_configured_arn(tmp_path: Path) -> None:
    # Given a fetcher seam (as the local platform passes)
    arns: list[str] = []

    def fetch(arn: str) -> str:
        arns.append(arn)
        return '["seam-key"]'

    settings = settings_with(tmp_path, api_keys_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:k")
    # Then it is asked for that ARN, once
    assert load_api_keys(settings, fetch) == ("seam-key",)
    assert arns == ["arn:aws:secretsmanager:eu-west-1:1:secret:k"]


def assert_refused(auth: Authenticator, key: str | None) -> None:
    """`auth` refuses `key`; the guard turns that into the documented 401."""
    assert auth.authenticate(key, None) is None
    assert auth.detail == f"missing or invalid API key in the {API_KEY_HEADER} header"


def test_every_configured_key_is_an_admin_of_every_workspace_named_without_its_secret() -> None:
    # Given two configured bootstrap keys
    auth = Authenticator(("first-key-0001", "second-key-0002"))
    # Then each one is accepted as an admin of every workspace (the first deploy's key)
    first, second = auth.authenticate("first-key-0001", None), auth.authenticate("second-key-0002", None)
    assert first is not None
    assert second is not None
    assert (first.role, first.workspaces) == (Role.ADMIN, frozenset({ALL_WORKSPACES}))
    # with distinct subjects (their rate-limit buckets) that do not contain the key
    assert first.subject != second.subject
    assert "first-key" not in first.subject


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("first-key", id="a-prefix-of-a-key"),
        pytest.param("f", id="one-character-prefix"),
        pytest.param("first-key-0001x", id="a-key-with-a-suffix"),
        pytest.param("first-key-0002", id="a-key-with-one-character-changed"),
        pytest.param("FIRST-KEY-0001", id="another-case"),
        pytest.param("first-key-0001second-key-0002", id="two-keys-joined"),
    ],
)
def test_anything_but_an_exact_key_is_refused(key: str | None) -> None:
    # Given two configured keys
    auth = Authenticator(("first-key-0001", "second-key-0002"))
    # Then a missing, partial, extended or altered key is refused
    assert_refused(auth, key)


@pytest.mark.parametrize("key", [None, "", "anything"])
def test_with_no_keys_configured_every_request_is_refused(key: str | None) -> None:
    # Given no keys at all (an empty API_KEYS and no secret) / Then nothing gets in, not even ""
    assert_refused(Authenticator(()), key)


def test_a_bearer_token_is_ignored_when_no_issuer_is_configured() -> None:
    # Given no issuer: a bearer token is no credential at all
    assert Authenticator(("first-key-0001",)).authenticate(None, "a.b.c") is None
