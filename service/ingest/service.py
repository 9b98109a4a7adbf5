"""Apply queue messages to the index and keep the ledger in step.

`IngestService.handle_message` is what the Lambda ingester and the local
worker run for each SQS record. It raises on failure so the batch processor
reports the record as failed; permanent failures are recorded in the ledger
with their reason before they go to the DLQ.
"""

from __future__ import annotations

from service.ingest.errors import PermanentIngestError
from service.ingest.indexer import Indexer
from service.ingest.ledger import Ledger, LedgerRecord, Status, now
from service.ingest.messages import IngestAction, parse_message
from service.ingest.objects import ObjectStore
from service.ingest.parse import parse_document
from service.models import Document


class IngestService:
    def __init__(
        self, indexer: Indexer, objects: ObjectStore, ledger: Ledger, max_document_bytes: int
    ) -> None:
        self.indexer = indexer
        self.objects = objects
        self.ledger = ledger
        self.max_document_bytes = max_document_bytes

    def handle_message(self, body: str) -> None:
        for action in parse_message(body):
            self.apply(action)

    def apply(self, action: IngestAction) -> None:
        try:
            if action.kind == "delete":
                self._delete(action)
            else:
                self._upsert(action)
        except PermanentIngestError as error:
            self._record(action, status=Status.FAILED, last_error=error.reason)
            raise

    def _load(self, action: IngestAction) -> tuple[Document | None, str | None]:
        if action.document is not None:
            return action.document, None
        assert action.object is not None
        size = action.object.size
        if size is not None and size > self.max_document_bytes:
            raise PermanentIngestError(
                f"{action.object.key}: {size} bytes is over the {self.max_document_bytes}-byte limit"
            )
        stored = self.objects.get(action.object)
        if stored is None:
            return None, None
        document = parse_document(
            stored.data,
            document_id=action.document_id,
            source=action.object.uri,
            max_bytes=self.max_document_bytes,
            tags=stored.tags,
        )
        return document, stored.version_id or stored.etag

    def _upsert(self, action: IngestAction) -> None:
        document, version = self._load(action)
        if document is None:
            # The object was deleted after this event was sent; its removal event will follow.
            return
        result = self.indexer.index(document)
        self._record(
            action,
            status=Status.INDEXED,
            source=document.source,
            version=version,
            chunk_ids=result.chunk_ids,
        )

    def _delete(self, action: IngestAction) -> None:
        self.indexer.delete(action.document_id)
        self._record(action, status=Status.DELETED, chunk_ids=())

    def _record(self, action: IngestAction, **changes: object) -> None:
        previous = self.ledger.get(action.document_id)
        stamp = now()
        base = previous or LedgerRecord(
            document_id=action.document_id, status=Status.QUEUED, created_at=stamp, updated_at=stamp
        )
        updates = {"updated_at": stamp, "attempts": base.attempts + 1, "last_error": None, **changes}
        if action.object is not None:
            updates.setdefault("source", action.object.uri)
            updates.setdefault("sequencer", action.object.sequencer)
        self.ledger.put(base.model_copy(update=updates))
