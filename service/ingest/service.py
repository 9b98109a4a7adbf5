"""Apply queue messages to the index and keep the ledger in step.

`IngestService.handle_message` is what the Lambda ingester and the local
worker run for each SQS record. Per action:

1. claim the document in the ledger (ordering + lease rules, see `service.ingest.ledger`):
   a stale action is dropped, a busy document is retried;
2. for S3 documents, read the object's *current* state, whatever version the event
   named: a late or duplicate event can only re-confirm what S3 holds now, and a
   missing object means "delete";
3. skip everything if the content hash equals the indexed one (no embedding calls);
   else index: embed only chunks not yet in the index, then delete the stale ones;
4. commit the ledger record (conditional on still holding the lease).

Failures: transient errors are retried with backoff inside the invocation, then
raised so the record is reported failed and redelivered; permanent ones are
recorded in the ledger with their reason and the message is sent to the DLQ at
once (deduplicated by message hash), without failing the record; if that send
fails, the ledger still says failed and why, and the record fails so the message
is redelivered and sent again. Any other
exception is a failure nobody classified: it is dead-lettered like a permanent
one, with its type and message as the reason, rather than left to the queue's
redrive, which would move the message without saying why. A message that names
no document (malformed, or for another bucket) is dead-lettered as `(message)`. A document
too large for the invocation's remaining time is indexed in slices: the rest
is handed to a continuation message.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.ids import content_hash, permissions_hash
from service.ingest.indexer import Indexer, IndexResult, WorkLimits
from service.ingest.ledger import Claim, ClaimOutcome, Ledger, LedgerRecord, Status, now, order_key
from service.ingest.messages import IngestAction, parse_message
from service.ingest.objects import ObjectStore
from service.ingest.parse import parse_document
from service.ingest.queue import (
    DOCUMENT_ATTRIBUTE,
    FAILED_AT_ATTRIBUTE,
    MESSAGE_SCOPE,
    REASON_ATTRIBUTE,
    MessageSink,
)
from service.ingest.retry import Retrier, is_transient
from service.models import Document
from service.workspaces import MalformedWorkspaceKey, workspace_of

log = logging.getLogger("service.ingest")

# Lambda's maximum timeout, used when the caller gives no deadline.
_DEFAULT_REMAINING_MS = 900_000


@dataclass(frozen=True)
class IngestLimits:
    # New chunks one message may embed before handing the rest to a continuation.
    max_chunks_per_message: int = 512
    # Time kept free at the end of an invocation for the ledger commit and the continuation.
    reserve_seconds: float = 5.0
    retry_budget_seconds: float = 20.0
    retry_base_seconds: float = 0.1
    retry_cap_seconds: float = 5.0


@dataclass(frozen=True)
class Seams:
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random


@dataclass
class _Attempt:
    """One message's processing: its body, retry budget and deadline."""

    body: str
    retry: Retrier
    deadline: float


class IngestService:
    def __init__(
        self,
        indexer: Indexer,
        objects: ObjectStore,
        ledger: Ledger,
        max_document_bytes: int,
        *,
        dead_letters: MessageSink | None = None,
        requeue: MessageSink | None = None,
        bucket: str | None = None,
        limits: IngestLimits | None = None,
        seams: Seams | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.indexer = indexer
        self.objects = objects
        self.ledger = ledger
        self.max_document_bytes = max_document_bytes
        self.dead_letters = dead_letters
        self.requeue = requeue
        self.bucket = bucket
        self.limits = limits or IngestLimits()
        self.seams = seams or Seams()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"

    # -- entry point ----------------------------------------------------------------------------

    def handle_message(self, body: str, *, remaining_ms: int | None = None) -> None:
        """Apply one queue message; raise only if it should be redelivered."""
        remaining = (remaining_ms if remaining_ms is not None else _DEFAULT_REMAINING_MS) / 1000
        deadline = self.seams.monotonic() + remaining
        retry = Retrier(
            deadline=deadline - self.limits.reserve_seconds,
            budget_seconds=self.limits.retry_budget_seconds,
            base_seconds=self.limits.retry_base_seconds,
            cap_seconds=self.limits.retry_cap_seconds,
            clock=self.seams.monotonic,
            sleep=self.seams.sleep,
            rng=self.seams.rng,
        )
        attempt = _Attempt(body, retry, deadline)
        too_late = remaining < 2 * self.limits.reserve_seconds
        if too_late and self._hand_over(body, "deferred: too little time left"):
            return
        try:
            actions = parse_message(body, bucket=self.bucket)
        except PermanentIngestError as error:
            if not self._dead_letter(body, error.reason, None):
                raise
            return
        transient: list[str] = []
        for action in actions:
            try:
                self._apply(action, attempt)
            except TransientIngestError as error:
                transient.append(str(error))
        if transient:
            raise TransientIngestError("; ".join(transient))

    # -- one action -----------------------------------------------------------------------------

    def _claim(self, action: IngestAction, owner: str, attempt: _Attempt, workspace: str) -> Claim:
        def once() -> Claim:
            at = self.seams.clock()
            lease_until = at + max(1.0, attempt.deadline - self.seams.monotonic())
            claim = self.ledger.claim(
                action.document_id,
                key=order_key(action.sequencer),
                owner=owner,
                at=at,
                lease_until=lease_until,
                workspace=workspace,
            )
            if claim.outcome is ClaimOutcome.BUSY:
                raise TransientIngestError(f"{action.document_id}: another worker is applying an action")
            return claim

        return attempt.retry.call(once, "claim")

    def _apply(self, action: IngestAction, attempt: _Attempt) -> None:
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:12]}"
        if action.object is not None and action.object.key.endswith("/"):
            # A folder marker (`ragctl workspaces create`, the S3 console's "Create folder"):
            # not a document, nothing to index or record.
            log.info("ignoring folder marker %s", action.object.uri)
            return
        try:
            workspace = action_workspace(action)
        except MalformedWorkspaceKey as error:
            # No ledger row: the document belongs to no workspace anyone could list it in.
            if not self._dead_letter(attempt.body, str(error), action.document_id):
                raise PermanentIngestError(str(error)) from None
            return
        claim = self._claim(action, owner, attempt, workspace)
        if claim.outcome is ClaimOutcome.STALE:
            log.info("dropping stale action on %s (sequencer %s)", action.document_id, action.sequencer)
            return
        record = claim.record
        try:
            final = self._work(action, record, attempt)
        except PermanentIngestError as error:
            self._fail_permanently(action, record, attempt, error.reason, owner)
            return
        except Exception as error:
            if is_transient(error):
                self._commit(owner, record, status=Status.QUEUED, last_error=f"retrying: {error}", bump=True)
                raise
            # Unclassified: see the module docstring.
            log.exception("unexpected error on %s", action.document_id)
            reason = f"unexpected error: {type(error).__name__}: {error}"
            self._fail_permanently(action, record, attempt, reason, owner)
            return
        if not self.ledger.commit(final, owner=owner):
            raise TransientIngestError(f"{action.document_id}: lost the ledger lease before committing")

    def _work(self, action: IngestAction, record: LedgerRecord, attempt: _Attempt) -> LedgerRecord:
        if action.kind == "delete" and action.object is None:
            return self._deleted(record, attempt)
        if action.document is not None:
            digest = content_hash(action.document.text)
            version = action.version or digest
            return self._index(action, record, attempt, action.document, version=version, digest=digest)
        return self._sync_object(action, record, attempt)

    def _sync_object(self, action: IngestAction, record: LedgerRecord, attempt: _Attempt) -> LedgerRecord:
        ref = action.object
        assert ref is not None
        # The current version, not the event's: an oversized one is refused before its body is read.
        stored = attempt.retry.call(lambda: self.objects.get(ref, self.max_document_bytes), "read object")
        if stored is None:
            return self._deleted(record.model_copy(update={"source": ref.uri}), attempt)
        digest = content_hash(stored.data)
        version = stored.version_id or stored.etag
        if record.status is Status.INDEXED and record.content_hash == digest:
            return self._same_content(
                record, attempt, stored.allowed_users, stored.allowed_groups, version=version, source=ref.uri
            )
        document = parse_document(
            stored.data,
            document_id=action.document_id,
            source=ref.uri,
            max_bytes=self.max_document_bytes,
            tags=stored.tags,
            workspace=record.workspace,
            allowed_users=stored.allowed_users,
            allowed_groups=stored.allowed_groups,
        )
        return self._index(action, record, attempt, document, version=version, digest=digest)

    def _same_content(
        self,
        record: LedgerRecord,
        attempt: _Attempt,
        allowed_users: tuple[str, ...],
        allowed_groups: tuple[str, ...],
        *,
        version: str,
        source: str,
    ) -> LedgerRecord:
        """Unchanged content: nothing is embedded. Changed permissions are rewritten on the
        indexed chunks in place (their vectors kept)."""
        wanted = permissions_hash(allowed_users, allowed_groups)
        if wanted != record.permissions_hash:
            attempt.retry.call(
                lambda: self.indexer.backend.update_permissions(
                    record.document_id, allowed_users, allowed_groups
                ),
                "update permissions",
            )
        return self._done(
            record, status=Status.INDEXED, version=version, source=source, permissions_hash=wanted
        )

    def _index(
        self,
        action: IngestAction,
        record: LedgerRecord,
        attempt: _Attempt,
        document: Document,
        *,
        version: str,
        digest: str,
    ) -> LedgerRecord:
        if record.status is Status.INDEXED and record.content_hash == digest:
            return self._same_content(
                record,
                attempt,
                document.allowed_users,
                document.allowed_groups,
                version=version,
                source=document.source,
            )
        limits = WorkLimits(max_new_chunks=self.limits.max_chunks_per_message)
        result: IndexResult = self.indexer.index(document, attempt.retry, limits)
        if not result.complete:
            part = action.continuation + 1
            note = f"continuing: {result.embedded} chunks written, more to come (part {part})"
            if not self._hand_over(action.continued(), note):
                raise TransientIngestError(f"{action.document_id}: {note}")
            return self._done(record, status=Status.QUEUED, last_error=note, source=document.source)
        wanted = permissions_hash(document.allowed_users, document.allowed_groups)
        if wanted != record.permissions_hash and record.chunk_ids:
            # Chunks the new version shares with the old one were kept, with the old permissions.
            attempt.retry.call(
                lambda: self.indexer.backend.update_permissions(
                    document.document_id, document.allowed_users, document.allowed_groups
                ),
                "update permissions",
            )
        return self._done(
            record,
            status=Status.INDEXED,
            source=document.source,
            version=version,
            content_hash=digest,
            chunk_ids=result.chunk_ids,
            permissions_hash=wanted,
        )

    def _deleted(self, record: LedgerRecord, attempt: _Attempt) -> LedgerRecord:
        self.indexer.delete(record.document_id, attempt.retry)
        return self._done(
            record, status=Status.DELETED, chunk_ids=(), content_hash=None, permissions_hash=None
        )

    # -- failures and hand-overs ----------------------------------------------------------------

    def _fail_permanently(
        self, action: IngestAction, record: LedgerRecord, attempt: _Attempt, reason: str, owner: str
    ) -> None:
        key = content_hash(attempt.body)
        # A duplicate delivery of a message already dead-lettered is not sent again.
        try:
            sent = record.dead_letter_key == key or self._dead_letter(
                attempt.body, reason, action.document_id
            )
        except Exception as error:
            # The DLQ send itself failed: record the failure and release the lease, so the operator
            # sees why the document failed, then raise so the message is redelivered and sent again.
            dlq_failed = f"{reason} (not dead-lettered: {type(error).__name__}: {error})"
            # `dead_letter_key` keeps the hash of the message last sent, which is not this one.
            self._commit(owner, record, status=Status.FAILED, last_error=dlq_failed, bump=True)
            raise
        # The document keeps the chunks of its last good version, so `chunk_ids` is unchanged.
        self._commit(
            owner,
            record,
            status=Status.FAILED,
            last_error=reason,
            dead_letter_key=key if sent else None,
            bump=True,
        )
        if not sent:
            raise PermanentIngestError(reason)

    def _dead_letter(self, body: str, reason: str, document_id: str | None) -> bool:
        """Send to the DLQ with the reason; False if there is no DLQ to send to."""
        log.warning("dead-lettering message for %s: %s", document_id or "(no document)", reason)
        if self.dead_letters is None:
            # No DLQ configured: the record fails and maxReceiveCount moves it.
            return False
        attributes = {
            REASON_ATTRIBUTE: reason or "unknown",
            FAILED_AT_ATTRIBUTE: now().isoformat(),
            DOCUMENT_ATTRIBUTE: document_id or MESSAGE_SCOPE,
        }
        self.dead_letters.send(body, attributes)
        return True

    def _hand_over(self, body: str, note: str) -> bool:
        if self.requeue is None:
            return False
        log.info("handing over to a new message: %s", note)
        self.requeue.send(body)
        return True

    # -- ledger ---------------------------------------------------------------------------------

    def _done(self, record: LedgerRecord, *, bump: bool = True, **changes: object) -> LedgerRecord:
        updates: dict[str, object] = {"updated_at": now(), "last_error": None, **changes}
        if bump:
            updates["attempts"] = record.attempts + 1
        return record.model_copy(update=updates)

    def _commit(self, owner: str, record: LedgerRecord, **changes: object) -> None:
        bump = bool(changes.pop("bump", False))
        self.ledger.commit(self._done(record, bump=bump, **changes), owner=owner)


def action_workspace(action: IngestAction) -> str:
    """The workspace from the document id (the object key); an inline document must name the same."""
    workspace = workspace_of(action.document_id)
    if action.document is not None and action.document.workspace != workspace:
        raise MalformedWorkspaceKey(
            f"{action.document_id}: the document says workspace {action.document.workspace!r}, "
            f"its id is in {workspace!r}"
        )
    return workspace
