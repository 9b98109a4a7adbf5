"""Only the edge may call the API: CloudFront adds a secret header, the Lambda checks it.

An HTTP API has no resource policy and cannot carry a WAF web ACL, and its default
`execute-api` URL stays public unless disabled, which would also cut CloudFront off when
the stack has no custom domain for the origin. So CloudFront sends `ORIGIN_VERIFY_HEADER`
with a value from Secrets Manager on every origin request, replacing any value a viewer
sent (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/add-origin-custom-headers.html),
and the function answers 403 to any request without it, before the app runs.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from service.contract import ORIGIN_VERIFY_HEADER

# After a mismatch the secret is re-read at most this often, so a rotation is picked up
# within a minute while a flood of direct requests cannot flood Secrets Manager.
REFRESH_AFTER_MISMATCH_SECONDS = 60.0
FORBIDDEN: dict[str, Any] = {
    "statusCode": 403,
    "headers": {"content-type": "application/json"},
    "body": json.dumps({"detail": "requests must come through the API's edge (CloudFront)"}),
}


class OriginGuard:
    """`fetch(force)` returns the current secret; `force` bypasses any cache."""

    def __init__(self, fetch: Callable[[bool], str], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._last_forced = float("-inf")

    def _matches(self, supplied: str, force: bool) -> bool:
        expected = self._fetch(force)
        return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())

    def rejection(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """None when the request carries the secret, else the 403 response to return."""
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        supplied = headers.get(ORIGIN_VERIFY_HEADER, "")
        if supplied and self._matches(supplied, force=False):
            return None
        now = self._clock()
        if supplied and now - self._last_forced >= REFRESH_AFTER_MISMATCH_SECONDS:
            self._last_forced = now
            if self._matches(supplied, force=True):
                return None
        return FORBIDDEN


def secrets_manager_guard(secret_arn: str) -> OriginGuard:
    from aws_lambda_powertools.utilities.parameters import get_secret

    def fetch(force: bool) -> str:
        return str(get_secret(secret_arn, max_age=300, force_fetch=force))

    return OriginGuard(fetch)
