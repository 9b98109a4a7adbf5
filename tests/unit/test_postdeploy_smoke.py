"""The smoke suite against a fake platform: httpx MockTransport for the API, moto for S3.

The fake ingests straight from the (moto) bucket the suite uploads to, so the suite's real
upload, poll, cite, delete and cleanup logic runs; knobs on the fake break one property of
the platform at a time and the matching check must fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from pipelines.postdeploy.client import ApiClient
from pipelines.postdeploy.smoke import CANARY_PREFIX, Smoke, SmokeSettings
from pipelines.postdeploy.store import S3Store
from service.contract import API_KEY_HEADER

BUCKET = "rag-platform-test-documents"
KEY = "test-key"
WORD = re.compile(r"[a-z0-9]{12,}")


@dataclass
class FakePlatform:
    """Answers `/v1/query` by citing bucket objects that share a long token with the question."""

    s3: Any
    require_auth: bool = True
    healthy: bool = True
    # How many queries an upload takes to become visible (ingestion is asynchronous).
    ingest_lag: int = 0
    ingests: bool = True
    forgets_deleted: bool = True
    seen: dict[str, str] = field(default_factory=dict)
    queries: int = 0

    def _index(self) -> dict[str, str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        live = {
            o["Key"]: self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode() for o in listed
        }
        if self.forgets_deleted:
            self.seen = dict(live)
        else:
            self.seen.update(live)
        return self.seen

    def _query(self, question: str) -> dict[str, Any]:
        self.queries += 1
        visible = self.ingests and self.queries > self.ingest_lag
        tokens = set(WORD.findall(question.lower()))
        cited = [
            doc for doc, text in self._index().items() if visible and tokens & set(WORD.findall(text.lower()))
        ]
        citations = [{"number": i + 1, "document_id": d, "chunk_id": f"{d}#0"} for i, d in enumerate(cited)]
        return {"answer": "…", "citations": citations, "mode": "extractive", "search_mode": "hybrid"}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(
                200 if self.healthy else 503, json={"status": "ok" if self.healthy else "down"}
            )
        if self.require_auth and request.headers.get(API_KEY_HEADER) != KEY:
            return httpx.Response(401, json={"detail": "missing or invalid API key"})
        if request.url.path == "/v1/query":
            return httpx.Response(200, json=self._query(json.loads(request.content)["question"]))
        return httpx.Response(404)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _smoke(platform: FakePlatform, s3: Any, expect_sha: str | None = None) -> tuple[Smoke, FakeClock]:
    clock = FakeClock()
    client = ApiClient("http://platform.test", KEY, transport=httpx.MockTransport(platform.handle))
    settings = SmokeSettings(
        ingest_timeout=30, delete_timeout=30, poll_interval=5, expect_artifact_sha256=expect_sha
    )
    return Smoke(client, S3Store(s3, BUCKET), settings, clock=clock, sleep=clock.sleep), clock


def _results(checks: list[Any]) -> dict[str, bool]:
    return {c.name: c.ok for c in checks}


def _canaries(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=CANARY_PREFIX).get("Contents", [])]


def test_a_healthy_platform_passes_every_check_and_keeps_no_canary(s3: Any) -> None:
    # Given a platform that is up, guarded, and ingests after two polls
    platform = FakePlatform(s3, ingest_lag=2)
    smoke, clock = _smoke(platform, s3)

    # When the smoke suite runs
    checks = smoke.run()

    # Then every check passed, having waited for ingestion rather than failing at once
    assert _results(checks) == {
        "health": True,
        "auth required": True,
        "canary cited": True,
        "canary forgotten": True,
    }
    assert clock.now >= 10
    # And the canary is gone from the bucket
    assert _canaries(s3) == []


def test_an_api_that_answers_without_a_key_fails_the_auth_check(s3: Any) -> None:
    # Given a platform that forgot its auth middleware
    smoke, _ = _smoke(FakePlatform(s3, require_auth=False), s3)

    # When / Then the auth check fails and says what it got
    check = next(c for c in smoke.run() if c.name == "auth required")
    assert not check.ok
    assert check.detail == "no key -> 200, wrong key -> 200"


def test_a_platform_that_never_ingests_fails_after_the_timeout_and_cleans_up(s3: Any) -> None:
    # Given a platform whose ingestion is broken
    smoke, clock = _smoke(FakePlatform(s3, ingests=False), s3)

    # When the smoke suite runs
    checks = smoke.run()

    # Then the canary check fails once the timeout passed, and no later check runs
    assert _results(checks) == {"health": True, "auth required": True, "canary cited": False}
    assert clock.now >= 30
    # And the canary does not stay behind in the environment's corpus
    assert _canaries(s3) == []


def test_a_platform_that_keeps_deleted_documents_fails_the_forget_check(s3: Any) -> None:
    # Given a platform whose index keeps chunks of deleted objects
    smoke, _ = _smoke(FakePlatform(s3, forgets_deleted=False), s3)

    # When / Then the canary is cited but never forgotten
    assert _results(smoke.run())["canary forgotten"] is False


def test_an_unhealthy_platform_stops_at_the_health_check(s3: Any) -> None:
    # Given a platform whose health route reports trouble
    platform = FakePlatform(s3, healthy=False)
    smoke, _ = _smoke(platform, s3)

    # When / Then only the health check ran, and failed, and nothing was uploaded
    assert _results(smoke.run()) == {"health": False}
    assert platform.queries == 0
    assert _canaries(s3) == []


def test_another_build_on_the_stack_fails_the_artifact_check(s3: Any) -> None:
    # Given the stack reports an artifact other than the one this run built
    smoke, _ = _smoke(FakePlatform(s3), s3, expect_sha="a" * 64)

    # When the suite runs / Then the artifact check fails and names both hashes
    check = next(c for c in smoke.run(deployed_sha256="b" * 64) if c.name == "artifact")
    assert not check.ok
    assert "a" * 64 in check.detail
    assert "b" * 64 in check.detail


def test_the_artifact_check_passes_on_the_expected_build(s3: Any) -> None:
    # Given the stack runs exactly the artifact this run built
    smoke, _ = _smoke(FakePlatform(s3), s3, expect_sha="c" * 64)

    # When / Then the artifact check passes along with the rest
    assert _results(smoke.run(deployed_sha256="c" * 64))["artifact"] is True
