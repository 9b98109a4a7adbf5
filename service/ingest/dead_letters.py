"""What a dead letter is about and why it failed, for every way a message reaches the DLQ.

The ingester sets `DOCUMENT_ATTRIBUTE` and `REASON_ATTRIBUTE` on what it dead-letters itself.
A message the queue's redrive moved (after `maxReceiveCount` receives: a crash, a timeout, a
failure that kept being transient) carries neither; its body still names its document, and
the ledger holds that document's last error.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.ingest.errors import PermanentIngestError
from service.ingest.ledger import Ledger
from service.ingest.messages import parse_message
from service.ingest.queue import MESSAGE_SCOPE


@dataclass(frozen=True)
class Diagnosis:
    document_id: str
    reason: str


def diagnose(
    body: str,
    document_id: str | None,
    reason: str | None,
    ledger: Ledger | None,
    receive_count: str | None = None,
) -> Diagnosis:
    """The document (or `(message)`) and a non-empty reason for one dead letter."""
    if document_id is None:
        try:
            actions = parse_message(body)
        except PermanentIngestError as error:
            return Diagnosis(MESSAGE_SCOPE, reason or error.reason)
        document_id = ", ".join(sorted({a.document_id for a in actions})) or MESSAGE_SCOPE
    if not reason and ledger is not None and (record := ledger.get(document_id)) and record.last_error:
        reason = record.last_error
    if not reason:
        reason = (
            "moved by the queue's redrive"
            + (f" after {receive_count} receives" if receive_count else "")
            + " with no error recorded (a crash or timeout)"
        )
    return Diagnosis(document_id, reason)
