"""Operator tools: `ragctl docs delete`, `ragctl dlq list/redrive` and the s3:// backfill."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.backfill import enqueue, list_keys, split_uri
from pipelines.ops import delete_document, peek, redrive
from service.ingest.ledger import Status
from service.settings import Settings
from tests.factories import HashingEmbedder
from tests.ingest_fakes import make_service, moto_cloud, open_local


def test_dlq_peek_does_not_consume_and_redrive_reprocesses(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    backend, ledger = open_local(tmp_path, embedder.dimension)
    with moto_cloud() as cloud:
        # Given a document dead-lettered for being over the size limit
        service = make_service(cloud, backend, ledger, embedder, max_document_bytes=100)
        cloud.put("big.txt", b"word " * 50)
        for message in cloud.drain():
            service.handle_message(message["Body"])
        # When the DLQ is listed twice
        first = peek(cloud.sqs, cloud.dlq_url, ledger)
        second = peek(cloud.sqs, cloud.dlq_url, ledger)
        # Then listing consumed nothing, and each message carries its document and reason
        assert [m.message_id for m in first] == [m.message_id for m in second]
        assert [(m.document_id, "over the 100-byte limit" in (m.reason or "")) for m in first] == [
            ("big.txt", True)
        ]
        # When the limit is raised and the message is redriven
        service.max_document_bytes = 1 << 20
        assert redrive(cloud.sqs, ledger, cloud.dlq_url, cloud.queue_url, first) == 1
        for message in cloud.drain():
            service.handle_message(message["Body"])
        # Then the document is indexed and the DLQ is empty
        record = ledger.get("big.txt")
        assert record is not None
        assert record.status is Status.INDEXED
        assert peek(cloud.sqs, cloud.dlq_url, ledger) == []
    backend.close()
    ledger.close()


def test_docs_delete_removes_the_object_and_its_chunks(tmp_path: Path, settings: Settings) -> None:
    embedder = HashingEmbedder()
    backend, ledger = open_local(tmp_path, embedder.dimension)
    with moto_cloud() as cloud:
        service = make_service(cloud, backend, ledger, embedder)
        cloud.put("note.md", b"# Note\n\nSomething worth indexing.")
        for message in cloud.drain():
            service.handle_message(message["Body"])
        # When the operator deletes the document
        local = settings.model_copy(update={"ingest_queue_url": cloud.queue_url})
        delete_document(local, ledger, cloud.s3, cloud.sqs, "note.md")
        for message in cloud.drain():
            service.handle_message(message["Body"])
        # Then the object, its chunks and its ledger status all say deleted
        assert cloud.s3.list_objects_v2(Bucket=cloud.bucket).get("KeyCount") == 0
        assert backend.chunk_ids_for_document("note.md") == set()
        record = ledger.get("note.md")
        assert record is not None
        assert record.status is Status.DELETED
    backend.close()
    ledger.close()


def test_backfill_enqueues_one_direct_message_per_object() -> None:
    with moto_cloud() as cloud:
        for key in ("a/1.md", "a/2.txt", "b/3.md"):
            cloud.put(key, b"text")
        cloud.drain()
        bucket, prefix = split_uri(f"s3:/{cloud.bucket}/a/")  # as a shell hands a Path over
        assert enqueue(cloud.sqs, cloud.queue_url, bucket, list_keys(cloud.s3, bucket, prefix)) == 2
        bodies = sorted(json.loads(m["Body"])["s3_uri"] for m in cloud.drain())
        assert bodies == [f"s3://{cloud.bucket}/a/1.md", f"s3://{cloud.bucket}/a/2.txt"]
