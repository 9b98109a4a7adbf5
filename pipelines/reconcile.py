"""`ragctl reconcile`: find and repair drift between the bucket, the ledger and the index.

The three can drift apart: a message lost with a crashed local platform, an index
restored from an older snapshot, a document deleted while the ingester was down.
Reconcile compares them per document id (the object key) and repairs through the
normal path, so the ingester's ordering and lease rules still apply:

| drift       | bucket         | ledger                         | index        | repair                      |
|-------------|----------------|--------------------------------|--------------|-----------------------------|
| missing     | object         | none, or `deleted`             | -            | enqueue an upsert           |
| stale       | object         | `indexed` from another version | -            | enqueue an upsert           |
| stuck       | object         | `queued`, no live lease, old   | -            | enqueue an upsert           |
| unindexed   | -              | `indexed`                      | wrong chunks | ledger -> `queued`, requeue |
| orphaned    | no object      | not `deleted`                  | -            | enqueue a delete            |
| leftover    | no object      | `deleted` or none              | has chunks   | enqueue a delete            |

The same code runs against the local platform (on every `ragctl dev` start) and against
a cloud stack: it only needs a bucket listing, the ledger, the search backend's
`chunk_ids_for_document` and the ingest queue.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.reindex import DROPPED_NOTE
from service.ingest.ledger import Ledger, LedgerRecord, Status, now
from service.ingest.queue import MessageSink
from service.search.protocol import SearchBackend

_ALL = 1_000_000
DEFAULT_STUCK_SECONDS = 900.0


class BucketListing(Protocol):
    bucket: str

    def current_versions(self) -> dict[str, str]:
        """Every current object's key with its version (version id, else ETag)."""
        ...


class S3Listing:
    """The bucket's current objects, from `ListObjectVersions` (delete markers hide a key)."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "") -> None:
        self._s3 = s3
        self.bucket = bucket
        self._prefix = prefix

    def current_versions(self) -> dict[str, str]:
        current: dict[str, str] = {}
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self._prefix
        )
        for page in pages:
            for version in page.get("Versions", []):
                if version.get("IsLatest") and not version["Key"].endswith("/"):
                    version_id = version.get("VersionId")
                    etag = str(version.get("ETag", "")).strip('"')
                    current[version["Key"]] = version_id if version_id and version_id != "null" else etag
        return current


@dataclass(frozen=True)
class Drift:
    document_id: str
    kind: str
    detail: str


@dataclass
class ReconcileReport:
    objects: int = 0
    ledger: int = 0
    drift: list[Drift] = field(default_factory=list)
    repaired: bool = False

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.drift:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts

    def as_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "ledger": self.ledger,
            "counts": self.counts(),
            "repaired": self.repaired,
            "drift": [item.__dict__ for item in self.drift],
        }


def upsert_message(bucket: str, key: str) -> str:
    return json.dumps({"action": "upsert", "s3_uri": f"s3://{bucket}/{key}"})


def delete_message(document_id: str) -> str:
    return json.dumps({"action": "delete", "document_id": document_id})


def _in_bucket(record: LedgerRecord, bucket: str) -> bool:
    return (record.source or "").startswith(f"s3://{bucket}/")


def _leased(record: LedgerRecord, at: float) -> bool:
    return record.lease_owner is not None and (record.lease_until or 0) > at


def find_drift(
    listing: BucketListing,
    ledger: Ledger,
    index: SearchBackend,
    *,
    stuck_after_seconds: float = DEFAULT_STUCK_SECONDS,
    clock: Callable[[], float] = time.time,
) -> ReconcileReport:
    objects = listing.current_versions()
    records = {r.document_id: r for r in ledger.list(None, _ALL)}
    report = ReconcileReport(objects=len(objects), ledger=len(records))
    at = clock()
    for key, version in sorted(objects.items()):
        drift = _object_drift(key, version, records.get(key), at, stuck_after_seconds)
        if drift is not None:
            report.drift.append(drift)
    for document_id, record in sorted(records.items()):
        drift = _record_drift(record, document_id in objects, listing.bucket, index, at)
        if drift is not None:
            report.drift.append(drift)
    return report


def _object_drift(
    key: str, version: str, record: LedgerRecord | None, at: float, stuck_after_seconds: float
) -> Drift | None:
    """An object in the bucket the ledger does not (or no longer) describe."""
    if record is None or record.status is Status.DELETED:
        return Drift(key, "missing", "in the bucket, not in the ledger")
    if record.status is Status.FAILED and record.last_error == DROPPED_NOTE:
        return Drift(key, "missing", "in the bucket, left out of the index by a reindex")
    if record.status is Status.INDEXED and record.version != version:
        return Drift(key, "stale", f"indexed version {record.version}, bucket has {version}")
    if (
        record.status is Status.QUEUED
        and not _leased(record, at)
        and at - record.updated_at.timestamp() >= stuck_after_seconds
    ):
        return Drift(key, "stuck", f"queued since {record.updated_at.isoformat()[:19]}")
    return None


def _record_drift(
    record: LedgerRecord, in_bucket: bool, bucket: str, index: SearchBackend, at: float
) -> Drift | None:
    """A ledger record the index or the bucket contradicts."""
    document_id = record.document_id
    if record.status is Status.INDEXED and not _leased(record, at):
        held = index.chunk_ids_for_document(document_id)
        if not held or held != set(record.chunk_ids):
            detail = f"ledger lists {len(record.chunk_ids)} chunks, the index holds {len(held)}"
            return Drift(document_id, "unindexed", detail)
    if _in_bucket(record, bucket) and not in_bucket and record.status is not Status.DELETED:
        return Drift(document_id, "orphaned", f"{record.status.value}, object deleted")
    if record.status is Status.DELETED and not in_bucket and index.chunk_ids_for_document(document_id):
        return Drift(document_id, "leftover", "deleted, but the index holds chunks")
    return None


def repair(report: ReconcileReport, listing: BucketListing, ledger: Ledger, queue: MessageSink) -> None:
    """Put each drifted document back on the normal path: the ingester does the rest."""
    objects = {d.document_id for d in report.drift if d.kind in ("missing", "stale", "stuck")}
    for item in report.drift:
        if item.kind == "unindexed":
            record = ledger.get(item.document_id)
            if record is not None:
                # Not `indexed` any more: the content hash must not let the ingester skip the document.
                ledger.put(
                    record.model_copy(
                        update={
                            "status": Status.QUEUED,
                            "content_hash": None,
                            "last_error": f"reconcile: {item.detail}",
                            "updated_at": now(),
                        }
                    )
                )
                if _in_bucket(record, listing.bucket):
                    objects.add(item.document_id)
                else:
                    queue.send(delete_message(item.document_id))
        elif item.kind in ("orphaned", "leftover"):
            queue.send(delete_message(item.document_id))
    for key in sorted(objects):
        queue.send(upsert_message(listing.bucket, key))
    report.repaired = True


def reconcile(
    listing: BucketListing,
    ledger: Ledger,
    index: SearchBackend,
    queue: MessageSink,
    *,
    dry_run: bool = False,
    stuck_after_seconds: float = DEFAULT_STUCK_SECONDS,
) -> ReconcileReport:
    report = find_drift(listing, ledger, index, stuck_after_seconds=stuck_after_seconds)
    if not dry_run and report.drift:
        repair(report, listing, ledger, queue)
    return report


def release_leases(ledger: Ledger, orphaned: Callable[[str], bool]) -> list[str]:
    """Expire the leases whose owner `orphaned` says is gone (a dead worker); the documents."""
    released = []
    for record in ledger.list(None, _ALL):
        if record.lease_owner is not None and orphaned(record.lease_owner):
            ledger.put(record.model_copy(update={"lease_owner": None, "lease_until": None}))
            released.append(record.document_id)
    return released


def owned_by(pids: Iterable[int], host: str | None = None) -> Callable[[str], bool]:
    """Leases taken by these processes of this host (`IngestService` owners are `host:pid:nonce`)."""
    prefixes = tuple(f"{host or socket.gethostname()}:{pid}:" for pid in pids)
    return lambda owner: owner.startswith(prefixes)


def command(
    data_dir: Path | None, *, dry_run: bool, stuck_after: float, prefix: str, as_json: bool
) -> int:  # pragma: no cover - thin CLI shim, exercised through `ragctl reconcile`
    """`ragctl reconcile`: 0 when in step (or repaired), 1 when a dry run found drift."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from pipelines.ops import ops_settings
    from service.ingest.queue import SqsSink
    from service.wiring import aws_client, build_backend, build_ledger

    settings = ops_settings(data_dir)
    console, err = Console(), Console(stderr=True)
    if not settings.document_bucket or not settings.ingest_queue_url:
        err.print(
            "[red]DOCUMENT_BUCKET and INGEST_QUEUE_URL are needed: start `make dev` or set a stack's[/]"
        )
        return 2
    backend = build_backend(settings, settings.embedding_dimension)
    report = reconcile(
        S3Listing(aws_client(settings, "s3"), settings.document_bucket, prefix),
        build_ledger(settings),
        backend,
        SqsSink(aws_client(settings, "sqs"), settings.ingest_queue_url),
        dry_run=dry_run,
        stuck_after_seconds=stuck_after,
    )
    if as_json:
        print(json.dumps(report.as_json()))
    else:
        console.print(
            f"bucket: {report.objects} objects; ledger: {report.ledger} documents; "
            + (", ".join(f"{k}: {n}" for k, n in sorted(report.counts().items())) or "no drift")
        )
        if report.drift:
            table = Table("document", "drift", "detail")
            for item in report.drift:
                table.add_row(escape(item.document_id), item.kind, escape(item.detail))
            console.print(table)
            console.print(
                "dry run: nothing changed"
                if dry_run
                else f"requeued {len(report.drift)} document(s) for repair"
            )
    return 1 if dry_run and report.drift else 0
