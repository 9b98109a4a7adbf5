"""Authentication: a credential in, a `Principal` out (service/access.py), or one 401 for all failures.

Three kinds of credential, tried in this order:
- a scoped key `rp_<id>_<secret>` in `x-api-key` (service/api/keys.py): its role and workspaces;
- a bootstrap key in `x-api-key`: the stack's generated key (Secrets Manager) or `API_KEYS`, an
  admin of every workspace, so the first deploy and the post-deploy smoke work before any scoped
  key exists;
- a signed-in user's `Authorization: Bearer <JWT>` when an issuer is configured (service/api/tokens.py).

Wrong, unknown, expired, revoked, tampered, wrong-audience and wrong-issuer credentials all get the
same 401 body: the response never says which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi.security import APIKeyHeader, HTTPBearer

from service.access import ALL_WORKSPACES, Principal, Role
from service.api.keys import ScopedKeys, looks_scoped
from service.contract import API_KEY_HEADER
from service.settings import Settings

if TYPE_CHECKING:
    # Imported only where an issuer is configured: joserfc and cryptography cost ~0.5 s of a
    # Lambda cold start (python -X importtime), which stacks without sign-in need not pay.
    from service.api.tokens import TokenVerifier


class SignInUnavailable(RuntimeError):
    """The issuer's keys could not be fetched and none are cached: a 503, not the caller's fault."""


def load_api_keys(settings: Settings, fetch_secret: Callable[[str], str] | None = None) -> tuple[str, ...]:
    """Keys from `API_KEYS`, then from the Secrets Manager secret (a JSON list or comma-separated)."""
    keys = [k.get_secret_value() for k in settings.api_keys]
    if settings.api_keys_secret_arn:
        if fetch_secret is None:
            fetch_secret = secrets_manager_reader()
        raw = fetch_secret(settings.api_keys_secret_arn)
        try:
            parsed = json.loads(raw)
            keys.extend(str(k) for k in (parsed if isinstance(parsed, list) else [parsed]))
        except json.JSONDecodeError:
            keys.extend(k.strip() for k in raw.split(",") if k.strip())
    return tuple(k for k in keys if k)


def secrets_manager_reader(max_age: int = 300) -> Callable[[str], str]:
    from aws_lambda_powertools.utilities.parameters import get_secret

    def fetch(arn: str) -> str:
        return str(get_secret(arn, max_age=max_age))

    return fetch


# Declare the `x-api-key` and bearer schemes in /openapi.json (and the "Authorize" button in
# /docs); auto_error is off so a missing credential gets the same 401 body as a wrong one.
API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key.")
BEARER_SCHEME = HTTPBearer(auto_error=False, description="A signed-in user's OIDC ID token (JWT).")

KEY_ONLY_DETAIL = f"missing or invalid API key in the {API_KEY_HEADER} header"
KEY_OR_TOKEN_DETAIL = f"missing or invalid API key in the {API_KEY_HEADER} header or bearer token"


def bootstrap_subject(key: str) -> str:
    """A stable, non-secret name for a bootstrap key (its rate-limit bucket, its log lines)."""
    return "bootstrap:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Authenticator:
    def __init__(
        self,
        bootstrap_keys: tuple[str, ...],
        scoped: ScopedKeys | None = None,
        tokens: TokenVerifier | None = None,
    ) -> None:
        self._bootstrap = tuple(k.encode() for k in bootstrap_keys)
        self._scoped = scoped
        self._tokens = tokens
        self.detail = KEY_OR_TOKEN_DETAIL if tokens is not None else KEY_ONLY_DETAIL

    @property
    def accepts_tokens(self) -> bool:
        return self._tokens is not None

    def _bootstrap_principal(self, key: str) -> Principal | None:
        supplied = key.encode()
        # Compare against every key so timing does not reveal which one nearly matched.
        matched = False
        for known in self._bootstrap:
            matched |= hmac.compare_digest(supplied, known)
        if not matched:
            return None
        return Principal(
            subject=bootstrap_subject(key), role=Role.ADMIN, workspaces=frozenset({ALL_WORKSPACES})
        )

    def authenticate(self, api_key: str | None, bearer: str | None) -> Principal | None:
        """The caller, or None for every kind of missing or invalid credential.

        A request that sends an API key is judged by the key alone: a bad key next to a good
        token is still refused, so a client's mistake is never masked.
        """
        if api_key:
            if looks_scoped(api_key) and self._scoped is not None:
                principal = self._scoped.verify(api_key)
                if principal is not None:
                    return principal
            return self._bootstrap_principal(api_key)
        if bearer and self._tokens is not None:
            return self._tokens.verify(bearer)
        return None
