"""The dependency in front of every protected route: authentication, then the rate limit per caller.

It returns the caller's `Principal`; routes turn it into an `AccessScope` with
`service.access.authorize` (403 without detail when the role or workspace is missing).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Security, status
from fastapi.security import HTTPAuthorizationCredentials

from service.access import Principal
from service.api.auth import API_KEY_SCHEME, BEARER_SCHEME, Authenticator, SignInUnavailable
from service.api.ratelimit import TokenBucketLimiter, retry_after_header


class Guard:
    def __init__(self, auth: Authenticator, limiter: TokenBucketLimiter) -> None:
        self.auth = auth
        self.limiter = limiter

    def __call__(
        self,
        key: Annotated[str | None, Security(API_KEY_SCHEME)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
    ) -> Principal:
        try:
            principal = self.auth.authenticate(key, bearer.credentials if bearer is not None else None)
        except SignInUnavailable:
            # The issuer's keys are unreachable: a fault on our side, not the caller's credential.
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "sign-in is unavailable for now; retry later"
            ) from None
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, self.auth.detail)
        # Only authenticated callers get a bucket, so nobody can fill memory with junk credentials;
        # the bucket is the key id or the user, so one key cannot use up another's limit.
        wait = self.limiter.acquire(principal.subject)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of {self.limiter.per_minute} requests a minute exceeded for this caller",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return principal
