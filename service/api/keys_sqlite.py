"""The local key store: a table in its own SQLite file in the data directory, beside the ledger.

The API process and `ragctl keys` share the file; each read is one primary-key lookup, so a key
revoked by the CLI is refused on the API's next request.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from service.access import Role
from service.api.keys import ApiKeyRecord, KeyExists

_SCHEMA = "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, record TEXT NOT NULL)"


def local_keys_path(data_dir: Path) -> Path:
    return data_dir / "keys.sqlite"


def record_to_json(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "role": record.role.name.lower(),
        "workspaces": sorted(record.workspaces),
        "secret_hash": record.secret_hash,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def record_from_json(data: dict[str, Any]) -> ApiKeyRecord:
    created = _when(data["created_at"])
    assert created is not None
    return ApiKeyRecord(
        key_id=str(data["key_id"]),
        name=str(data["name"]),
        role=Role[str(data["role"]).upper()],
        workspaces=frozenset(str(w) for w in data["workspaces"]),
        secret_hash=str(data["secret_hash"]),
        created_at=created,
        expires_at=_when(data.get("expires_at")),
        revoked_at=_when(data.get("revoked_at")),
    )


class SqliteKeyStore:
    """Opened lazily: an API that never sees a scoped key never creates the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self._path.exists():
                return None
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def create(self, record: ApiKeyRecord) -> None:
        with self._lock:
            db = self._conn(create=True)
            assert db is not None
            try:
                db.execute(
                    "INSERT INTO api_keys VALUES (?, ?)", (record.key_id, json.dumps(record_to_json(record)))
                )
            except sqlite3.IntegrityError:
                raise KeyExists(record.key_id) from None

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self._lock:
            db = self._conn(create=False)
            if db is None:
                return None
            row = db.execute("SELECT record FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return record_from_json(json.loads(row[0])) if row else None

    def list(self) -> list[ApiKeyRecord]:
        with self._lock:
            db = self._conn(create=False)
            rows = db.execute("SELECT record FROM api_keys").fetchall() if db is not None else []
        return sorted((record_from_json(json.loads(r[0])) for r in rows), key=lambda r: r.created_at)

    def revoke(self, key_id: str, at: datetime) -> bool:
        with self._lock:
            db = self._conn(create=False)
            if db is None:
                return False
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT record FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is not None:
                    data = json.loads(row[0])
                    # A second revoke keeps the first time.
                    data["revoked_at"] = data.get("revoked_at") or at.isoformat()
                    db.execute("UPDATE api_keys SET record = ? WHERE key_id = ?", (json.dumps(data), key_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return row is not None
