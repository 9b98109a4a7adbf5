"""Poison inputs end in the DLQ with their document (or `(message)`) and a reason, and a
message never marks a document it does not name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.ingest.ledger import SqliteLedger, Status
from service.ingest.queue import DOCUMENT_ATTRIBUTE, MESSAGE_SCOPE, REASON_ATTRIBUTE
from service.ingest.service import IngestService
from service.search.local import LocalSearchBackend
from tests.factories import HashingEmbedder, make_pdf
from tests.ingest_fakes import Cloud, make_service, moto_cloud, open_local


class Pipeline:
    def __init__(self, cloud: Cloud, tmp_path: Path) -> None:
        self.cloud = cloud
        self.backend: LocalSearchBackend
        self.ledger: SqliteLedger
        self.backend, self.ledger = open_local(tmp_path, HashingEmbedder().dimension)
        self.service: IngestService = make_service(
            cloud, self.backend, self.ledger, HashingEmbedder(), max_document_bytes=1 << 20
        )

    def deliver_all(self) -> None:
        for message in self.cloud.drain():
            self.service.handle_message(message["Body"], remaining_ms=60_000)

    def dead_letters(self) -> list[tuple[str, str, str]]:
        def attribute(message: dict[str, Any], name: str) -> str:
            return str(message.get("MessageAttributes", {}).get(name, {}).get("StringValue", ""))

        return [
            (m["Body"], attribute(m, DOCUMENT_ATTRIBUTE), attribute(m, REASON_ATTRIBUTE))
            for m in self.cloud.drain(self.cloud.dlq_url)
        ]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    with moto_cloud() as cloud:
        created = Pipeline(cloud, tmp_path)
        yield created
        created.backend.close()
        created.ledger.close()


@pytest.mark.parametrize("stream_filter", ["JBIG2Decode", "NoSuchFilter"])
def test_an_undecodable_pdf_is_dead_lettered_with_its_document_and_reason(
    pipeline: Pipeline, stream_filter: str
) -> None:
    # Given a PDF pypdf cannot decode, uploaded to the bucket
    pipeline.cloud.put("scans/page.pdf", make_pdf("hello", stream_filter=stream_filter))
    # When its event is delivered
    pipeline.deliver_all()
    # Then the ledger says failed with the reason, and the DLQ entry names the document and the reason
    record = pipeline.ledger.get("scans/page.pdf")
    assert record is not None
    assert record.status is Status.FAILED
    assert "unreadable PDF" in (record.last_error or "")
    [(_, document, reason)] = pipeline.dead_letters()
    assert document == "scans/page.pdf"
    assert "unreadable PDF" in reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "upsert", "s3_uri": "s3://{bucket}/a.md", "continuation": "abc"}, "continuation"),
        ({"Records": "notalist"}, "Records must be a list"),
    ],
)
def test_a_malformed_message_is_dead_lettered_as_a_message_with_its_reason(
    pipeline: Pipeline, payload: dict[str, Any], reason: str
) -> None:
    body = json.dumps(payload).replace("{bucket}", pipeline.cloud.bucket)
    pipeline.cloud.send(body)
    pipeline.deliver_all()
    [(sent, document, said)] = pipeline.dead_letters()
    assert sent == body
    assert document == MESSAGE_SCOPE
    assert reason in said


def test_a_message_for_another_bucket_never_touches_the_document_of_the_same_key(pipeline: Pipeline) -> None:
    # Given x.md indexed from this platform's bucket
    pipeline.cloud.put("x.md", b"# X\n\nThe real document about rotation.")
    pipeline.deliver_all()
    before = pipeline.ledger.get("x.md")
    assert before is not None
    assert before.status is Status.INDEXED
    # When a message arrives for s3://no-such-bucket/x.md
    pipeline.cloud.send(json.dumps({"action": "upsert", "s3_uri": "s3://no-such-bucket/x.md"}))
    pipeline.deliver_all()
    # Then x.md is untouched, and the DLQ holds the message, naming the foreign bucket
    assert pipeline.ledger.get("x.md") == before
    [(_, document, reason)] = pipeline.dead_letters()
    assert document == MESSAGE_SCOPE
    assert "no-such-bucket" in reason


def test_an_unclassified_error_is_dead_lettered_with_its_type_not_left_to_the_redrive(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a backend that raises an error nobody classified as transient or permanent
    def broken(chunks: object) -> None:
        raise ValueError("mapping rejected field 'foo'")

    monkeypatch.setattr(pipeline.backend, "upsert", broken)
    pipeline.cloud.put("doc.md", b"# Doc\n\nSome text to index.")
    # When its event is delivered, then nothing raises: the message is dead-lettered with the cause
    pipeline.deliver_all()
    [(_, document, reason)] = pipeline.dead_letters()
    assert document == "doc.md"
    assert reason.startswith("unexpected error: ValueError: mapping rejected field 'foo'")
    record = pipeline.ledger.get("doc.md")
    assert record is not None
    assert record.status is Status.FAILED


def test_a_text_file_of_nul_bytes_is_not_indexed(pipeline: Pipeline) -> None:
    pipeline.cloud.put("zeros.txt", b"\x00" * 6000)
    pipeline.deliver_all()
    assert pipeline.backend.chunk_ids_for_document("zeros.txt") == set()
    [(_, document, reason)] = pipeline.dead_letters()
    assert document == "zeros.txt"
    assert "binary content" in reason
