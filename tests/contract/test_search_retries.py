"""Retries and time budgets of the engine clients, against a fault-injecting HTTP server.

The server (stdlib `http.server` on a free 127.0.0.1 port) answers each request with the
next scripted fault, then with success; the real opensearch-py and elasticsearch-py clients
talk to it over HTTP, so what is tested is what they send and how `Engine.call` reacts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from service.contract import Env
from service.ingest.retry import Retrier
from service.search.budget import (
    MAX_READ_BUDGET_SECONDS,
    RetryPolicy,
    Timing,
    caller_seconds_left,
    finish_within,
)
from service.search.cluster import ClusterBackend
from service.search.elastic import ElasticsearchEngine, elasticsearch_client
from service.search.opensearch import OpenSearchEngine, opensearch_client
from service.search.protocol import SearchBackendError
from service.settings import SettingsError, load_settings


@dataclass
class Fault:
    status: int
    delay: float = 0.0


class _FaultyEngine(BaseHTTPRequestHandler):
    """Pops one scripted fault per request; with none left, answers like a healthy engine."""

    faults: ClassVar[list[Fault]] = []
    requests: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).requests.append(f"{self.command} {self.path}")
        fault = type(self).faults.pop(0) if type(self).faults else None
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        status = fault.status if fault is not None and fault.status else 200
        if status == 200:
            body: dict[str, Any] = {"count": 3}
            if self.path.startswith("/_bulk"):
                body = {"errors": False, "items": []}
        else:
            body = {"error": {"type": f"fault_{status}", "reason": "injected"}, "status": status}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def faulty() -> Iterator[tuple[str, list[Fault], list[str]]]:
    _FaultyEngine.faults = []
    _FaultyEngine.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FaultyEngine.faults, _FaultyEngine.requests
    server.shutdown()
    server.server_close()


@dataclass
class FakeTime:
    """A clock that only moves when the retry loop sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _timing(fake: FakeTime, jitter: float = 0.5) -> Timing:
    return Timing(clock=fake.clock, sleep=fake.sleep, rng=lambda: jitter)


def _opensearch(url: str, reads: RetryPolicy, fake: FakeTime) -> ClusterBackend:
    engine = OpenSearchEngine(opensearch_client(url, "us-east-1"), reads=reads, timing=_timing(fake))
    return ClusterBackend(engine, "chunks", 8)


READS = RetryPolicy.reads(budget_seconds=8.0, attempt_timeout_seconds=5.0)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_read_retries_throttling_and_gateway_errors_then_succeeds(
    faulty: tuple[str, list[Fault], list[str]], status: int
) -> None:
    # Given an engine that fails a count twice with the status, then answers
    url, faults, requests = faulty
    faults.extend([Fault(status), Fault(status)])
    fake = FakeTime()

    # When the backend counts
    count = _opensearch(url, READS, fake).count()

    # Then it got the answer on the third request, after two full-jitter waits (0.5 x 0.1 s, 0.5 x 0.2 s)
    assert count == 3
    assert len(requests) == 3
    assert fake.sleeps == pytest.approx([0.05, 0.1])


def test_elasticsearch_reads_retry_429_too(faulty: tuple[str, list[Fault], list[str]]) -> None:
    # Given Elasticsearch throttling a count once
    url, faults, requests = faulty
    faults.append(Fault(429))
    fake = FakeTime()
    engine = ElasticsearchEngine(elasticsearch_client(url, None), reads=READS, timing=_timing(fake))

    # When the backend counts, then the retry succeeds
    assert ClusterBackend(engine, "chunks", 8).count() == 3
    assert len(requests) == 2


def test_retries_stop_inside_the_read_budget(faulty: tuple[str, list[Fault], list[str]]) -> None:
    # Given an engine that is always throttled and a read budget of 2 s
    url, faults, requests = faulty
    faults.extend([Fault(429)] * 100)
    fake = FakeTime()
    budget = RetryPolicy.reads(budget_seconds=2.0, attempt_timeout_seconds=1.0)

    # When the backend counts
    with pytest.raises(SearchBackendError) as caught:
        _opensearch(url, budget, fake).count()

    # Then it gave up before the budget ran out, as a transient error naming the attempts
    assert fake.now < 2.0
    assert caught.value.transient is True
    assert f"after {len(requests)} attempts" in str(caught.value)
    assert 2 < len(requests) < 100


@pytest.mark.parametrize("status", [400, 500])
def test_client_errors_and_engine_failures_are_not_retried(
    faulty: tuple[str, list[Fault], list[str]], status: int
) -> None:
    # Given a bad request (400) or an engine failure (500)
    url, faults, requests = faulty
    faults.append(Fault(status))
    fake = FakeTime()

    # When the backend counts, then it fails after one request, without waiting
    with pytest.raises(SearchBackendError):
        _opensearch(url, READS, fake).count()
    assert len(requests) == 1
    assert fake.sleeps == []


def test_writes_make_one_attempt_and_leave_retrying_to_the_ingesters_deadline(
    faulty: tuple[str, list[Fault], list[str]],
) -> None:
    # Given a throttled bulk request
    url, faults, requests = faulty
    faults.append(Fault(429))
    fake = FakeTime()
    engine = OpenSearchEngine(opensearch_client(url, "us-east-1"), reads=READS, timing=_timing(fake))

    # When a write goes through the engine
    with pytest.raises(SearchBackendError) as caught:
        engine.bulk([{"delete": {"_index": "chunks", "_id": "c1"}}])

    # Then one request was sent and the error is transient, for the ingester's Retrier
    assert len(requests) == 1
    assert caught.value.transient is True


def test_the_attempt_timeout_is_cut_to_what_is_left_of_the_budget(
    faulty: tuple[str, list[Fault], list[str]],
) -> None:
    # Given an engine that answers after 1 s, an attempt timeout of 10 s and a budget of 0.3 s
    url, faults, _ = faulty
    faults.append(Fault(200, delay=1.0))
    engine = OpenSearchEngine(
        opensearch_client(url, "us-east-1"),
        reads=RetryPolicy.reads(budget_seconds=0.3, attempt_timeout_seconds=10.0),
    )

    # When the backend counts, then the request times out with the budget instead of waiting for the answer
    with pytest.raises(SearchBackendError, match="no response"):
        ClusterBackend(engine, "chunks", 8).count()


def test_the_read_budget_must_fit_api_gateways_29_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a read budget over the maximum, then config load names the variable
    monkeypatch.setenv(Env.SEARCH_READ_BUDGET_SECONDS, str(MAX_READ_BUDGET_SECONDS + 1))
    with pytest.raises(SettingsError, match=Env.SEARCH_READ_BUDGET_SECONDS.value):
        load_settings()
    monkeypatch.delenv(Env.SEARCH_READ_BUDGET_SECONDS)
    assert load_settings(search_read_budget_seconds=MAX_READ_BUDGET_SECONDS).search_read_budget_seconds == 25


def test_a_write_is_cut_to_the_callers_deadline(faulty: tuple[str, list[Fault], list[str]]) -> None:
    # Given a bulk request the engine answers after 1 s, and a 10 s attempt timeout
    url, faults, _ = faulty
    faults.append(Fault(200, delay=1.0))
    engine = OpenSearchEngine(opensearch_client(url, "us-east-1"))

    # When the caller (the ingester, from the Lambda's remaining time) has 0.3 s left
    with pytest.raises(SearchBackendError, match="no response") as caught, finish_within(0.3):
        engine.bulk([{"delete": {"_index": "chunks", "_id": "c1"}}])

    # Then the request timed out with the caller's deadline, as a transient error
    assert caught.value.transient is True


def test_nothing_is_sent_once_the_callers_deadline_has_passed(
    faulty: tuple[str, list[Fault], list[str]],
) -> None:
    url, _, requests = faulty
    engine = OpenSearchEngine(opensearch_client(url, "us-east-1"))
    with pytest.raises(SearchBackendError, match="no time left") as caught, finish_within(0.0):
        engine.bulk([{"delete": {"_index": "chunks", "_id": "c1"}}])
    assert requests == []
    assert caught.value.transient is True


def test_the_ingesters_retrier_passes_its_deadline_to_search_calls() -> None:
    # Given a Retrier whose deadline is 5 s away
    seen: list[float | None] = []
    retrier = Retrier(deadline=time.monotonic() + 5.0)

    # When an operation runs through it, then search calls inside see (at most) those 5 s
    retrier.call(lambda: seen.append(caller_seconds_left()))
    left = seen[0]
    assert left is not None
    assert 4.0 < left <= 5.0
    # And outside it there is no caller deadline
    assert caller_seconds_left() is None
