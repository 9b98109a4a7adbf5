"""The per-key token bucket and its `Retry-After` (issue 16: exact waits with a partly refilled bucket)."""

from __future__ import annotations

import pytest

from service.api.ratelimit import TokenBucketLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drained(per_minute: int, clock: Clock, key: str = "k") -> TokenBucketLimiter:
    """A limiter whose bucket for `key` was just emptied by a burst of `per_minute` requests."""
    limiter = TokenBucketLimiter(per_minute, clock=clock)
    assert [limiter.acquire(key) for _ in range(per_minute)] == [0.0] * per_minute
    return limiter


def test_a_new_key_gets_a_full_bucket_and_then_waits_one_token_interval() -> None:
    # Given 6 requests a minute: one token every 10 s
    clock = Clock()
    limiter = drained(6, clock)
    # When a seventh request comes at once
    wait = limiter.acquire("k")
    # Then it waits exactly the time for one token
    assert wait == pytest.approx(10.0)
    assert retry_after_header(wait) == "10"


def test_retry_after_with_a_partly_refilled_bucket_is_the_time_to_the_next_whole_token() -> None:
    # Given 15 requests a minute (a token every 4 s), emptied, 1 s later: a quarter token is back
    clock = Clock()
    limiter = drained(15, clock)
    clock.now += 1.0
    # When a request comes
    wait = limiter.acquire("k")
    # Then it waits the 3 s the missing three quarters take, not a whole interval
    assert wait == 3.0
    assert retry_after_header(wait) == "3"
    # And a refused request takes nothing: 1.5 s later the wait is 1.5 s, rounded up to 2
    clock.now += 1.5
    wait = limiter.acquire("k")
    assert wait == 1.5
    assert retry_after_header(wait) == "2"
    # And at the moment the whole token is back, the request passes and the next one waits again
    clock.now += 1.5
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == 4.0


def test_a_bucket_refills_to_its_capacity_and_no_further() -> None:
    # Given a bucket of 3 a minute, emptied, then idle for an hour
    clock = Clock()
    limiter = drained(3, clock)
    clock.now += 3600.0
    # Then a burst gets exactly 3 requests through, then waits 20 s
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(20.0)


def test_keys_have_their_own_buckets() -> None:
    # Given one key's bucket emptied
    clock = Clock()
    limiter = drained(2, clock, key="a")
    # Then another key still gets its full bucket
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") == pytest.approx(30.0)


def test_the_limit_must_allow_at_least_one_request_a_minute() -> None:
    # Given limits of 0 and 1 a minute / Then 0 is refused and 1 is a 60 s interval
    with pytest.raises(ValueError, match=r"^per_minute must be at least 1$"):
        TokenBucketLimiter(0)
    clock = Clock()
    assert drained(1, clock).acquire("k") == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("wait", "header"), [(0.001, "1"), (0.999, "1"), (1.0, "1"), (1.0001, "2"), (29.2, "30"), (60.0, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float, header: str) -> None:
    # Given a wait in seconds / Then the header never tells a client to come back too early
    assert retry_after_header(wait) == header
