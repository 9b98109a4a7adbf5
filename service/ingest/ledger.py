"""The document ledger: per document id, what was indexed, from which version, and how it went.

Protocol plus the local implementation (SQLite in the data directory, WAL mode,
shared by the worker, the API and the CLI). The cloud uses DynamoDB with the
same record shape (`service.ingest.ledger_dynamodb`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field


class Status(StrEnum):
    QUEUED = "queued"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


class LedgerRecord(BaseModel):
    document_id: str
    status: Status
    source: str | None = None
    content_hash: str | None = None
    version: str | None = Field(None, description="S3 version id, else ETag.")
    sequencer: str | None = Field(None, description="S3 event sequencer, for ordering deliveries.")
    chunk_ids: tuple[str, ...] = ()
    last_error: str | None = None
    attempts: int = 0
    created_at: datetime
    updated_at: datetime


def now() -> datetime:
    return datetime.now(UTC)


class Ledger(Protocol):
    def get(self, document_id: str) -> LedgerRecord | None: ...

    def put(self, record: LedgerRecord) -> None: ...

    def list(self, status: Status | None = None, limit: int = 1000) -> list[LedgerRecord]: ...

    def counts(self) -> dict[str, int]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    document_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_status ON ledger (status, updated_at);
"""


class SqliteLedger:
    """Local ledger; survives restarts of `ragctl dev` in the data directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def get(self, document_id: str) -> LedgerRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM ledger WHERE document_id = ?", (document_id,)
            ).fetchone()
        return LedgerRecord.model_validate_json(row[0]) if row else None

    def put(self, record: LedgerRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO ledger VALUES (?, ?, ?, ?) ON CONFLICT(document_id) DO UPDATE SET "
                "status = excluded.status, updated_at = excluded.updated_at, record = excluded.record",
                (
                    record.document_id,
                    record.status.value,
                    record.updated_at.isoformat(),
                    record.model_dump_json(),
                ),
            )

    def list(self, status: Status | None = None, limit: int = 1000) -> list[LedgerRecord]:
        query = "SELECT record FROM ledger"
        params: Sequence[object] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status.value,)
        query += " ORDER BY updated_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [LedgerRecord.model_validate_json(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM ledger GROUP BY status").fetchall()
        return {str(status): int(n) for status, n in rows}

    def close(self) -> None:
        self._db.close()


def dumps(records: Sequence[LedgerRecord]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in records], indent=2)
