"""One ledger test-suite for both stores: SQLite locally, DynamoDB (moto) in the cloud."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from service.ingest.ledger import ClaimOutcome, Ledger, LedgerRecord, SqliteLedger, Status, now, order_key


@pytest.fixture(params=["sqlite", "dynamodb"])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        ledger = SqliteLedger(tmp_path / "ledger.sqlite")
        yield ledger
        ledger.close()
        return
    import boto3
    from moto import mock_aws

    from service.ingest.ledger_dynamodb import DynamoDbLedger, create_table

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "ledger-test")
        yield DynamoDbLedger(client, "ledger-test")


def _record(document_id: str, status: Status = Status.INDEXED, **fields: object) -> LedgerRecord:
    stamp = now()
    return LedgerRecord.model_validate(
        {"document_id": document_id, "status": status, "created_at": stamp, "updated_at": stamp, **fields}
    )


def test_put_get_roundtrip_keeps_every_field(any_ledger: Ledger) -> None:
    # Given a record with chunk ids, versions and an error
    record = _record(
        "docs/a.md", chunk_ids=("a" * 40, "b" * 40), version="v1", sequencer=order_key("0A1"), last_error="x"
    )
    # When it is stored and read back
    any_ledger.put(record)
    # Then nothing is lost
    assert any_ledger.get("docs/a.md") == record
    assert any_ledger.get("missing") is None


def test_ten_thousand_chunk_ids_fit_one_record(any_ledger: Ledger) -> None:
    # Given the largest document the indexer accepts (DynamoDB items stop at 400 KB)
    ids = tuple(f"{i:040x}" for i in range(10_000))
    any_ledger.put(_record("big", chunk_ids=ids))
    # Then every id survives
    stored = any_ledger.get("big")
    assert stored is not None
    assert stored.chunk_ids == ids


def test_list_filters_by_status_newest_first_and_counts(any_ledger: Ledger) -> None:
    # Given records in several states
    base = now()
    for i, status in enumerate([Status.INDEXED, Status.FAILED, Status.INDEXED, Status.DELETED]):
        record = _record(f"d{i}", status)
        any_ledger.put(record.model_copy(update={"updated_at": base + timedelta(seconds=i)}))
    # Then list and counts agree with them
    assert [r.document_id for r in any_ledger.list(Status.INDEXED)] == ["d2", "d0"]
    assert [r.document_id for r in any_ledger.list(limit=2)] == ["d3", "d2"]
    assert any_ledger.counts() == {"indexed": 2, "failed": 1, "deleted": 1}


def test_claim_creates_a_queued_record_and_commit_releases_it(any_ledger: Ledger) -> None:
    # When a worker claims an unknown document
    claim = any_ledger.claim("new", key=order_key("10"), owner="w1", at=100.0, lease_until=160.0)
    # Then it holds the lease on a queued record
    assert claim.outcome is ClaimOutcome.CLAIMED
    assert claim.previous is None
    stored = any_ledger.get("new")
    assert stored is not None
    assert (stored.status, stored.lease_owner, stored.sequencer) == (Status.QUEUED, "w1", order_key("10"))
    # And committing releases the lease
    assert any_ledger.commit(claim.record.model_copy(update={"status": Status.INDEXED}), owner="w1")
    stored = any_ledger.get("new")
    assert stored is not None
    assert (stored.status, stored.lease_owner, stored.lease_until) == (Status.INDEXED, None, None)


def test_a_held_lease_makes_other_workers_busy_until_it_lapses(any_ledger: Ledger) -> None:
    any_ledger.claim("doc", key=None, owner="w1", at=100.0, lease_until=160.0)
    # Then another worker is busy before the lease lapses and succeeds after
    assert (
        any_ledger.claim("doc", key=None, owner="w2", at=159.0, lease_until=200.0).outcome
        is ClaimOutcome.BUSY
    )
    assert (
        any_ledger.claim("doc", key=None, owner="w2", at=161.0, lease_until=200.0).outcome
        is ClaimOutcome.CLAIMED
    )
    # And the worker that lost its lease cannot commit
    assert not any_ledger.commit(_record("doc"), owner="w1")
    assert any_ledger.commit(_record("doc"), owner="w2")


def test_an_older_sequencer_is_stale_an_equal_one_is_not(any_ledger: Ledger) -> None:
    claim = any_ledger.claim("doc", key=order_key("0005"), owner="w1", at=1.0, lease_until=2.0)
    any_ledger.commit(claim.record, owner="w1")
    # Then older events are dropped, duplicates and newer ones pass, and the newest key is kept
    assert (
        any_ledger.claim("doc", key=order_key("4"), owner="w2", at=3.0, lease_until=4.0).outcome
        is ClaimOutcome.STALE
    )
    same = any_ledger.claim("doc", key=order_key("5"), owner="w2", at=3.0, lease_until=4.0)
    assert same.outcome is ClaimOutcome.CLAIMED
    any_ledger.commit(same.record, owner="w2")
    newer = any_ledger.claim("doc", key=order_key("1A"), owner="w3", at=5.0, lease_until=6.0)
    assert newer.outcome is ClaimOutcome.CLAIMED
    assert newer.record.sequencer == order_key("1a")
    # And an action without a sequencer keeps the stored one
    any_ledger.commit(newer.record, owner="w3")
    unordered = any_ledger.claim("doc", key=None, owner="w4", at=7.0, lease_until=8.0)
    assert unordered.record.sequencer == order_key("1A")


# -- workspaces (issue 15) ------------------------------------------------------------------------


def test_rows_carry_their_workspace_and_list_count_and_delete_per_workspace(any_ledger: Ledger) -> None:
    # Given documents in two workspaces
    base = now()
    rows = [
        ("a.md", "default", Status.INDEXED),
        ("workspaces/acme/b.md", "acme", Status.INDEXED),
        ("workspaces/acme/c.md", "acme", Status.FAILED),
    ]
    for i, (document_id, workspace, status) in enumerate(rows):
        record = _record(document_id, status, workspace=workspace)
        any_ledger.put(record.model_copy(update={"updated_at": base + timedelta(seconds=i)}))
    # Then each workspace lists and counts its own, with and without a status
    assert [r.document_id for r in any_ledger.list(workspace="acme")] == [
        "workspaces/acme/c.md",
        "workspaces/acme/b.md",
    ]
    assert [r.document_id for r in any_ledger.list(Status.INDEXED, workspace="acme")] == [
        "workspaces/acme/b.md"
    ]
    assert [r.document_id for r in any_ledger.list(workspace="default")] == ["a.md"]
    assert any_ledger.counts("acme") == {"indexed": 1, "failed": 1}
    assert any_ledger.counts() == {"indexed": 2, "failed": 1}
    assert any_ledger.workspace_counts() == {"default": {"indexed": 1}, "acme": {"indexed": 1, "failed": 1}}
    # When a row is deleted, then it is gone from every view
    any_ledger.delete("workspaces/acme/c.md")
    any_ledger.delete("never-there")
    assert any_ledger.get("workspaces/acme/c.md") is None
    assert any_ledger.counts("acme") == {"indexed": 1}


def test_a_claim_creates_the_row_in_the_workspace_given(any_ledger: Ledger) -> None:
    claim = any_ledger.claim(
        "workspaces/acme/x.md", key=None, owner="w", at=0.0, lease_until=10.0, workspace="acme"
    )
    assert claim.outcome is ClaimOutcome.CLAIMED
    assert any_ledger.counts("acme") == {"queued": 1}


def test_a_dynamodb_item_from_before_workspaces_is_the_default_workspaces() -> None:
    import boto3
    from moto import mock_aws

    from service.ingest.ledger_dynamodb import DynamoDbLedger, create_table

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "ledger-old")
        ledger = DynamoDbLedger(client, "ledger-old")
        # Given an item written before rows carried a workspace attribute
        ledger.put(_record("old.md"))
        client.update_item(
            TableName="ledger-old", Key={"document_id": {"S": "old.md"}}, UpdateExpression="REMOVE workspace"
        )
        # Then it is listed and counted in the default workspace, and in no other
        assert [r.document_id for r in ledger.list(workspace="default")] == ["old.md"]
        assert [r.document_id for r in ledger.list(Status.INDEXED, workspace="default")] == ["old.md"]
        assert ledger.list(workspace="acme") == []
        assert ledger.workspace_counts() == {"default": {"indexed": 1}}
