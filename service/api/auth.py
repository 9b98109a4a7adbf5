"""API-key auth: header `x-api-key`, compared in constant time against the configured keys."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Annotated

from fastapi import HTTPException, Security, status
from fastapi.security import APIKeyHeader

from service.contract import API_KEY_HEADER
from service.settings import Settings


def load_api_keys(settings: Settings, fetch_secret: Callable[[str], str] | None = None) -> tuple[str, ...]:
    """Keys from `API_KEYS`, then from the Secrets Manager secret (a JSON list or comma-separated)."""
    keys = [k.get_secret_value() for k in settings.api_keys]
    if settings.api_keys_secret_arn:
        if fetch_secret is None:
            from aws_lambda_powertools.utilities.parameters import get_secret

            def fetch_secret(arn: str) -> str:
                return str(get_secret(arn, max_age=300))

        raw = fetch_secret(settings.api_keys_secret_arn)
        try:
            parsed = json.loads(raw)
            keys.extend(str(k) for k in (parsed if isinstance(parsed, list) else [parsed]))
        except json.JSONDecodeError:
            keys.extend(k.strip() for k in raw.split(",") if k.strip())
    return tuple(k for k in keys if k)


# Declares the `x-api-key` security scheme in /openapi.json (and the "Authorize" button in
# /docs); auto_error is off so a missing key gets the same 401 body as a wrong one.
API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key.")


class ApiKeyAuth:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    def __call__(self, key: Annotated[str | None, Security(API_KEY_SCHEME)]) -> str:
        supplied = (key or "").encode()
        # Compare against every key so timing does not reveal which one nearly matched.
        matched = False
        for known in self._keys:
            matched |= hmac.compare_digest(supplied, known)
        if not supplied or not matched:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail=f"missing or invalid API key in the {API_KEY_HEADER} header",
            )
        return supplied.decode()
