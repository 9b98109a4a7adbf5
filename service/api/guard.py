"""The dependency in front of every protected route: the API key first, then its rate limit.

It returns the caller as a `Principal` (service/access.py); routes turn that into an
`AccessScope` with `authorize`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import HTTPException, Security, status

from service.access import ALL_WORKSPACES, Principal, Role
from service.api.auth import API_KEY_SCHEME, ApiKeyAuth
from service.api.ratelimit import TokenBucketLimiter, retry_after_header


def configured_key_principal(key: str) -> Principal:
    """A key from API_KEYS (or its secret) may do everything in every workspace, as before
    workspaces existed. Its subject is a hash prefix: the key itself is never logged or kept."""
    subject = "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return Principal(subject=subject, role=Role.ADMIN, workspaces=frozenset({ALL_WORKSPACES}))


class Guard:
    def __init__(self, auth: ApiKeyAuth, limiter: TokenBucketLimiter) -> None:
        self.auth = auth
        self.limiter = limiter

    def __call__(self, key: Annotated[str | None, Security(API_KEY_SCHEME)]) -> Principal:
        # Authenticate first: only valid keys get a bucket, so nobody can fill memory with junk keys.
        valid = self.auth(key)
        wait = self.limiter.acquire(valid)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of {self.limiter.per_minute} requests a minute exceeded for this API key",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return configured_key_principal(valid)
