"""The dependency in front of every protected route: the API key first, then its rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Security, status

from service.api.auth import API_KEY_SCHEME, ApiKeyAuth
from service.api.ratelimit import TokenBucketLimiter, retry_after_header


class Guard:
    def __init__(self, auth: ApiKeyAuth, limiter: TokenBucketLimiter) -> None:
        self.auth = auth
        self.limiter = limiter

    def __call__(self, key: Annotated[str | None, Security(API_KEY_SCHEME)]) -> str:
        # Authenticate first: only valid keys get a bucket, so nobody can fill memory with junk keys.
        valid = self.auth(key)
        wait = self.limiter.acquire(valid)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of {self.limiter.per_minute} requests a minute exceeded for this API key",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return valid
