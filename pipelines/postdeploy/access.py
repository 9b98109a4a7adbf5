"""Reader-key checks (issue 15): a temporary reader key, made the operator's way, is confined.

The suite creates a reader key for `default` in the target's key store (the stack's keys table
with its pepper secret, or the local platform's data directory), then checks through the API:

- the key searches its own workspace (200);
- it cannot see another workspace (403), whether that workspace exists or not;
- it cannot use a writer route (403): ingestion itself is an S3 upload that needs IAM rights no
  API key carries, and the API's writer routes (the ingestion status of a workspace) refuse it;
- after revocation, the very next request is refused (401).

The key is revoked in every case, also when a check raises, and it expires in minutes anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pipelines.postdeploy.client import ApiClient
from pipelines.postdeploy.report import Check
from service.access import DEFAULT_WORKSPACE, Role
from service.api.keys import KeyStore, new_key

FORBIDDEN, UNAUTHORIZED = 403, 401
KEY_LIFETIME = timedelta(minutes=15)


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
        writer = client.documents_as(api_key=reader, workspace=DEFAULT_WORKSPACE).status
        checks.append(
            Check(
                "reader key cannot use writer routes",
                writer == FORBIDDEN,
                f"GET ingestion status of {DEFAULT_WORKSPACE} -> {writer} (want {FORBIDDEN})",
            )
        )
    finally:
        issuer.revoke(key_id)
    after = client.search_as("health of the reader key", api_key=reader, workspace=DEFAULT_WORKSPACE).status
    checks.append(
        Check("revoked key refused at once", after == UNAUTHORIZED, f"search after revoke -> {after}")
    )
    return checks
