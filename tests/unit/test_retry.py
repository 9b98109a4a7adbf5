from __future__ import annotations

import pytest

from service.embed.protocol import EmbeddingError
from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.retry import Retrier, is_transient
from service.search.protocol import SearchBackendError
from tests.factories import FakeTime


def _flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return calls, operation


def test_transient_errors_are_retried_with_capped_exponential_backoff() -> None:
    # Given an operation that is throttled four times, and jitter at its maximum
    time = FakeTime()
    retrier = Retrier(
        budget_seconds=60,
        base_seconds=0.5,
        cap_seconds=2.0,
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 1.0,
    )
    calls, operation = _flaky(4, SearchBackendError("429", transient=True))
    # When it is called through the retrier
    assert retrier.call(operation) == "ok"  # type: ignore[arg-type]
    # Then it slept base * 2**n, capped
    assert time.sleeps == [0.5, 1.0, 2.0, 2.0]
    assert len(calls) == 5


def test_full_jitter_draws_each_delay_between_zero_and_the_backoff() -> None:
    time = FakeTime()
    draws = iter([0.0, 0.25, 0.5])
    retrier = Retrier(
        budget_seconds=60, base_seconds=1.0, clock=time.clock, sleep=time.sleep, rng=lambda: next(draws)
    )
    _, operation = _flaky(3, TimeoutError("read timed out"))
    retrier.call(operation)  # type: ignore[arg-type]
    assert time.sleeps == [0.0, 0.5, 2.0]


def test_the_budget_ends_at_the_invocation_deadline() -> None:
    # Given a deadline 3 s away and a larger retry budget
    time = FakeTime()
    retrier = Retrier(
        deadline=3.0, budget_seconds=60, base_seconds=1.0, clock=time.clock, sleep=time.sleep, rng=lambda: 1.0
    )
    _, operation = _flaky(100, EmbeddingError("ThrottlingException", transient=True))
    # Then retrying stops before the deadline, as a transient error the queue will redeliver
    with pytest.raises(TransientIngestError, match="still failing"):
        retrier.call(operation)  # type: ignore[arg-type]
    assert time.now < 3.0


def test_permanent_and_unknown_errors_are_not_retried() -> None:
    time = FakeTime()
    retrier = Retrier(clock=time.clock, sleep=time.sleep)
    for error in (
        PermanentIngestError("bad pdf"),
        SearchBackendError("400 mapping", transient=False),
        KeyError("x"),
    ):
        calls, operation = _flaky(1, error)
        with pytest.raises(type(error)):
            retrier.call(operation)  # type: ignore[arg-type]
        assert len(calls) == 1
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (SearchBackendError("503", transient=True), True),
        (SearchBackendError("400", transient=False), False),
        (EmbeddingError("throttled", transient=True), True),
        (TimeoutError(), True),
        (TransientIngestError("busy"), True),
        (PermanentIngestError("too big"), False),
        (ValueError("bug"), False),
    ],
)
def test_what_counts_as_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
