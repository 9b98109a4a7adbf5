"""A token bucket per caller (a key id, a bootstrap key's name or a signed-in user), in process memory.

Scope: one bucket set per process, so the limit holds per local API and per Lambda
execution environment. The cloud's global limit is API Gateway's stage throttling,
configured by the infrastructure (infra/); this one keeps one caller from starving the
others inside an instance and gives clients a precise `Retry-After`.

Why not the `limits` library: its memory storage reads the wall clock itself, so a test
could not drive time, and the bucket below is a dozen lines. The algorithm is the
classic token bucket (https://en.wikipedia.org/wiki/Token_bucket): capacity `per_minute`,
refilled continuously at `per_minute / 60` tokens a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                # Only authenticated callers reach the limiter (service/api/guard.py), so this map is
                # bounded by the number of keys and users, never by junk credentials.
                bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate


def retry_after_header(wait_seconds: float) -> str:
    """`Retry-After` in whole delay-seconds, rounded up (RFC 9110, section 10.2.3)."""
    return str(max(1, math.ceil(wait_seconds)))
