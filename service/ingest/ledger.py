"""The document ledger: per document id, what was indexed, from which version, and how it went.

Protocol plus the local implementation (SQLite in the data directory, WAL mode,
shared by the worker, the API and the CLI). The cloud uses DynamoDB with the
same record shape and the same rules (`service.ingest.ledger_dynamodb`).

Two rules make at-least-once delivery have an exactly-once effect, and both
stores apply them through the one pure function `decide_claim`:

- ordering: an action whose order key (the S3 event sequencer, left-padded so
  that string order is numeric order) is older than the one the ledger holds is
  STALE and is dropped;
- a per-document lease: only one worker at a time applies actions to a
  document; another claim before the lease expires is BUSY and is retried.

`claim` and `commit` are compare-and-set writes (a SQLite transaction locally, a
DynamoDB `ConditionExpression` on the item's revision in the cloud), so two
workers racing on one document cannot both win.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from service.access import DEFAULT_WORKSPACE

# Sequencers are hex strings of varying length; AWS says to left-pad the shorter one
# with zeros before comparing (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
ORDER_KEY_WIDTH = 40


class Status(StrEnum):
    QUEUED = "queued"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


TERMINAL = (Status.INDEXED, Status.FAILED, Status.DELETED)


class LedgerRecord(BaseModel):
    document_id: str
    status: Status
    workspace: str = Field(DEFAULT_WORKSPACE, description="The workspace the document belongs to.")
    source: str | None = None
    content_hash: str | None = None
    version: str | None = Field(None, description="S3 version id, else ETag.")
    sequencer: str | None = Field(None, description="Order key: the newest S3 event sequencer applied.")
    chunk_ids: tuple[str, ...] = Field((), description="The chunks the read index holds for the document.")
    last_error: str | None = None
    attempts: int = 0
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None = Field(None, description="Worker applying an action now, if any.")
    lease_until: float | None = Field(None, description="Epoch seconds when that lease lapses.")
    dead_letter_key: str | None = Field(None, description="Hash of the message last sent to the DLQ.")
    permissions_hash: str | None = Field(
        None, description="Hash of the indexed allowed users and groups (None: open, as before issue 15)."
    )


def now() -> datetime:
    return datetime.now(UTC)


def order_key(sequencer: str | None) -> str | None:
    """A sequencer as a fixed-width upper-case string, so string order is numeric order."""
    if not sequencer:
        return None
    return sequencer.strip().upper().rjust(ORDER_KEY_WIDTH, "0")


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    STALE = "stale"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    record: LedgerRecord
    previous: LedgerRecord | None


def decide_claim(existing: LedgerRecord | None, key: str | None, owner: str, at: float) -> ClaimOutcome:
    """The ordering and lease rules, shared by every ledger implementation."""
    if existing is None:
        return ClaimOutcome.CLAIMED
    if key is not None and existing.sequencer is not None and key < existing.sequencer:
        return ClaimOutcome.STALE
    held = existing.lease_owner is not None and existing.lease_owner != owner
    if held and existing.lease_until is not None and existing.lease_until > at:
        return ClaimOutcome.BUSY
    return ClaimOutcome.CLAIMED


def claimed_record(
    existing: LedgerRecord | None,
    document_id: str,
    key: str | None,
    owner: str,
    lease_until: float,
    *,
    workspace: str = DEFAULT_WORKSPACE,
) -> LedgerRecord:
    stamp = now()
    base = existing or LedgerRecord(
        document_id=document_id,
        status=Status.QUEUED,
        workspace=workspace,
        created_at=stamp,
        updated_at=stamp,
    )
    sequencer = base.sequencer if key is None else max(key, base.sequencer or "")
    return base.model_copy(update={"lease_owner": owner, "lease_until": lease_until, "sequencer": sequencer})


def total_counts(per_workspace: dict[str, dict[str, int]], workspace: str | None) -> dict[str, int]:
    """Documents per status, summed over every workspace or of the one given."""
    totals: dict[str, int] = {}
    for name, counts in per_workspace.items():
        if workspace is None or name == workspace:
            for status, n in counts.items():
                totals[status] = totals.get(status, 0) + n
    return totals


class Ledger(Protocol):
    def get(self, document_id: str) -> LedgerRecord | None: ...

    def put(self, record: LedgerRecord) -> None: ...

    def list(
        self, status: Status | None = None, limit: int = 1000, *, workspace: str | None = None
    ) -> list[LedgerRecord]:
        """Newest first; of one workspace when given, else of all."""
        ...

    def counts(self, workspace: str | None = None) -> dict[str, int]:
        """Documents per status, of one workspace when given."""
        ...

    def workspace_counts(self) -> dict[str, dict[str, int]]:
        """Documents per status, per workspace that has any."""
        ...

    def delete(self, document_id: str) -> None:
        """Forget the document (deleting a workspace); unknown ids are ignored."""
        ...

    def claim(
        self,
        document_id: str,
        *,
        key: str | None,
        owner: str,
        at: float,
        lease_until: float,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> Claim:
        """Take the document's lease, unless the action is stale or another worker holds it.
        A new record is created in `workspace`."""
        ...

    def commit(self, record: LedgerRecord, *, owner: str) -> bool:
        """Write `record` with the lease released, if `owner` still holds the lease."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    document_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_status ON ledger (status, updated_at);
"""
# Issue 15: rows carry their workspace. Older ledgers gain the column; their rows were all
# in the default workspace.
_WORKSPACE_COLUMN = f"ALTER TABLE ledger ADD COLUMN workspace TEXT NOT NULL DEFAULT '{DEFAULT_WORKSPACE}'"
_WORKSPACE_INDEX = "CREATE INDEX IF NOT EXISTS ledger_workspace ON ledger (workspace, status, updated_at)"


def local_ledger_path(data_dir: Path) -> Path:
    """Where the local ledger lives in the data directory; the worker, the API and the CLI share it."""
    return data_dir / "ledger.sqlite"


class SqliteLedger:
    """Local ledger; survives restarts of `ragctl dev` in the data directory.

    Claims and commits run in `BEGIN IMMEDIATE` transactions, so they are atomic
    across the processes that share the file (worker, API, CLI).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(ledger)")}
        if "workspace" not in columns:
            self._db.execute(_WORKSPACE_COLUMN)
        self._db.execute(_WORKSPACE_INDEX)

    def _read(self, document_id: str) -> LedgerRecord | None:
        row = self._db.execute("SELECT record FROM ledger WHERE document_id = ?", (document_id,)).fetchone()
        return LedgerRecord.model_validate_json(row[0]) if row else None

    def _write(self, record: LedgerRecord) -> None:
        self._db.execute(
            "INSERT INTO ledger (document_id, status, updated_at, record, workspace) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(document_id) DO UPDATE SET status = excluded.status, "
            "updated_at = excluded.updated_at, record = excluded.record, workspace = excluded.workspace",
            (
                record.document_id,
                record.status.value,
                record.updated_at.isoformat(),
                record.model_dump_json(),
                record.workspace,
            ),
        )

    def get(self, document_id: str) -> LedgerRecord | None:
        with self._lock:
            return self._read(document_id)

    def put(self, record: LedgerRecord) -> None:
        with self._lock:
            self._write(record)

    def claim(
        self,
        document_id: str,
        *,
        key: str | None,
        owner: str,
        at: float,
        lease_until: float,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> Claim:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                existing = self._read(document_id)
                outcome = decide_claim(existing, key, owner, at)
                if outcome is not ClaimOutcome.CLAIMED:
                    self._db.execute("COMMIT")
                    assert existing is not None
                    return Claim(outcome, existing, existing)
                record = claimed_record(existing, document_id, key, owner, lease_until, workspace=workspace)
                self._write(record)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Claim(ClaimOutcome.CLAIMED, record, existing)

    def commit(self, record: LedgerRecord, *, owner: str) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                existing = self._read(record.document_id)
                if existing is None or existing.lease_owner != owner:
                    self._db.execute("COMMIT")
                    return False
                self._write(record.model_copy(update={"lease_owner": None, "lease_until": None}))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def list(
        self, status: Status | None = None, limit: int = 1000, *, workspace: str | None = None
    ) -> list[LedgerRecord]:
        query = "SELECT record FROM ledger"
        conditions: list[str] = []
        params: Sequence[object] = ()
        if status is not None:
            conditions.append("status = ?")
            params = (*params, status.value)
        if workspace is not None:
            conditions.append("workspace = ?")
            params = (*params, workspace)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        # rowid breaks ties in insertion order, whichever index answers the filter.
        query += " ORDER BY updated_at DESC, rowid LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [LedgerRecord.model_validate_json(r[0]) for r in rows]

    def counts(self, workspace: str | None = None) -> dict[str, int]:
        return total_counts(self.workspace_counts(), workspace)

    def workspace_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT workspace, status, COUNT(*) FROM ledger GROUP BY workspace, status"
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for workspace, status, n in rows:
            counts.setdefault(str(workspace), {})[str(status)] = int(n)
        return counts

    def delete(self, document_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM ledger WHERE document_id = ?", (document_id,))

    def close(self) -> None:
        self._db.close()


def dumps(records: Sequence[LedgerRecord]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in records], indent=2)
