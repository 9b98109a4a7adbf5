"""API keys: where they come from (API_KEYS, Secrets Manager), how a request's key is checked (issue 16)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.access import ALL_WORKSPACES, Role
from service.api.auth import Authenticator, load_api_keys, secrets_manager_reader
from service.api.keys import ScopedKeys, new_key
from service.api.keys_sqlite import SqliteKeyStore
from service.api.tokens import JwksCache, TokenPolicy, TokenVerifier
from service.api.tokens_dev import DEV_AUDIENCE, DEV_ISSUER, dev_jwks, ensure_dev_key, issue_dev_token
from service.contract import API_KEY_HEADER
from service.settings import GroupGrant, Settings


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


PEPPER = b"p" * 32
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def scoped_key(tmp_path: Path, role: Role = Role.READER) -> tuple[str, ScopedKeys]:
    """A scoped key for workspace `eng`, stored where a `ScopedKeys` verifier finds it."""
    store = SqliteKeyStore(tmp_path / "keys.sqlite")
    plaintext, record = new_key(PEPPER, name="ci", role=role, workspaces=("eng",), now=NOW, expires_at=None)
    store.create(record)
    return plaintext, ScopedKeys(store, lambda: PEPPER, clock=lambda: NOW)


def signed_in(tmp_path: Path) -> tuple[str, TokenVerifier]:
    """A signed-in user's token and a verifier that trusts its issuer (the local dev issuer)."""
    ensure_dev_key(tmp_path)
    policy = TokenPolicy(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        algorithms=("ES256",),
        group_map={"eng": GroupGrant(workspaces=("eng",), role="writer")},
    )
    token = issue_dev_token(tmp_path, user="ann", groups=["eng"])
    return token, TokenVerifier(policy, JwksCache(lambda: dev_jwks(tmp_path)))


def test_a_scoped_key_is_its_own_role_and_workspaces_not_an_admin(tmp_path: Path) -> None:
    # Given a reader key for `eng` and the store that holds it, next to a bootstrap key
    plaintext, scoped = scoped_key(tmp_path)
    auth = Authenticator(("first-key-0001",), scoped)
    # When a request sends the scoped key
    principal = auth.authenticate(plaintext, None)
    # Then it is that key: a reader of `eng`, named by its public id only
    assert principal is not None
    assert (principal.role, principal.workspaces) == (Role.READER, frozenset({"eng"}))
    key_id = plaintext.split("_")[1]
    assert principal.subject == f"key:{key_id}"
    assert plaintext.split("_", 2)[2] not in principal.subject


def test_a_scoped_key_wins_over_a_bearer_token_sent_with_it(tmp_path: Path) -> None:
    # Given both a scoped key and a valid signed-in user's token
    plaintext, scoped = scoped_key(tmp_path / "keys")
    token, tokens = signed_in(tmp_path / "issuer")
    auth = Authenticator((), scoped, tokens)
    # When a request sends both / Then the key alone decides (docstring of authenticate)
    principal = auth.authenticate(plaintext, token)
    assert principal is not None
    assert principal.subject.startswith("key:")
    # and a wrong key next to the good token is refused, never masked by the token
    assert auth.authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"), token) is None


def test_a_scoped_looking_key_without_a_key_store_is_refused_not_a_crash() -> None:
    # Given an API with bootstrap keys only (no scoped-key store wired)
    auth = Authenticator(("first-key-0001",))
    # When a request sends a key in the scoped format / Then it is simply refused
    assert_refused(auth, "rp_" + "0" * 16 + "_" + "s" * 32)


def test_a_bootstrap_key_in_the_scoped_format_still_works_when_no_scoped_key_matches(
    tmp_path: Path,
) -> None:
    # Given a bootstrap key that happens to start with `rp_`, and a scoped-key store
    _, scoped = scoped_key(tmp_path)
    auth = Authenticator(("rp_bootstrap-key-0001",), scoped)
    # Then the store's miss falls back to the bootstrap keys: the operator's key is an admin
    principal = auth.authenticate("rp_bootstrap-key-0001", None)
    assert principal is not None
    assert principal.role is Role.ADMIN


def test_a_signed_in_users_token_is_accepted_when_an_issuer_is_configured(tmp_path: Path) -> None:
    # Given an issuer configured next to the bootstrap keys
    token, tokens = signed_in(tmp_path)
    auth = Authenticator(("first-key-0001",), None, tokens)
    # When a request sends only the user's bearer token
    principal = auth.authenticate(None, token)
    # Then the user is the principal, with the group's grant
    assert principal is not None
    assert principal.user == "ann"
    assert (principal.role, principal.workspaces) == (Role.WRITER, frozenset({"eng"}))
    # and the 401 names both credentials a caller may send
    assert auth.accepts_tokens
    assert auth.detail == f"missing or invalid API key in the {API_KEY_HEADER} header or bearer token"
    # while a tampered token is refused
    assert auth.authenticate(None, token[:-4] + "AAAA") is None


def test_a_bootstrap_key_is_named_by_its_sha256_fingerprint() -> None:
    # Given a bootstrap key (operators find which key made a request from its log lines)
    key = "first-key-0001"
    # When it authenticates
    principal = Authenticator((key,)).authenticate(key, None)
    # Then its subject is `bootstrap:` and the first 12 hex digits of the key's SHA-256,
    # which `printf %s "$KEY" | sha256sum | cut -c1-12` reproduces without the log holding the key
    assert principal is not None
    assert principal.subject == "bootstrap:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class FrozenNow:
    """Stands in for `datetime` in Powertools' parameter cache, so the test moves its clock."""

    now_value = datetime(2026, 6, 1, 12, 0)

    @classmethod
    def now(cls) -> datetime:
        return cls.now_value


def test_secrets_are_cached_for_five_minutes_then_read_again(
    secretsmanager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the reader the API uses for its secrets (the pepper is read on every scoped-key
    # request), and Powertools' cache clock under the test's control
    from aws_lambda_powertools.utilities.parameters import base

    monkeypatch.setattr(base, "datetime", FrozenNow)
    start = FrozenNow.now_value
    arn = secretsmanager.create_secret(Name="rag/pepper", SecretString="first")["ARN"]
    read = secrets_manager_reader()
    assert read(arn) == "first"
    # When the secret changes
    secretsmanager.put_secret_value(SecretId=arn, SecretString="second")
    # Then reads within 300 s are served from the cache (no Secrets Manager call per request)
    monkeypatch.setattr(FrozenNow, "now_value", start + timedelta(seconds=300))
    assert read(arn) == "first"
    # and the first read after 300 s fetches the new value
    monkeypatch.setattr(FrozenNow, "now_value", start + timedelta(seconds=300, milliseconds=500))
    assert read(arn) == "second"
