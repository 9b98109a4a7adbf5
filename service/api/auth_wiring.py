"""Build the API's `Authenticator` from the settings: which key store, which pepper, which issuer.

Locally the key store and the pepper live in the data directory (SQLite, a 0600 file) and the
development signing key stands in for an issuer; in a stack they are the keys table, the pepper
secret and the configured issuer's JWKS. A stack without its keys table or pepper secret fails at
cold start, naming the variable, instead of quietly accepting only the bootstrap key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from service.api.auth import Authenticator, secrets_manager_reader
from service.api.keys import KeyStore, Pepper, ScopedKeys, file_pepper, local_pepper_path, secret_pepper
from service.contract import EnvironmentName
from service.settings import Settings, SettingsError

if TYPE_CHECKING:
    # service.api.tokens imports joserfc: only when an issuer is configured (see service/api/auth.py).
    from service.api.tokens import JwksCache, JwksSource, TokenPolicy


def build_key_store(settings: Settings) -> KeyStore:
    if settings.keys_table:
        from service.api.keys_dynamodb import DynamoDbKeyStore
        from service.wiring import aws_client

        return DynamoDbKeyStore(aws_client(settings, "dynamodb"), settings.keys_table)
    if settings.environment != EnvironmentName.LOCAL:
        raise SettingsError(f"KEYS_TABLE is required when ENVIRONMENT={settings.environment}")
    from service.api.keys_sqlite import SqliteKeyStore, local_keys_path

    return SqliteKeyStore(local_keys_path(settings.data_dir))


def build_pepper(settings: Settings, fetch_secret: Callable[[str], str] | None = None) -> Pepper:
    arn = settings.api_key_pepper_secret_arn
    if arn:
        reader = fetch_secret or secrets_manager_reader()
        return secret_pepper(lambda: reader(arn))
    if settings.environment != EnvironmentName.LOCAL:
        raise SettingsError(f"API_KEY_PEPPER_SECRET_ARN is required when ENVIRONMENT={settings.environment}")
    return file_pepper(local_pepper_path(settings.data_dir))


def token_policy(settings: Settings) -> TokenPolicy | None:
    if not settings.auth_issuer or not settings.auth_audience:
        return None
    from service.api.tokens import TokenPolicy

    return TokenPolicy(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        algorithms=settings.auth_algorithms,
        groups_claim=settings.auth_groups_claim,
        user_claim=settings.auth_user_claim,
        group_map=settings.auth_group_map,
        leeway_seconds=settings.auth_leeway_seconds,
    )


def jwks_source(settings: Settings) -> JwksSource:
    if settings.auth_dev_tokens:
        from service.api.tokens_dev import dev_jwks

        return lambda: dev_jwks(settings.data_dir)
    from service.api.tokens import http_jwks

    url = settings.jwks_url
    assert url is not None  # an issuer is set
    return http_jwks(url)


def build_authenticator(
    settings: Settings,
    bootstrap_keys: tuple[str, ...],
    *,
    key_store: KeyStore | None = None,
    pepper: Pepper | None = None,
    jwks: JwksCache | None = None,
    now: Callable[[], datetime] | None = None,
) -> Authenticator:
    scoped = ScopedKeys(key_store or build_key_store(settings), pepper or build_pepper(settings), clock=now)
    policy = token_policy(settings)
    tokens = None
    if policy is not None:
        from service.api.tokens import JwksCache, TokenVerifier

        tokens = TokenVerifier(policy, jwks or JwksCache(jwks_source(settings)))
    return Authenticator(bootstrap_keys, scoped, tokens)
