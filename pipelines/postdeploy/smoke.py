"""Smoke checks: the API is up, guarded, and ingests and forgets a canary document end to end.

The canary carries a token no other document contains, so an answer citing it can only
come from this run's upload; deleting the object must make it vanish from answers
(the platform removes a document's chunks when its object is deleted).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from pipelines.postdeploy.client import ApiClient, cited_documents
from pipelines.postdeploy.report import Check, Clock, Sleep, wait_for
from pipelines.postdeploy.store import DocumentStore

CANARY_PREFIX = "_canary/"
UNAUTHORIZED = 401


@dataclass(frozen=True)
class SmokeSettings:
    ingest_timeout: float = 300.0
    delete_timeout: float = 300.0
    poll_interval: float = 3.0
    expect_artifact_sha256: str | None = None


def canary_document(token: str) -> bytes:
    return (
        f"# Smoke canary {token}\n\n"
        f"This document is a canary written by the post-deploy smoke test. "
        f"The canary code word is {token}. It is deleted as soon as the test has seen it cited.\n"
    ).encode()


def canary_question(token: str) -> str:
    return f"What is the canary code word {token}?"


class Smoke:
    def __init__(
        self,
        client: ApiClient,
        store: DocumentStore,
        settings: SmokeSettings,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._client = client
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sleep = sleep

    def _timed(self, name: str, start: float, ok: bool, detail: str) -> Check:
        return Check(name, ok, detail, self._clock() - start)

    def health(self) -> Check:
        start = self._clock()
        reply = self._client.health()
        ok = reply.status == 200 and reply.field("status") == "ok"
        return self._timed("health", start, ok, f"GET /health -> {reply.status} {reply.body!r}"[:300])

    def auth_required(self) -> Check:
        start = self._clock()
        missing = self._client.query("health of the auth check", api_key=None).status
        wrong = self._client.query("health of the auth check", api_key=f"wrong-{uuid.uuid4().hex}").status
        ok = missing == UNAUTHORIZED and wrong == UNAUTHORIZED
        return self._timed("auth required", start, ok, f"no key -> {missing}, wrong key -> {wrong}")

    def artifact(self, deployed: str | None) -> Check:
        expected = self._settings.expect_artifact_sha256
        ok = deployed is not None and deployed == expected
        # A mismatch means another deploy overtook this one: never promote on someone else's test.
        return Check("artifact", ok, f"deployed {deployed or 'unknown'}, expected {expected}")

    def _cited(self, question: str, key: str) -> bool:
        reply = self._client.query(question)
        return reply.status == 200 and key in cited_documents(reply)

    def canary(self) -> list[Check]:
        token = f"canary{uuid.uuid4().hex[:16]}"
        key = f"{CANARY_PREFIX}smoke-{token}.md"
        question = canary_question(token)
        start = self._clock()
        self._store.put(key, canary_document(token))
        deleted = False
        try:
            seen = wait_for(
                lambda: self._cited(question, key),
                self._settings.ingest_timeout,
                self._settings.poll_interval,
                self._clock,
                self._sleep,
            )
            ingest = self._timed(
                "canary cited", start, seen, f"{key} {'cited' if seen else 'never cited'} in an answer"
            )
            if not seen:
                return [ingest]
            start = self._clock()
            self._store.delete(key)
            deleted = True
            gone = wait_for(
                lambda: not self._cited(question, key),
                self._settings.delete_timeout,
                self._settings.poll_interval,
                self._clock,
                self._sleep,
            )
            detail = f"{key} {'gone from answers' if gone else 'still cited after deletion'}"
            return [ingest, self._timed("canary forgotten", start, gone, detail)]
        finally:
            if not deleted:
                # Never leave a canary behind in a real environment's corpus.
                self._store.delete(key)

    def run(self, deployed_sha256: str | None = None) -> list[Check]:
        checks = [self.health()]
        if not checks[0].ok:
            return checks
        if self._settings.expect_artifact_sha256:
            checks.append(self.artifact(deployed_sha256))
        checks.append(self.auth_required())
        checks += self.canary()
        return checks
