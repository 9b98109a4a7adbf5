"""With the edge on, only CloudFront (which sends the origin secret) reaches the API."""

from __future__ import annotations

from typing import Any

from service.api.origin import REFRESH_AFTER_MISMATCH_SECONDS, OriginGuard
from service.contract import ORIGIN_VERIFY_HEADER


class Secret:
    """The Secrets Manager value as the guard sees it: cached unless forced."""

    def __init__(self, value: str) -> None:
        self.current = value
        self.cached = value
        self.forced = 0

    def fetch(self, force: bool) -> str:
        if force:
            self.forced += 1
            self.cached = self.current
        return self.cached


def event(headers: dict[str, str]) -> dict[str, Any]:
    return {"version": "2.0", "rawPath": "/v1/query", "headers": headers}


def test_requests_without_the_origin_secret_get_403() -> None:
    # Given the guard of a stack with the edge on
    secret = Secret("s3cret-from-cloudfront")
    guard = OriginGuard(secret.fetch, clock=lambda: 0.0)
    # When requests arrive directly on execute-api (no header, or a guessed one)
    direct = guard.rejection(event({}))
    guessed = guard.rejection(event({ORIGIN_VERIFY_HEADER: "guess"}))
    # Then both are refused, while CloudFront's request passes
    assert direct is not None
    assert direct["statusCode"] == 403
    assert guessed is not None
    assert guessed["statusCode"] == 403
    assert guard.rejection(event({ORIGIN_VERIFY_HEADER.upper(): "s3cret-from-cloudfront"})) is None


def test_a_rotated_secret_is_picked_up_without_flooding_secrets_manager() -> None:
    # Given a guard whose cached secret was just rotated
    secret = Secret("old")
    now = [1000.0]
    guard = OriginGuard(secret.fetch, clock=lambda: now[0])
    secret.current = "new"
    # When CloudFront sends the new value, Then the guard re-reads once and accepts it
    assert guard.rejection(event({ORIGIN_VERIFY_HEADER: "new"})) is None
    assert secret.forced == 1
    # And a burst of wrong values forces no further reads inside the refresh window
    for _ in range(5):
        assert guard.rejection(event({ORIGIN_VERIFY_HEADER: "wrong"})) is not None
    assert secret.forced == 1
    now[0] += REFRESH_AFTER_MISMATCH_SECONDS
    guard.rejection(event({ORIGIN_VERIFY_HEADER: "wrong"}))
    assert secret.forced == 2
