"""Deterministic identifiers: the same input always gives the same id, so redelivery is idempotent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def content_hash(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def chunk_id(document_id: str, position: int, chunk_content_hash: str) -> str:
    """Derived from the document id, the chunk's position and its content hash.

    An unchanged chunk keeps its id across re-ingestion (no re-embedding); a
    changed or moved chunk gets a new one, and the old id is deleted as stale.
    40 hex characters stay far below OpenSearch's 512-byte `_id` limit.
    """
    key = f"{document_id}\x00{position}\x00{chunk_content_hash}".encode()
    return hashlib.sha256(key).hexdigest()[:40]


def permissions_hash(allowed_users: Sequence[str], allowed_groups: Sequence[str]) -> str | None:
    """Identifies who may read a document; None when it is open to its workspace, as every
    document indexed before permissions existed was."""
    if not allowed_users and not allowed_groups:
        return None
    canonical = json.dumps([sorted(allowed_users), sorted(allowed_groups)], separators=(",", ":"))
    return content_hash(canonical)
