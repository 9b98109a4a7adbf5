"""Retry transient failures with exponential backoff and full jitter, inside a time budget.

The budget ends at the earlier of `start + budget_seconds` and the invocation's
deadline (from `context.get_remaining_time_in_millis()`, less a reserve), so a
retry never sleeps past the point where the message could still be reported as
failed and redelivered. Full jitter (sleep a random time in [0, min(cap, base * 2**n)])
spreads retries of many workers apart
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).

A small helper instead of a library: it needs a deadline-aware stop, injected
clock, sleep and random source, and a transient-error rule shared with the DLQ
logic, which is about as much code as configuring one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from service.embed.protocol import EmbeddingError
from service.ingest.errors import TransientIngestError
from service.search.budget import finish_within
from service.search.protocol import SearchBackendError

T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Search 429/5xx, embedding throttling, timeouts and explicit transient errors."""
    if isinstance(error, TransientIngestError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, SearchBackendError | EmbeddingError):
        return error.transient
    return False


@dataclass
class Retrier:
    deadline: float = float("inf")
    budget_seconds: float = 20.0
    base_seconds: float = 0.1
    cap_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random
    retries: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._stop_at = min(self.deadline, self.clock() + self.budget_seconds)

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (not the retry budget)."""
        return self.deadline - self.clock()

    def call(self, operation: Callable[[], T], what: str = "operation") -> T:
        attempt = 0
        while True:
            try:
                if self.deadline == float("inf"):
                    return operation()
                # Search-engine requests inside are cut to the deadline too (service.search.budget).
                with finish_within(self.remaining):
                    return operation()
            except Exception as error:
                if not is_transient(error):
                    raise
                delay = self.rng() * min(self.cap_seconds, self.base_seconds * 2**attempt)
                if self.clock() + delay >= self._stop_at:
                    raise TransientIngestError(
                        f"{what}: still failing after {attempt + 1} attempt(s) "
                        f"within the retry budget: {error}"
                    ) from error
                attempt += 1
                self.retries += 1
                self.sleep(delay)
