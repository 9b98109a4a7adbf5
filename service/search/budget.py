"""How long one search-engine call may take, and which failures it retries inside that time.

The clients' own retries are off (`max_retries=0`): opensearch-py retries only 502/503/504,
never 429, immediately and without a total limit, so 3 attempts of 10 s could outlast
API Gateway's 29-second integration timeout
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html).
Instead `Engine.call` retries here:

- **Reads** (searches, counts, mappings) retry 429, 502, 503, 504 and lost connections
  with exponential backoff and full jitter (sleep a random time in
  [0, min(cap, base * 2**n)],
  https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), inside
  `SEARCH_READ_BUDGET_SECONDS`, whose maximum leaves room under the 29 s for the rest of
  the request. Each attempt's timeout is cut to what is left of the budget.
- **Writes** (bulk) make one attempt per call: the ingester's `Retrier`
  (`service.ingest.retry`) already retries transient failures with full jitter inside
  `RETRY_BUDGET_SECONDS` and the Lambda invocation's deadline, and a second retry layer
  here would multiply the two.

A caller with a deadline of its own (the ingester's `Retrier`, from the Lambda context's
remaining time) sets it with `finish_within`; every attempt inside is then cut to it too,
so a bulk request never outlives the invocation that sent it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from service.settings import Settings

# Throttling and gateway errors: the request did not run, or ran out of capacity, and may
# succeed later. A 500 is the engine's own failure and is not retried here.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# API Gateway REST APIs end an integration after 29 s.
API_GATEWAY_TIMEOUT_SECONDS = 29.0
# The most a read may spend: the 29 s less time for authentication, embedding the question and
# writing the answer.
MAX_READ_BUDGET_SECONDS = 25.0
DEFAULT_READ_BUDGET_SECONDS = 8.0
DEFAULT_ATTEMPT_TIMEOUT_SECONDS = 10.0
# An attempt with less time than this left is not started.
MIN_ATTEMPT_SECONDS = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    """Total time for one call (`budget_seconds`) and the longest single attempt."""

    budget_seconds: float
    attempt_timeout_seconds: float = DEFAULT_ATTEMPT_TIMEOUT_SECONDS
    retry: bool = True
    base_seconds: float = 0.1
    cap_seconds: float = 2.0

    @classmethod
    def reads(cls, budget_seconds: float, attempt_timeout_seconds: float) -> RetryPolicy:
        return cls(budget_seconds=budget_seconds, attempt_timeout_seconds=attempt_timeout_seconds)

    @classmethod
    def writes(cls, attempt_timeout_seconds: float) -> RetryPolicy:
        return cls(
            budget_seconds=attempt_timeout_seconds,
            attempt_timeout_seconds=attempt_timeout_seconds,
            retry=False,
        )


DEFAULT_READS = RetryPolicy.reads(DEFAULT_READ_BUDGET_SECONDS, DEFAULT_ATTEMPT_TIMEOUT_SECONDS)
DEFAULT_WRITES = RetryPolicy.writes(DEFAULT_ATTEMPT_TIMEOUT_SECONDS)


@dataclass
class Timing:
    """The clock, sleep and random source a retry loop uses; tests replace them."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random


def retryable(status: int | None) -> bool:
    """429, 502, 503, 504, or no response at all (a lost connection or a timeout)."""
    return status is None or status in RETRY_STATUSES


class Policies(TypedDict):
    reads: RetryPolicy
    writes: RetryPolicy


def policies(settings: Settings) -> Policies:
    """The read and write policies the settings ask for, as `Engine` keyword arguments."""
    return {
        "reads": RetryPolicy.reads(
            settings.search_read_budget_seconds, settings.search_attempt_timeout_seconds
        ),
        "writes": RetryPolicy.writes(settings.search_attempt_timeout_seconds),
    }


# The caller's deadline, in `time.monotonic()` seconds; None when the caller has none.
_CALLER_DEADLINE: ContextVar[float | None] = ContextVar("search_caller_deadline", default=None)


@contextmanager
def finish_within(seconds: float) -> Iterator[None]:
    """Search calls made inside finish within `seconds` from now (nested limits keep the earliest)."""
    at = time.monotonic() + seconds
    outer = _CALLER_DEADLINE.get()
    token = _CALLER_DEADLINE.set(at if outer is None else min(at, outer))
    try:
        yield
    finally:
        _CALLER_DEADLINE.reset(token)


def caller_seconds_left() -> float | None:
    """Seconds left before the caller's deadline (`finish_within`), or None without one."""
    at = _CALLER_DEADLINE.get()
    return None if at is None else at - time.monotonic()
