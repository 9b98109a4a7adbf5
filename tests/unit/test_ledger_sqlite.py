"""The local SQLite ledger under failures and concurrency: one file for worker, API and CLI (issue 16)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from service.ingest.ledger import (
    ClaimOutcome,
    LedgerRecord,
    SqliteLedger,
    Status,
    claimed_record,
    dumps,
    local_ledger_path,
    now,
    order_key,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path) -> Iterator[SqliteLedger]:
    created = SqliteLedger(path)
    yield created
    created.close()


def raw(path: Path) -> sqlite3.Connection:
    """Another process's connection to the same file (autocommit, explicit transactions)."""
    return sqlite3.connect(path, isolation_level=None, timeout=5)


def fail_writes(path: Path, when: str) -> None:
    """Make the file refuse some writes, as a full disk or an I/O error would, mid-transaction."""
    with raw(path) as connection:
        connection.execute(
            f"CREATE TRIGGER injected_failure BEFORE INSERT ON ledger WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"
        )


def test_a_claim_whose_write_fails_raises_writes_nothing_and_leaves_the_ledger_usable(
    ledger: SqliteLedger, path: Path
) -> None:
    # Given a ledger file that refuses to write one document's record
    fail_writes(path, "NEW.document_id = 'poison'")
    # When a worker claims that document
    with pytest.raises(sqlite3.DatabaseError, match="injected write failure"):
        ledger.claim("poison", key=None, owner="w1", at=1.0, lease_until=60.0)
    # Then no lease was taken
    assert ledger.get("poison") is None
    # And the transaction was rolled back: this connection and another one can claim at once
    assert (
        ledger.claim("other", key=None, owner="w1", at=1.0, lease_until=60.0).outcome is ClaimOutcome.CLAIMED
    )
    second = SqliteLedger(path)
    try:
        claim = second.claim("third", key=None, owner="w2", at=1.0, lease_until=60.0)
        assert claim.outcome is ClaimOutcome.CLAIMED
    finally:
        second.close()


def test_a_commit_whose_write_fails_raises_and_keeps_the_lease_and_the_old_record(
    ledger: SqliteLedger, path: Path
) -> None:
    # Given a claimed document, and a file that now refuses to record it as indexed
    claim = ledger.claim("doc", key=None, owner="w1", at=1.0, lease_until=60.0)
    fail_writes(path, "NEW.status = 'indexed'")
    # When the worker commits the indexed record
    with pytest.raises(sqlite3.DatabaseError, match="injected write failure"):
        ledger.commit(claim.record.model_copy(update={"status": Status.INDEXED}), owner="w1")
    # Then the ledger never says indexed, and the worker still holds its lease
    stored = ledger.get("doc")
    assert stored is not None
    assert (stored.status, stored.lease_owner) == (Status.QUEUED, "w1")
    # And the ledger is usable at once: recording the failure works and releases the lease
    assert ledger.commit(claim.record.model_copy(update={"status": Status.FAILED}), owner="w1")
    stored = ledger.get("doc")
    assert stored is not None
    assert (stored.status, stored.lease_owner) == (Status.FAILED, None)


def test_a_claim_waits_for_another_connections_write_and_then_sees_it(path: Path) -> None:
    # Given two processes' connections to one ledger file; the first is inside a claim
    # transaction that gives the document's lease to w1, not yet committed
    second = SqliteLedger(path)
    held = claimed_record(None, "doc", None, "w1", lease_until=160.0)
    writer = raw(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO ledger (document_id, status, updated_at, record) VALUES ('doc', 'queued', ?, ?)",
        (held.updated_at.isoformat(), held.model_dump_json()),
    )
    outcome: dict[str, object] = {}

    def claim() -> None:
        try:
            outcome["result"] = second.claim("doc", key=None, owner="w2", at=120.0, lease_until=200.0).outcome
        except sqlite3.Error as error:  # a race lost to the other connection
            outcome["result"] = error

    # When the second connection claims the same document meanwhile, and the first then commits
    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.3)
    writer.execute("COMMIT")
    thread.join(timeout=10)
    # Then the second claim waited for the write lock instead of deciding on a stale read:
    # it sees w1's lease and is BUSY (never CLAIMED, never an error)
    assert outcome["result"] is ClaimOutcome.BUSY
    second.close()
    writer.close()


def test_concurrent_claims_from_separate_connections_grant_one_lease(path: Path) -> None:
    # Given six workers, each with its own connection to one ledger file
    workers = [SqliteLedger(path) for _ in range(6)]
    barrier = threading.Barrier(len(workers))
    outcomes: list[object] = []

    def claim(index: int) -> None:
        barrier.wait()
        try:
            result = workers[index].claim("doc", key=None, owner=f"w{index}", at=1.0, lease_until=60.0)
            outcomes.append(result.outcome)
        except sqlite3.Error as error:
            outcomes.append(error)

    # When all claim the same document at the same moment
    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then exactly one holds the lease, the others are told BUSY, and none fails
    assert sorted(map(str, outcomes)) == sorted(["claimed"] + ["busy"] * (len(workers) - 1))
    for worker in workers:
        worker.close()


def test_a_long_read_never_blocks_the_worker(ledger: SqliteLedger, path: Path) -> None:
    # Given a reader in the middle of a long read (an export, the API listing documents)
    claim = ledger.claim("doc", key=None, owner="w1", at=1.0, lease_until=60.0)
    reader = raw(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT status FROM ledger").fetchall() == [("queued",)]
    # When the worker commits meanwhile
    started = time.monotonic()
    assert ledger.commit(claim.record.model_copy(update={"status": Status.INDEXED}), owner="w1")
    # Then the commit did not wait for the reader (WAL: readers and the writer do not block each other),
    # the reader keeps its consistent snapshot, and sees the commit once its read ends
    assert time.monotonic() - started < 5
    assert reader.execute("SELECT status FROM ledger").fetchall() == [("queued",)]
    reader.execute("COMMIT")
    assert reader.execute("SELECT status FROM ledger").fetchall() == [("indexed",)]
    assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reader.close()


def test_a_record_written_by_one_process_is_visible_to_another_at_once(
    ledger: SqliteLedger, path: Path
) -> None:
    # Given a record put through one connection (no transaction left open)
    claim = ledger.claim("doc", key=None, owner="w1", at=1.0, lease_until=60.0)
    ledger.put(claim.record.model_copy(update={"status": Status.FAILED, "last_error": "x"}))
    # Then another process reads it straight away and can write too
    other = SqliteLedger(path)
    try:
        stored = other.get("doc")
        assert stored is not None
        assert (stored.status, stored.last_error) == (Status.FAILED, "x")
        assert other.counts() == {"failed": 1}
        assert (
            other.claim("new", key=None, owner="w2", at=1.0, lease_until=9.0).outcome is ClaimOutcome.CLAIMED
        )
    finally:
        other.close()


def test_the_ledger_creates_its_data_directory_where_earlier_versions_put_it(tmp_path: Path) -> None:
    # Given a data directory that does not exist yet, nested
    data_dir = tmp_path / "fresh" / "data"
    # When the local ledger opens there
    path = local_ledger_path(data_dir)
    created = SqliteLedger(path)
    created.close()
    # Then the file is the one `ragctl dev` has always used
    assert path == data_dir / "ledger.sqlite"
    assert path.is_file()


def test_a_worker_may_renew_its_own_live_lease_but_sees_the_holder_when_busy(ledger: SqliteLedger) -> None:
    # Given w1 holds the lease until t=60
    first = ledger.claim("doc", key=None, owner="w1", at=1.0, lease_until=60.0)
    # When w1 claims again before it lapses (a retried call), then it is granted and extended
    again = ledger.claim("doc", key=None, owner="w1", at=2.0, lease_until=70.0)
    assert again.outcome is ClaimOutcome.CLAIMED
    assert again.previous == first.record
    assert (again.record.lease_owner, again.record.lease_until) == ("w1", 70.0)
    # And another worker is BUSY, and is shown the record that holds it
    busy = ledger.claim("doc", key=None, owner="w2", at=3.0, lease_until=80.0)
    assert busy.outcome is ClaimOutcome.BUSY
    assert busy.record == again.record
    assert busy.previous == again.record


def test_stale_claims_report_the_newer_record_they_lost_to(ledger: SqliteLedger) -> None:
    # Given a document at sequencer 0A, committed
    claim = ledger.claim("doc", key=order_key("0A"), owner="w1", at=1.0, lease_until=2.0)
    assert ledger.commit(claim.record, owner="w1")
    stored = ledger.get("doc")
    # When an older event claims it / Then it is stale, and carries the stored record
    stale = ledger.claim("doc", key=order_key("09"), owner="w2", at=3.0, lease_until=4.0)
    assert (stale.outcome, stale.record, stale.previous) == (ClaimOutcome.STALE, stored, stored)


def test_order_keys_and_timestamps_are_stored_in_their_documented_form(ledger: SqliteLedger) -> None:
    # Given an S3 sequencer in lower case
    claim = ledger.claim("doc", key=order_key("62e99a88dc407460"), owner="w1", at=1.0, lease_until=2.0)
    # Then the stored order key is 40 upper-case hex digits, the form DynamoDB records share
    assert claim.record.sequencer == "0" * 24 + "62E99A88DC407460"
    # And the record's timestamps are in UTC, with their zone
    assert claim.record.created_at.utcoffset() == timedelta(0)
    assert now().utcoffset() == timedelta(0)


def test_dumps_writes_indented_json_that_reads_back_into_the_same_records(ledger: SqliteLedger) -> None:
    # Given two records
    for name in ("a", "b"):
        ledger.claim(name, key=order_key("1"), owner="w", at=1.0, lease_until=2.0)
    records = ledger.list()
    # When dumped
    text = dumps(records)
    # Then the text is indented JSON, one object per record, which validates back to the records
    assert text.startswith('[\n  {\n    "document_id": ')
    assert [LedgerRecord.model_validate(item) for item in json.loads(text)] == records


def test_a_ledger_from_before_workspaces_gains_the_column_with_every_row_in_default(tmp_path: Path) -> None:
    # Given a ledger file written before workspaces (no workspace column)
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE ledger (document_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, record TEXT NOT NULL);"
    )
    stamp = "2025-01-01T00:00:00+00:00"
    old = {"document_id": "a.md", "status": "indexed", "created_at": stamp, "updated_at": stamp}
    db.execute("INSERT INTO ledger VALUES ('a.md', 'indexed', ?, ?)", (stamp, json.dumps(old)))
    db.commit()
    db.close()
    # When the platform opens it, then its rows are the default workspace's
    ledger = SqliteLedger(path)
    assert ledger.workspace_counts() == {"default": {"indexed": 1}}
    record = ledger.get("a.md")
    assert record is not None
    assert record.workspace == "default"
    ledger.close()
