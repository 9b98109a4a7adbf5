"""Scoped API keys: `rp_<id>_<secret>`, bound to workspaces and a role, with expiry and revocation.

The key id is public (it names the key in `ragctl keys list`, logs and rate limits) and is the
store's primary key, so verifying a key is one lookup by id, never a scan. Only a keyed hash of
the secret is stored: HMAC-SHA256 over the id and the secret, keyed with a server-side pepper
(a file in the local data directory; a generated Secrets Manager secret in a stack).

Why HMAC rather than scrypt/argon2: the secret is 32 bytes from `secrets` (256 bits), not a
person's password. A slow hash exists to make guessing low-entropy passwords expensive; against
2^256 candidates it adds nothing but milliseconds of CPU on every request (OWASP Password Storage
Cheat Sheet, "Hashing vs Encryption": slow hashes are for passwords). The pepper adds that a copy
of the table alone does not even let anyone test a guess offline.

Revocation and expiry take effect on the next request: every request reads the record (one
DynamoDB GetItem or one SQLite row); nothing is cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from service.access import ALL_WORKSPACES, Principal, Role, check_workspace_id

KEY_PREFIX = "rp"
# 8 random bytes of id: collisions are refused by the store's conditional create, and the id is
# not a secret. 32 bytes of secret (RFC 4086 section 8 asks for at least 128 bits for keys).
_ID_BYTES, _SECRET_BYTES = 8, 32
_KEY = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{_ID_BYTES * 2}}})_([A-Za-z0-9_-]{{20,128}})$")
KEY_ID = re.compile(rf"^[0-9a-f]{{{_ID_BYTES * 2}}}$")
# HMAC keys shorter than the hash output weaken it (RFC 2104, section 3).
MIN_PEPPER_BYTES = 32

Pepper = Callable[[], bytes | None]


@dataclass(frozen=True)
class ApiKeyRecord:
    """What the store holds for one key: never the secret, only its keyed hash."""

    key_id: str
    name: str
    role: Role
    workspaces: frozenset[str]
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


class KeyStore(Protocol):
    """Where key records live: SQLite locally (service/api/keys_sqlite.py), DynamoDB in a stack."""

    def create(self, record: ApiKeyRecord) -> None:
        """Store a new record; `KeyExists` if the id is taken."""

    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def list(self) -> list[ApiKeyRecord]: ...

    def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark the key revoked at `at`; False if there is no such key."""


class KeyExists(RuntimeError):
    pass


def secret_hash(pepper: bytes, key_id: str, secret: str) -> str:
    return hmac.new(pepper, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed scoped key, else None."""
    match = _KEY.match(presented)
    return (match.group(1), match.group(2)) if match else None


def looks_scoped(presented: str) -> bool:
    return presented.startswith(f"{KEY_PREFIX}_")


def check_workspaces(workspaces: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(workspaces)
    if not chosen:
        raise ValueError("a key needs at least one workspace")
    for workspace in chosen - {ALL_WORKSPACES}:
        check_workspace_id(workspace)
    return chosen


def new_key(
    pepper: bytes,
    *,
    name: str,
    role: Role,
    workspaces: Iterable[str],
    now: datetime,
    expires_at: datetime | None,
) -> tuple[str, ApiKeyRecord]:
    """A new key: the plaintext (shown once) and the record to store."""
    if len(pepper) < MIN_PEPPER_BYTES:
        raise ValueError(f"the pepper must be at least {MIN_PEPPER_BYTES} bytes")
    if expires_at is not None and expires_at <= now:
        raise ValueError("the expiry must be in the future")
    key_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    record = ApiKeyRecord(
        key_id=key_id,
        name=name,
        role=role,
        workspaces=check_workspaces(workspaces),
        secret_hash=secret_hash(pepper, key_id, secret),
        created_at=now,
        expires_at=expires_at,
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def key_subject(key_id: str) -> str:
    """The principal's subject for a key: its public id, never the secret."""
    return f"key:{key_id}"


class ScopedKeys:
    """Turns a presented scoped key into a `Principal`, or None (unknown, wrong, expired, revoked)."""

    def __init__(self, store: KeyStore, pepper: Pepper, clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._pepper = pepper
        self._clock = clock or (lambda: datetime.now(UTC))

    def verify(self, presented: str) -> Principal | None:
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        pepper = self._pepper()
        if pepper is None:
            return None  # no key was ever created here: nothing can match
        record = self._store.get(key_id)
        expected = record.secret_hash if record is not None else "0" * 64
        # Hash and compare even for an unknown id, so timing says nothing about which ids exist.
        matched = hmac.compare_digest(secret_hash(pepper, key_id, secret), expected)
        if record is None or not matched or not record.usable_at(self._clock()):
            return None
        return Principal(subject=key_subject(key_id), role=record.role, workspaces=record.workspaces)


def revoked(record: ApiKeyRecord, at: datetime) -> ApiKeyRecord:
    return replace(record, revoked_at=at)


# --- the local pepper -----------------------------------------------------------------------


def local_pepper_path(data_dir: Path) -> Path:
    return data_dir / "key-pepper"


def file_pepper(path: Path) -> Pepper:
    """Reads the pepper on each call (a few bytes), so a pepper created after start is seen."""

    def read() -> bytes | None:
        try:
            value = path.read_bytes()
        except FileNotFoundError:
            return None
        return value if len(value) >= MIN_PEPPER_BYTES else None

    return read


def new_pepper() -> bytes:
    return secrets.token_bytes(MIN_PEPPER_BYTES)


def secret_pepper(fetch: Callable[[], str]) -> Pepper:
    """The stack's pepper from Secrets Manager (a generated string of at least 32 characters)."""

    def read() -> bytes | None:
        value = fetch().encode()
        return value if len(value) >= MIN_PEPPER_BYTES else None

    return read
