"""Every dead letter names its document (or `(message)`) and a reason, however it got there."""

from __future__ import annotations

import json
from pathlib import Path

from service.ingest.dead_letters import diagnose
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status, now
from service.ingest.queue import MESSAGE_SCOPE

S3_EVENT = json.dumps(
    {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "guide/deploy.md"}},
            }
        ]
    }
)


def test_the_ingesters_own_attributes_are_kept() -> None:
    diagnosis = diagnose(S3_EVENT, "guide/deploy.md", "guide/deploy.md: no extractable text", None)
    assert (diagnosis.document_id, diagnosis.reason) == (
        "guide/deploy.md",
        "guide/deploy.md: no extractable text",
    )


def test_a_message_moved_by_the_redrive_is_named_from_its_body_and_the_ledger(tmp_path: Path) -> None:
    # Given a message with no attributes (moved by maxReceiveCount) and the ledger's last error for it
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    at = now()
    ledger.put(
        LedgerRecord(
            document_id="guide/deploy.md",
            status=Status.QUEUED,
            last_error="retrying: 503 Service Unavailable",
            created_at=at,
            updated_at=at,
        )
    )
    # When it is diagnosed, then the body names the document and the ledger says why
    diagnosis = diagnose(S3_EVENT, None, None, ledger, receive_count="3")
    ledger.close()
    assert diagnosis.document_id == "guide/deploy.md"
    assert diagnosis.reason == "retrying: 503 Service Unavailable"


def test_a_redriven_message_with_no_recorded_error_says_so_with_its_receive_count() -> None:
    diagnosis = diagnose(S3_EVENT, None, None, None, receive_count="3")
    assert diagnosis.document_id == "guide/deploy.md"
    assert "redrive after 3 receives" in diagnosis.reason


def test_a_malformed_message_without_attributes_is_named_as_a_message_with_the_parse_error() -> None:
    diagnosis = diagnose('{"Records": "notalist"}', None, None, None)
    assert diagnosis.document_id == MESSAGE_SCOPE
    assert "Records must be a list" in diagnosis.reason
