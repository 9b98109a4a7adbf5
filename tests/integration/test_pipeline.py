"""Bucket -> queue -> Lambda handler -> index, on moto, with the real handler module."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.worker import EventSourceMapping, LocalLambdaContext, LocalWorker
from service.handlers import ingest as ingest_handler
from service.ingest.ledger import Status
from service.ingest.service import IngestLimits, IngestService
from service.search.protocol import SearchBackendError
from tests.factories import HashingEmbedder
from tests.ingest_fakes import FAST_RETRIES, Cloud, make_service, moto_cloud, open_local


def _sentences(n: int, tag: str = "") -> bytes:
    return " ".join(f"Sentence {i} of the {tag} handbook covers area {i % 4}." for i in range(n)).encode()


class Rig:
    def __init__(
        self, cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: IngestLimits
    ) -> None:
        self.cloud = cloud
        self.embedder = HashingEmbedder()
        self.backend, self.ledger = open_local(tmp_path, self.embedder.dimension)
        self.service: IngestService = make_service(
            cloud, self.backend, self.ledger, self.embedder, limits=limits, max_document_bytes=1 << 20
        )
        monkeypatch.setattr(ingest_handler, "ingest_service", lambda: self.service)
        mapping = EventSourceMapping(
            cloud.queue_url,
            batch_size=10,
            batching_window_seconds=0.1,
            visibility_timeout_seconds=2,
            function_timeout_seconds=1,
        )
        self.worker = LocalWorker(cloud.sqs, mapping, ingest_handler.handler)

    def run(self) -> list[set[str]]:
        """Invoke the handler until the queue is empty; the failed message ids of each batch."""
        failures = []
        stop = threading.Event()
        while self.cloud.depth():
            messages = self.worker.receive_batch(stop)
            if messages:
                failures.append(self.worker.invoke(messages))
        return failures

    def close(self) -> None:
        self.backend.close()
        self.ledger.close()


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Rig]:
    limits = getattr(request, "param", FAST_RETRIES)
    with moto_cloud(visibility_timeout=2) as cloud:
        created = Rig(cloud, tmp_path, monkeypatch, limits)
        yield created
        created.close()


def test_unchanged_reingest_embeds_nothing_and_changes_remove_every_stale_chunk(rig: Rig) -> None:
    # Given a document of more than 10 chunks, indexed
    rig.cloud.put("handbook.txt", _sentences(100))
    rig.run()
    first = rig.ledger.get("handbook.txt")
    assert first is not None
    assert first.status is Status.INDEXED
    assert len(first.chunk_ids) > 15
    assert rig.backend.chunk_ids_for_document("handbook.txt") == set(first.chunk_ids)
    # When the same bytes are uploaded again (a new S3 version)
    calls = rig.embedder.embedded_texts
    rig.cloud.put("handbook.txt", _sentences(100))
    rig.run()
    # Then no embedding call is made
    assert rig.embedder.embedded_texts == calls
    # When the document shrinks to a few chunks
    rig.cloud.put("handbook.txt", _sentences(5, "short"))
    rig.run()
    # Then every chunk it no longer has is gone, far beyond one page of 10
    second = rig.ledger.get("handbook.txt")
    assert second is not None
    assert len(second.chunk_ids) <= 3
    assert rig.backend.chunk_ids_for_document("handbook.txt") == set(second.chunk_ids)
    assert rig.backend.count() == len(second.chunk_ids)


def test_a_removed_object_removes_all_its_chunks(rig: Rig) -> None:
    rig.cloud.put("gone.txt", _sentences(40))
    rig.run()
    # When the object is deleted (moto sends no ObjectRemoved for a versioned bucket: a direct message does)
    rig.cloud.delete("gone.txt")
    rig.run()
    # Then no chunk is left and the ledger says deleted
    assert rig.backend.chunk_ids_for_document("gone.txt") == set()
    record = rig.ledger.get("gone.txt")
    assert record is not None
    assert (record.status, record.chunk_ids) == (Status.DELETED, ())


def test_an_objectremoved_event_for_an_object_that_still_exists_keeps_it(rig: Rig) -> None:
    # Given an object re-created after a delete, whose ObjectRemoved event arrives late
    rig.cloud.put("back.txt", _sentences(8))
    rig.run()
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": rig.cloud.bucket}, "object": {"key": "back.txt"}},
            }
        ]
    }
    rig.cloud.send(json.dumps(event))
    rig.run()
    # Then the document stays: the handler syncs to what S3 holds now
    record = rig.ledger.get("back.txt")
    assert record is not None
    assert record.status is Status.INDEXED
    assert rig.backend.chunk_ids_for_document("back.txt") == set(record.chunk_ids)


def test_out_of_order_s3_events_with_sequencers_never_regress(rig: Rig) -> None:
    def event(sequencer: str) -> str:
        return json.dumps(
            {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "bucket": {"name": rig.cloud.bucket},
                            "object": {"key": "seq.txt", "sequencer": sequencer},
                        },
                    }
                ]
            }
        )

    rig.cloud.put("seq.txt", _sentences(6, "new"))
    rig.cloud.drain()
    # When the newer event is applied, then an older one arrives
    rig.cloud.send(event("0062E99A88DC407460"))
    rig.run()
    applied = rig.ledger.get("seq.txt")
    rig.cloud.send(event("62E99A88DC407400"))
    rig.run()
    # Then the older one was dropped as stale: the ledger and index are untouched
    assert rig.ledger.get("seq.txt") == applied
    assert applied is not None
    assert applied.sequencer is not None
    assert applied.sequencer.endswith("62E99A88DC407460")


# The retry budget, not the invocation's deadline, ends the stuck record's retries: with a 1 s
# function timeout a loaded machine reached the deadline first, and the record was (correctly)
# handed over as a continuation instead of being reported failed.
@pytest.mark.parametrize("rig", [replace(FAST_RETRIES, retry_budget_seconds=0.3)], indirect=True)
def test_one_bad_record_never_fails_the_others(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch with good documents, a poison one and one whose writes keep failing
    rig.worker.mapping = replace(rig.worker.mapping, function_timeout_seconds=120)
    for i in range(4):
        rig.cloud.put(f"ok-{i}.txt", _sentences(5, f"ok {i}"))
    rig.cloud.put("poison.png", b"\x89PNG")
    rig.cloud.put("stuck.txt", _sentences(5, "stuck"))
    real_upsert = rig.backend.upsert

    def upsert(chunks):  # type: ignore[no-untyped-def]
        if chunks and chunks[0].chunk.document_id == "stuck.txt":
            raise SearchBackendError("503 Service Unavailable", transient=True)
        real_upsert(chunks)

    monkeypatch.setattr(rig.backend, "upsert", upsert)
    stop = threading.Event()
    messages = rig.worker.receive_batch(stop)
    assert len(messages) == 6
    # When the handler runs the batch
    failed = rig.worker.invoke(messages)
    # Then only the transiently failing record is reported failed; the poison one went to the DLQ
    stuck_id = next(m["MessageId"] for m in messages if "stuck.txt" in m["Body"])
    assert failed == {stuck_id}
    ledger = {r.document_id: r for r in rig.ledger.list()}
    assert all(ledger[f"ok-{i}.txt"].status is Status.INDEXED for i in range(4))
    assert ledger["poison.png"].status is Status.FAILED
    assert "unsupported file type" in (ledger["poison.png"].last_error or "")
    assert ledger["stuck.txt"].status is Status.QUEUED
    assert "503" in (ledger["stuck.txt"].last_error or "")
    assert [m["Body"] for m in rig.cloud.drain(rig.cloud.dlq_url)] == [
        m["Body"] for m in messages if "poison.png" in m["Body"]
    ]


@pytest.mark.parametrize("rig", [IngestLimits(max_chunks_per_message=7, reserve_seconds=0.2)], indirect=True)
def test_large_documents_are_split_across_messages(rig: Rig) -> None:
    # Given a document of ~40 chunks and a limit of 7 new chunks per message
    rig.cloud.put("large.txt", _sentences(150, "large"))
    # When the pipeline runs
    rig.run()
    # Then it was indexed completely, over several messages of at most 7 embeddings each
    record = rig.ledger.get("large.txt")
    assert record is not None
    assert record.status is Status.INDEXED
    assert len(record.chunk_ids) > 30
    assert rig.backend.chunk_ids_for_document("large.txt") == set(record.chunk_ids)
    assert rig.embedder.embedded_texts == len(record.chunk_ids)
    assert max(len(batch) for batch in rig.embedder.calls) <= 7
    assert len(rig.embedder.calls) >= len(record.chunk_ids) // 7


def test_too_little_time_left_hands_the_message_over_instead_of_failing(rig: Rig) -> None:
    # Given an invocation with almost no time left
    rig.cloud.put("late.txt", _sentences(5))
    body = rig.cloud.drain()[0]["Body"]
    rig.service.limits = IngestLimits(reserve_seconds=1.0)
    # When the handler gets the record
    rig.service.handle_message(body, remaining_ms=500)
    # Then nothing was done but the message is back on the queue, not failed
    assert rig.ledger.get("late.txt") is None
    assert [m["Body"] for m in rig.cloud.drain()] == [body]


def test_the_handler_uses_the_context_deadline(rig: Rig) -> None:
    context = LocalLambdaContext(deadline=0.0)
    assert context.get_remaining_time_in_millis() == 0
    # A context already past its deadline defers the record rather than starting it
    rig.cloud.put("deadline.txt", _sentences(3))
    record = rig.cloud.drain()[0]
    result = rig.worker.handler(
        {
            "Records": [
                {
                    "messageId": "m1",
                    "receiptHandle": "r",
                    "body": record["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": rig.worker.queue_arn,
                    "awsRegion": "us-east-1",
                }
            ]
        },
        context,
    )
    assert result == {"batchItemFailures": []}
    assert len(rig.cloud.drain()) == 1
