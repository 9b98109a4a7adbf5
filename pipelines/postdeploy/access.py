"""Reader-key checks (issue 15): a temporary reader key, made the operator's way, is confined.

The suite creates a reader key for `default` in the target's key store (the stack's keys table
with its pepper secret, or the local platform's data directory), then checks through the API:

- the key searches its own workspace (200);
- it cannot see another workspace (403), whether that workspace exists or not;
- it cannot use a writer route (403): each route of `WRITER_ROUTES`, in its own workspace. The
  API has no route that ingests, deletes or administers (ingestion is an S3 upload that needs IAM
  rights no API key carries; workspaces and keys are `ragctl`'s); its one writer route lists a
  workspace's documents. tests/integration/test_postdeploy_access_api.py fails when the API
  gains a protected route missing from `READER_ROUTES` and `WRITER_ROUTES`, so a future write
  route is exercised here before it ships;
- after revocation, the very next request is refused (401).

The key is revoked in every case, also when a check raises, and it expires in minutes anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pipelines.postdeploy.client import DOCUMENTS_PATH, QUERY_PATH, SEARCH_PATH, ApiClient
from pipelines.postdeploy.report import Check
from service.access import DEFAULT_WORKSPACE, Role
from service.api.keys import KeyStore, new_key

FORBIDDEN, UNAUTHORIZED = 403, 401
KEY_LIFETIME = timedelta(minutes=15)
STREAM_PATH = f"{QUERY_PATH}/stream"
# The API's protected routes by the role they need (service/api/routes_rag.py).
READER_ROUTES = (("POST", QUERY_PATH), ("POST", STREAM_PATH), ("POST", SEARCH_PATH))
# Each is called with the reader key and must answer 403 before doing anything: a read-only
# request (GET) or, for a write route, a harmless target, so the check never changes the stack.
WRITER_ROUTES = (("GET", DOCUMENTS_PATH),)


class KeyIssuer(Protocol):
    def create_reader(self, workspace: str) -> tuple[str, str]:
        """(key id, plaintext key) of a new reader key for `workspace`."""

    def revoke(self, key_id: str) -> None: ...


class StoreKeyIssuer:
    """Keys written straight to the key store, as `ragctl keys create` does (never via the API)."""

    def __init__(
        self, store: KeyStore, pepper: Callable[[], bytes], now: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._pepper = pepper
        self._now = now or (lambda: datetime.now(UTC))

    def create_reader(self, workspace: str) -> tuple[str, str]:
        at = self._now()
        plaintext, record = new_key(
            self._pepper(),
            name="postdeploy reader (temporary)",
            role=Role.READER,
            workspaces=[workspace],
            now=at,
            expires_at=at + KEY_LIFETIME,
        )
        self._store.create(record)
        return record.key_id, plaintext

    def revoke(self, key_id: str) -> None:
        self._store.revoke(key_id, self._now())


def reader_key_checks(client: ApiClient, issuer: KeyIssuer) -> list[Check]:
    key_id, reader = issuer.create_reader(DEFAULT_WORKSPACE)
    other = f"postdeploy-{uuid.uuid4().hex[:12]}"
    checks: list[Check] = []
    try:
        own = client.search_as("health of the reader key", api_key=reader, workspace=DEFAULT_WORKSPACE).status
        checks.append(
            Check("reader key reads its workspace", own == 200, f"search in {DEFAULT_WORKSPACE} -> {own}")
        )
        elsewhere = client.search_as("health of the reader key", api_key=reader, workspace=other).status
        checks.append(
            Check(
                "reader key cannot see another workspace",
                elsewhere == FORBIDDEN,
                f"search in {other} -> {elsewhere} (want {FORBIDDEN})",
            )
        )
        writers = {
            f"{method} {path}": client.request_as(
                method, path, api_key=reader, workspace=DEFAULT_WORKSPACE
            ).status
            for method, path in WRITER_ROUTES
        }
        checks.append(
            Check(
                "reader key cannot use writer routes",
                all(status == FORBIDDEN for status in writers.values()),
                ", ".join(f"{route} in {DEFAULT_WORKSPACE} -> {status}" for route, status in writers.items())
                + f" (want {FORBIDDEN})",
            )
        )
    finally:
        issuer.revoke(key_id)
    after = client.search_as("health of the reader key", api_key=reader, workspace=DEFAULT_WORKSPACE).status
    checks.append(
        Check("revoked key refused at once", after == UNAUTHORIZED, f"search after revoke -> {after}")
    )
    return checks
