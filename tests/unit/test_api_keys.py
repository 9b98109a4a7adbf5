"""Scoped API keys (issue 15 item 2): format, keyed hash, expiry, revocation, and both stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.access import ALL_WORKSPACES, Role
from service.api.keys import (
    ApiKeyRecord,
    KeyExists,
    KeyStore,
    ScopedKeys,
    file_pepper,
    new_key,
    parse_key,
    secret_hash,
)
from service.api.keys_sqlite import SqliteKeyStore

PEPPER = b"p" * 32
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_key(
    store: KeyStore, *, role: Role = Role.READER, workspaces: tuple[str, ...] = ("default",), **kw: Any
) -> tuple[str, ApiKeyRecord]:
    plaintext, record = new_key(
        PEPPER,
        name="test",
        role=role,
        workspaces=workspaces,
        now=kw.pop("now", NOW),
        expires_at=kw.pop("expires_at", None),
    )
    store.create(record)
    return plaintext, record


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SqliteKeyStore:
    return SqliteKeyStore(tmp_path / "keys.sqlite")


@pytest.fixture
def dynamodb_store() -> Iterator[KeyStore]:
    import boto3
    from moto import mock_aws

    from service.api.keys_dynamodb import DynamoDbKeyStore, create_table

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "keys")
        yield DynamoDbKeyStore(client, "keys")


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest) -> KeyStore:
    fixture: KeyStore = request.getfixturevalue(f"{request.param}_store")
    return fixture


def verifier(store: KeyStore, now: datetime = NOW) -> ScopedKeys:
    return ScopedKeys(store, lambda: PEPPER, clock=lambda: now)


def test_a_key_is_its_id_and_secret_and_only_a_keyed_hash_is_stored(store: KeyStore) -> None:
    # Given a new key
    plaintext, record = make_key(store)
    # Then it reads rp_<id>_<secret>, and the store holds the id and HMAC of the secret, never the secret
    parsed = parse_key(plaintext)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == record.key_id
    stored = store.get(key_id)
    assert stored == record
    assert secret not in repr(stored)
    assert stored.secret_hash == secret_hash(PEPPER, key_id, secret)
    # and the same secret under another pepper hashes differently (a table copy alone verifies nothing)
    assert secret_hash(b"q" * 32, key_id, secret) != stored.secret_hash


def test_a_valid_key_becomes_a_principal_with_its_role_and_workspaces(store: KeyStore) -> None:
    plaintext, record = make_key(store, role=Role.WRITER, workspaces=("a", "b"))
    principal = verifier(store).verify(plaintext)
    assert principal is not None
    assert (principal.role, principal.workspaces) == (Role.WRITER, frozenset({"a", "b"}))
    # The subject names the key by its public id, never the secret
    assert principal.subject == f"key:{record.key_id}"
    assert plaintext.rsplit("_", 1)[-1] not in principal.subject


def _tamper(plaintext: str) -> str:
    last = plaintext[-1]
    return plaintext[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param(lambda key, other: _tamper(key), id="secret-changed"),
        pytest.param(lambda key, other: key[:-1], id="secret-truncated"),
        pytest.param(
            lambda key, other: key.replace(key.split("_")[1], other.split("_")[1]), id="other-keys-id"
        ),
        pytest.param(lambda key, other: "rp_0123456789abcdef_" + key.split("_", 2)[2], id="unknown-id"),
        pytest.param(lambda key, other: key.upper(), id="upper-case"),
        pytest.param(lambda key, other: "", id="empty"),
    ],
)
def test_a_tampered_or_unknown_key_is_refused(store: KeyStore, presented: Callable[[str, str], str]) -> None:
    key, _ = make_key(store)
    other, _ = make_key(store)
    assert verifier(store).verify(presented(key, other)) is None


def test_an_expired_key_is_refused_from_its_expiry_on(store: KeyStore) -> None:
    # Given a key that expires in an hour
    plaintext, _ = make_key(store, expires_at=NOW + timedelta(hours=1))
    # Then it works until then, and not at or after the expiry
    assert verifier(store, NOW + timedelta(minutes=59)).verify(plaintext) is not None
    assert verifier(store, NOW + timedelta(hours=1)).verify(plaintext) is None


def test_revocation_is_seen_by_the_very_next_verification(store: KeyStore) -> None:
    # Given one verifier (as a long-running API process holds)
    plaintext, record = make_key(store)
    keys = verifier(store)
    assert keys.verify(plaintext) is not None
    # When the key is revoked through the store (as `ragctl keys revoke` does)
    assert store.revoke(record.key_id, NOW) is True
    # Then the same verifier refuses it at once: nothing is cached
    assert keys.verify(plaintext) is None
    stored = store.get(record.key_id)
    assert stored is not None
    assert stored.state(NOW) == "revoked"


def test_revoking_an_unknown_key_says_so_and_revoking_twice_keeps_the_first_time(store: KeyStore) -> None:
    _, record = make_key(store)
    assert store.revoke("0123456789abcdef", NOW) is False
    assert store.revoke(record.key_id, NOW) is True
    assert store.revoke(record.key_id, NOW + timedelta(days=1)) is True
    stored = store.get(record.key_id)
    assert stored is not None
    assert stored.revoked_at == NOW


def test_an_id_is_never_reused(store: KeyStore) -> None:
    _, record = make_key(store)
    with pytest.raises(KeyExists):
        store.create(record)


def test_list_shows_every_key_oldest_first(store: KeyStore) -> None:
    _, first = make_key(store, now=NOW - timedelta(days=1))
    _, second = make_key(store, role=Role.ADMIN, workspaces=(ALL_WORKSPACES,))
    assert [r.key_id for r in store.list()] == [first.key_id, second.key_id]


def test_without_a_pepper_no_key_verifies(sqlite_store: SqliteKeyStore, tmp_path: Path) -> None:
    # Given a key created under a pepper that the API cannot read (deleted file, missing secret)
    plaintext, _ = make_key(sqlite_store)
    keys = ScopedKeys(sqlite_store, file_pepper(tmp_path / "missing"), clock=lambda: NOW)
    # Then it is refused rather than checked against some default
    assert keys.verify(plaintext) is None


def test_a_reading_api_never_creates_the_local_store(tmp_path: Path) -> None:
    # Given an API that has never seen a key: a lookup leaves no file behind
    store = SqliteKeyStore(tmp_path / "keys.sqlite")
    assert store.get("0123456789abcdef") is None
    assert store.list() == []
    assert not (tmp_path / "keys.sqlite").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"workspaces": ()}, "at least one workspace", id="no-workspace"),
        pytest.param({"workspaces": ("Bad_Name",)}, "workspace id", id="bad-workspace"),
        pytest.param({"expires_at": NOW}, "future", id="expired-at-birth"),
    ],
)
def test_a_key_that_could_never_work_is_refused_at_creation(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"workspaces": ("default",), "expires_at": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        new_key(PEPPER, name="x", role=Role.READER, now=NOW, **values)


def test_a_short_pepper_is_refused() -> None:
    with pytest.raises(ValueError, match="pepper"):
        new_key(b"short", name="x", role=Role.READER, workspaces=("default",), now=NOW, expires_at=None)
