"""IngestService.handle_message promises, on in-memory fakes and a real SQLite ledger (issue 16).

The message is acknowledged only when its effect is durable: indexed and recorded, or dead-lettered
with a reason. Anything else raises, so SQS redelivers it. A busy or lost lease never records an
index; a document too large for one invocation continues in a new message, never marked indexed early.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from service.access import DEFAULT_WORKSPACE
from service.ingest.chunking import Chunker
from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.ids import content_hash
from service.ingest.indexer import Indexer
from service.ingest.ledger import Claim, LedgerRecord, SqliteLedger, Status, now, order_key
from service.ingest.messages import ObjectRef
from service.ingest.objects import StoredObject
from service.ingest.queue import (
    DOCUMENT_ATTRIBUTE,
    FAILED_AT_ATTRIBUTE,
    MESSAGE_SCOPE,
    REASON_ATTRIBUTE,
    ListSink,
)
from service.ingest.service import IngestLimits, IngestService, Seams
from tests.factories import HashingEmbedder, make_document
from tests.ingest_fakes import MemoryBackend

BUCKET = "docs-bucket"
LIMITS = IngestLimits(
    max_chunks_per_message=10_000,
    reserve_seconds=1.0,
    retry_budget_seconds=2.0,
    retry_base_seconds=0.05,
    retry_cap_seconds=0.4,
)


def sentences(n: int, tag: str = "") -> str:
    return " ".join(f"Sentence {i} of the {tag} handbook covers area {i % 4}." for i in range(n))


class Time:
    """The service's clocks: wall time for leases, monotonic time for deadlines; sleeping advances both."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 100.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += seconds
        self.mono += seconds

    def seams(self) -> Seams:
        return Seams(clock=lambda: self.wall, monotonic=lambda: self.mono, sleep=self.sleep, rng=lambda: 1.0)


class Objects:
    """The bucket: each object's current version, as the S3 object store returns it."""

    def __init__(self) -> None:
        self.stored: dict[str, StoredObject] = {}
        self.limits_asked: list[int | None] = []

    def put(
        self,
        key: str,
        text: str,
        version_id: str | None = "v1",
        etag: str = '"etag-1"',
        tags: tuple[str, ...] = (),
    ) -> None:
        self.stored[key] = StoredObject(data=text.encode(), etag=etag, version_id=version_id, tags=tags)

    def head_size(self, ref: ObjectRef) -> int | None:
        found = self.stored.get(ref.key)
        return None if found is None else len(found.data)

    def get(self, ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        self.limits_asked.append(max_bytes)
        return self.stored.get(ref.key)


class Ledger(SqliteLedger):
    """The SQLite ledger, recording each claim's arguments; `on_work` runs while a worker holds a lease."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims: list[dict[str, object]] = []

    def claim(
        self,
        document_id: str,
        *,
        key: str | None,
        owner: str,
        at: float,
        lease_until: float,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> Claim:
        self.claims.append(
            {"document_id": document_id, "key": key, "owner": owner, "at": at, "until": lease_until}
        )
        return super().claim(
            document_id, key=key, owner=owner, at=at, lease_until=lease_until, workspace=workspace
        )


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.time = Time()
        self.objects = Objects()
        self.backend = MemoryBackend()
        self.embedder = HashingEmbedder(self.backend.dimension)
        self.ledger = Ledger(tmp_path / "ledger.sqlite")
        self.dlq = ListSink()
        self.requeue = ListSink()
        self.chunker = Chunker(200, 20)
        self.indexer = Indexer(self.backend, self.embedder, self.chunker, batch_size=2)

    def service(
        self,
        *,
        dlq: bool = True,
        requeue: bool = True,
        limits: IngestLimits = LIMITS,
        max_document_bytes: int = 1 << 20,
    ) -> IngestService:
        return IngestService(
            self.indexer,
            self.objects,
            self.ledger,
            max_document_bytes,
            dead_letters=self.dlq if dlq else None,
            requeue=self.requeue if requeue else None,
            limits=limits,
            seams=self.time.seams(),
            worker_id="worker-a",
        )

    def record(self, document_id: str) -> LedgerRecord:
        found = self.ledger.get(document_id)
        assert found is not None, f"no ledger record for {document_id}"
        return found


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    created = Rig(tmp_path)
    yield created
    created.ledger.close()


def s3_event(*keys: str, sequencer: str = "0A", name: str = "ObjectCreated:Put") -> str:
    records = [
        {
            "eventSource": "aws:s3",
            "eventName": name,
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "sequencer": sequencer}},
        }
        for key in keys
    ]
    return json.dumps({"Records": records})


def upsert_uri(key: str) -> str:
    return json.dumps({"action": "upsert", "s3_uri": f"s3://{BUCKET}/{key}"})


def inline(document_id: str, text: str, version: str | None = None) -> str:
    body: dict[str, object] = {
        "action": "upsert",
        "document": make_document(document_id, text).model_dump(mode="json"),
    }
    if version is not None:
        body["version"] = version
    return json.dumps(body)


# -- the happy path and what the ledger records ----------------------------------------------------


def test_an_s3_object_is_indexed_and_recorded_with_its_version_hash_and_chunks(rig: Rig) -> None:
    # Given an object in the bucket at version v7
    rig.objects.put("guide.txt", sentences(12), version_id="v7")
    # When its event is handled
    rig.service().handle_message(s3_event("guide.txt", sequencer="0B"), remaining_ms=60_000)
    # Then its chunks are in the index and the ledger says exactly what was indexed, from where
    record = rig.record("guide.txt")
    expected = {c.chunk_id for c in rig.chunker.split(make_document("guide.txt", sentences(12)))}
    assert set(rig.backend.chunk_ids_for_document("guide.txt")) == set(record.chunk_ids)
    assert len(record.chunk_ids) == len(expected) > 2
    assert record.status is Status.INDEXED
    assert record.version == "v7"
    assert record.content_hash == content_hash(sentences(12).encode())
    assert record.source == f"s3://{BUCKET}/guide.txt"
    assert record.sequencer == order_key("0B")
    assert (record.attempts, record.last_error, record.lease_owner, record.lease_until) == (
        1,
        None,
        None,
        None,
    )


def test_an_unversioned_bucket_records_the_etag_as_the_version(rig: Rig) -> None:
    # Given an object in a bucket without versioning: no version id, an ETag
    rig.objects.put("plain.txt", sentences(3), version_id=None, etag='"abc123"')
    # When handled / Then the ETag is the recorded version
    rig.service().handle_message(upsert_uri("plain.txt"), remaining_ms=60_000)
    assert rig.record("plain.txt").version == '"abc123"'


def test_inline_documents_record_their_version_or_else_their_content_hash(rig: Rig) -> None:
    # Given inline documents, one with a version and one without
    service = rig.service()
    service.handle_message(inline("with", sentences(2, "a"), version="0c"), remaining_ms=60_000)
    service.handle_message(inline("without", sentences(2, "b")), remaining_ms=60_000)
    # Then the version is the message's, else the text's content hash
    assert rig.record("with").version == "0c"
    assert rig.record("without").version == content_hash(sentences(2, "b"))
    assert rig.record("without").content_hash == content_hash(sentences(2, "b"))


def test_unchanged_content_is_not_embedded_again_but_its_new_version_is_recorded(rig: Rig) -> None:
    # Given an indexed object
    service = rig.service()
    rig.objects.put("same.txt", sentences(6), version_id="v1")
    service.handle_message(upsert_uri("same.txt"), remaining_ms=60_000)
    calls = rig.embedder.embedded_texts
    # When the same bytes are uploaded as a new version
    rig.objects.put("same.txt", sentences(6), version_id="v2")
    service.handle_message(upsert_uri("same.txt"), remaining_ms=60_000)
    # Then nothing is embedded, and the ledger moves to v2 with the same chunks
    record = rig.record("same.txt")
    assert rig.embedder.embedded_texts == calls
    assert (record.status, record.version, record.attempts) == (Status.INDEXED, "v2", 2)
    assert record.source == f"s3://{BUCKET}/same.txt"
    assert record.updated_at > record.created_at
    assert set(record.chunk_ids) == rig.backend.chunk_ids_for_document("same.txt")


def test_unchanged_inline_content_is_not_embedded_again(rig: Rig) -> None:
    # Given an indexed inline document
    service = rig.service()
    service.handle_message(inline("note", sentences(4), version="01"), remaining_ms=60_000)
    calls = rig.embedder.embedded_texts
    # When the same text comes again under a newer version
    service.handle_message(inline("note", sentences(4), version="02"), remaining_ms=60_000)
    # Then nothing is embedded and the newer version is recorded
    assert rig.embedder.embedded_texts == calls
    assert rig.record("note").version == "02"


def test_a_missing_object_and_a_direct_delete_remove_every_chunk(rig: Rig) -> None:
    # Given two indexed objects
    service = rig.service()
    for key in ("gone.txt", "deleted.txt"):
        rig.objects.put(key, sentences(8, key))
        service.handle_message(upsert_uri(key), remaining_ms=60_000)
    # When one object disappears from the bucket and the other is deleted by a direct message
    del rig.objects.stored["gone.txt"]
    service.handle_message(upsert_uri("gone.txt"), remaining_ms=60_000)
    service.handle_message(
        json.dumps({"action": "delete", "document_id": "deleted.txt"}), remaining_ms=60_000
    )
    # Then neither has a chunk left, and the ledger says deleted with no chunks and no hash
    for key in ("gone.txt", "deleted.txt"):
        record = rig.record(key)
        assert rig.backend.chunk_ids_for_document(key) == set()
        assert (record.status, record.chunk_ids, record.content_hash) == (Status.DELETED, (), None)
    assert rig.record("gone.txt").source == f"s3://{BUCKET}/gone.txt"


def test_a_stale_event_changes_nothing(rig: Rig) -> None:
    # Given an object applied at sequencer 0B
    service = rig.service()
    rig.objects.put("seq.txt", sentences(5), version_id="new")
    service.handle_message(s3_event("seq.txt", sequencer="0B"), remaining_ms=60_000)
    before = rig.record("seq.txt")
    # When an older event arrives, for what is now different content
    rig.objects.put("seq.txt", sentences(9, "other"), version_id="other")
    service.handle_message(s3_event("seq.txt", sequencer="0A"), remaining_ms=60_000)
    # Then it is dropped: the ledger and the index are untouched
    assert rig.record("seq.txt") == before
    assert rig.backend.chunk_ids_for_document("seq.txt") == set(before.chunk_ids)


# -- permanent failures: dead-lettered with a reason, or never acknowledged -------------------------


def test_a_poison_document_goes_to_the_dlq_once_with_its_reason_and_the_ledger_says_failed(rig: Rig) -> None:
    # Given an object larger than the service accepts
    rig.objects.put("huge.txt", sentences(30))
    body = upsert_uri("huge.txt")
    service = rig.service(max_document_bytes=100)
    before = now()
    # When its message is delivered twice (at-least-once delivery)
    service.handle_message(body, remaining_ms=60_000)
    service.handle_message(body, remaining_ms=60_000)
    # Then it was acknowledged (no raise) and dead-lettered once, with its reason and document
    assert len(rig.dlq.messages) == 1
    sent, attributes = rig.dlq.messages[0]
    assert sent == body
    assert set(attributes) == {REASON_ATTRIBUTE, FAILED_AT_ATTRIBUTE, DOCUMENT_ATTRIBUTE}
    assert attributes[DOCUMENT_ATTRIBUTE] == "huge.txt"
    assert before <= datetime.fromisoformat(attributes[FAILED_AT_ATTRIBUTE]) <= now()
    # And the ledger says failed, with the same reason, the message's hash, and no index change
    record = rig.record("huge.txt")
    assert record.status is Status.FAILED
    assert isinstance(attributes[REASON_ATTRIBUTE], str)
    assert record.last_error == attributes[REASON_ATTRIBUTE] != ""
    assert record.dead_letter_key == content_hash(body)
    assert (record.attempts, record.lease_owner) == (2, None)
    assert rig.backend.chunk_ids_for_document("huge.txt") == set()


def test_without_a_dlq_a_poison_document_is_never_acknowledged(rig: Rig) -> None:
    # Given no DLQ configured (the queue's redrive policy moves the message after maxReceiveCount)
    rig.objects.put("image.png", "\x89PNG not really")
    service = rig.service(dlq=False)
    # When its message is handled
    with pytest.raises(PermanentIngestError) as raised:
        service.handle_message(upsert_uri("image.png"), remaining_ms=60_000)
    # Then it raised, so the record fails and is not lost; the ledger says why, and no DLQ send is claimed
    record = rig.record("image.png")
    assert record.status is Status.FAILED
    assert isinstance(raised.value.reason, str)
    assert record.last_error == raised.value.reason != ""
    assert record.dead_letter_key is None
    assert record.lease_owner is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("this is not json", id="not-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param('{"action": "rename", "document_id": "a"}', id="unknown-action"),
        pytest.param('{"Records": [{"eventSource": "aws:s3", "s3": {}}]}', id="s3-record-without-object"),
        pytest.param('{"action": "upsert", "s3_uri": "http://not-s3/x"}', id="not-an-s3-uri"),
        pytest.param('{"action": "upsert", "document": {"title": "no id"}}', id="invalid-inline-document"),
    ],
)
def test_a_malformed_message_is_dead_lettered_with_a_reason_and_touches_nothing(rig: Rig, body: str) -> None:
    # When a malformed message is handled
    rig.service().handle_message(body, remaining_ms=60_000)
    # Then it is acknowledged and in the DLQ with a reason, scoped to the message (it names no document)
    assert len(rig.dlq.messages) == 1
    sent, attributes = rig.dlq.messages[0]
    assert sent == body
    assert attributes[REASON_ATTRIBUTE] not in ("", "unknown")
    assert attributes[DOCUMENT_ATTRIBUTE] == MESSAGE_SCOPE
    assert FAILED_AT_ATTRIBUTE in attributes
    # And nothing else happened
    assert rig.ledger.list() == []
    assert rig.embedder.embedded_texts == 0


def test_without_a_dlq_a_malformed_message_is_never_acknowledged(rig: Rig) -> None:
    # Given no DLQ / When a malformed message is handled / Then it raises (redelivered, then redriven)
    with pytest.raises(PermanentIngestError):
        rig.service(dlq=False).handle_message("{not json", remaining_ms=60_000)
    assert rig.ledger.list() == []


def test_an_s3_test_event_is_acknowledged_and_does_nothing(rig: Rig) -> None:
    rig.service().handle_message(json.dumps({"Event": "s3:TestEvent"}), remaining_ms=60_000)
    assert (rig.dlq.messages, rig.requeue.messages, rig.ledger.list()) == ([], [], [])


# -- transient failures, leases and deadlines ------------------------------------------------------


def test_a_transient_failure_is_retried_then_raised_and_recorded_as_queued(rig: Rig) -> None:
    # Given a search backend that keeps failing with 503 for one document in a batch of two
    rig.objects.put("ok.txt", sentences(3, "ok"))
    rig.objects.put("stuck.txt", sentences(3, "stuck"))
    real_upsert = rig.backend.upsert

    def upsert(chunks):  # type: ignore[no-untyped-def]
        if chunks and chunks[0].chunk.document_id == "stuck.txt":
            raise TransientIngestError("503 Service Unavailable")
        real_upsert(chunks)

    rig.backend.upsert = upsert  # type: ignore[method-assign]
    # When the two-record event is handled
    with pytest.raises(TransientIngestError, match="503"):
        rig.service().handle_message(s3_event("ok.txt", "stuck.txt"), remaining_ms=60_000)
    # Then the good document is indexed, the other is queued with the error, released, to be retried
    assert rig.record("ok.txt").status is Status.INDEXED
    stuck = rig.record("stuck.txt")
    assert stuck.status is Status.QUEUED
    assert stuck.last_error is not None
    assert stuck.last_error.startswith("retrying: ")
    assert "503" in stuck.last_error
    assert (stuck.attempts, stuck.lease_owner, stuck.chunk_ids) == (1, None, ())
    # And the retries backed off with full jitter (rng 1.0): 0.05, 0.1, 0.2, then the 0.4 s cap, within 2 s
    assert rig.time.sleeps[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4])
    assert 0 < sum(rig.time.sleeps) <= LIMITS.retry_budget_seconds


def test_a_busy_document_is_retried_then_raised_and_never_indexed(rig: Rig) -> None:
    # Given another worker holding the document's lease for the next ten minutes
    rig.ledger.claim(
        "busy.txt", key=None, owner="worker-b:1", at=rig.time.wall, lease_until=rig.time.wall + 600
    )
    rig.objects.put("busy.txt", sentences(4))
    # When this worker gets its message
    with pytest.raises(TransientIngestError, match=r"^claim: still failing .*another worker"):
        rig.service().handle_message(upsert_uri("busy.txt"), remaining_ms=60_000)
    # Then it backed off within its retry budget, embedded nothing and left the holder's lease alone
    # (0.05, 0.1, 0.2, then the 0.4 s cap while the 2 s budget lasts: 1.95 s in all)
    assert rig.time.sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4, 0.4, 0.4])
    assert rig.embedder.embedded_texts == 0
    assert rig.backend.chunk_ids_for_document("busy.txt") == set()
    record = rig.record("busy.txt")
    assert (record.status, record.lease_owner) == (Status.QUEUED, "worker-b:1")


def test_a_lease_lost_before_the_commit_raises_and_never_records_the_index(rig: Rig) -> None:
    # Given a worker whose lease is taken over while it indexes (it ran past its lease)
    rig.objects.put("slow.txt", sentences(4))
    real_embed = rig.embedder.embed_documents

    def embed_documents(texts):  # type: ignore[no-untyped-def]
        rig.ledger.claim(
            "slow.txt", key=None, owner="worker-b:1", at=rig.time.wall + 10_000, lease_until=1e12
        )
        return real_embed(texts)

    rig.embedder.embed_documents = embed_documents  # type: ignore[method-assign]
    # When it tries to commit
    with pytest.raises(TransientIngestError, match="lost the ledger lease"):
        rig.service().handle_message(upsert_uri("slow.txt"), remaining_ms=60_000)
    # Then the ledger does not say indexed: the new lease holder's record stands
    record = rig.record("slow.txt")
    assert record.status is Status.QUEUED
    assert record.lease_owner == "worker-b:1"
    assert record.chunk_ids == ()


def test_the_lease_runs_to_the_invocation_deadline(rig: Rig) -> None:
    # Given 90 s left in the invocation
    rig.objects.put("lease.txt", sentences(2))
    rig.service().handle_message(upsert_uri("lease.txt"), remaining_ms=90_000)
    # Then the lease asked for lasts until the deadline, not a fixed second, by a worker-a owner
    (claim,) = rig.ledger.claims
    assert claim["until"] == rig.time.wall + 90.0
    assert claim["at"] == rig.time.wall
    assert str(claim["owner"]).startswith("worker-a:")
    assert claim["key"] is None


def test_a_lease_is_never_shorter_than_a_second(rig: Rig) -> None:
    # Given an invocation already at its deadline, and nowhere to hand the message over
    rig.objects.put("late.txt", sentences(2))
    rig.service(requeue=False, limits=IngestLimits(reserve_seconds=0.0)).handle_message(
        upsert_uri("late.txt"), remaining_ms=0
    )
    # Then the lease still lasts one second
    (claim,) = rig.ledger.claims
    assert claim["until"] == claim["at"] + 1.0  # type: ignore[operator]


def test_without_a_deadline_the_lambda_maximum_is_assumed(rig: Rig) -> None:
    # Given no remaining time from the caller / Then the lease lasts Lambda's 15-minute maximum
    rig.objects.put("any.txt", sentences(2))
    rig.service().handle_message(upsert_uri("any.txt"))
    (claim,) = rig.ledger.claims
    assert claim["until"] == rig.time.wall + 900.0


def test_too_little_time_left_hands_the_message_over_untouched(rig: Rig) -> None:
    # Given less than twice the reserve left (2 s < 2 x 1 s is false; 1.5 s is too little)
    rig.objects.put("late.txt", sentences(2))
    body = upsert_uri("late.txt")
    rig.service().handle_message(body, remaining_ms=1_500)
    # Then the same message is back on the queue and nothing was done
    assert rig.requeue.messages == [(body, {})]
    assert (rig.ledger.list(), rig.embedder.embedded_texts) == ([], 0)
    # And with exactly twice the reserve left, the work is done here
    rig.service().handle_message(body, remaining_ms=2_000)
    assert rig.record("late.txt").status is Status.INDEXED
    assert len(rig.requeue.messages) == 1


def test_too_little_time_and_nowhere_to_hand_over_still_does_the_work(rig: Rig) -> None:
    rig.objects.put("late.txt", sentences(2))
    rig.service(requeue=False).handle_message(upsert_uri("late.txt"), remaining_ms=1_500)
    assert rig.record("late.txt").status is Status.INDEXED


# -- documents too large for one invocation: continuations ------------------------------------------

SLICED = IngestLimits(max_chunks_per_message=3, reserve_seconds=1.0, retry_budget_seconds=2.0)


def test_a_large_document_continues_in_new_messages_and_is_indexed_only_when_complete(rig: Rig) -> None:
    # Given a document of more chunks than one message may embed
    text = sentences(30)
    rig.objects.put("large.txt", text)
    service = rig.service(limits=SLICED)
    # When its message is handled
    service.handle_message(s3_event("large.txt", sequencer="0A"), remaining_ms=60_000)
    # Then one slice is written, the ledger says queued with a note, and a continuation is queued
    record = rig.record("large.txt")
    assert record.status is Status.QUEUED
    assert record.last_error is not None
    assert record.last_error.startswith("continuing: 3 chunks written")
    assert "part 1" in record.last_error
    assert record.chunk_ids == ()
    assert record.source == f"s3://{BUCKET}/large.txt"
    assert len(rig.backend.chunk_ids_for_document("large.txt")) == 3
    (continuation, attributes) = rig.requeue.messages[0]
    assert json.loads(continuation) == {
        "action": "upsert",
        "continuation": 1,
        "sequencer": "0A",
        "s3_uri": f"s3://{BUCKET}/large.txt",
    }
    assert attributes == {}
    # When the continuations are handled in turn
    while rig.requeue.messages:
        body, _ = rig.requeue.messages.pop(0)
        service.handle_message(body, remaining_ms=60_000)
    # Then the document is indexed, complete, each chunk embedded once
    record = rig.record("large.txt")
    expected = {c.chunk_id for c in rig.chunker.split(make_document("large.txt", text))}
    assert record.status is Status.INDEXED
    assert set(record.chunk_ids) == expected == rig.backend.chunk_ids_for_document("large.txt")
    assert rig.embedder.embedded_texts == len(expected)


def test_a_partial_slice_without_a_requeue_fails_the_message_and_is_not_indexed(rig: Rig) -> None:
    # Given nowhere to hand the rest of a large document over to
    rig.objects.put("large.txt", sentences(30))
    # When its message is handled
    with pytest.raises(TransientIngestError, match="continuing"):
        rig.service(requeue=False, limits=SLICED).handle_message(upsert_uri("large.txt"), remaining_ms=60_000)
    # Then the message is redelivered (raised) and the ledger says queued, never indexed
    record = rig.record("large.txt")
    assert (record.status, record.chunk_ids, record.lease_owner) == (Status.QUEUED, (), None)


def test_a_failing_hand_over_fails_the_message_and_is_not_indexed(rig: Rig) -> None:
    # Given a requeue that fails (SQS unreachable)
    class Unreachable:
        def send(self, body: str, attributes: dict[str, str] | None = None) -> None:
            raise ConnectionError("sqs unreachable")

    rig.objects.put("large.txt", sentences(30))
    service = rig.service(limits=SLICED)
    service.requeue = Unreachable()
    # When the large document's message is handled
    with pytest.raises(ConnectionError):
        service.handle_message(upsert_uri("large.txt"), remaining_ms=60_000)
    # Then the message is redelivered and the ledger never says indexed
    assert rig.record("large.txt").status is not Status.INDEXED


def test_a_continuation_of_an_inline_document_carries_the_document(rig: Rig) -> None:
    # Given a large inline document with a version
    service = rig.service(limits=SLICED)
    service.handle_message(inline("big-note", sentences(30), version="07"), remaining_ms=60_000)
    # Then its continuation carries the document itself and its version
    body = json.loads(rig.requeue.messages[0][0])
    assert (body["continuation"], body["version"], body["document"]["document_id"]) == (1, "07", "big-note")


def test_failed_at_is_a_timezone_aware_timestamp(rig: Rig) -> None:
    rig.service().handle_message("nope", remaining_ms=60_000)
    stamp = datetime.fromisoformat(rig.dlq.messages[0][1][FAILED_AT_ATTRIBUTE])
    assert stamp.utcoffset() == timedelta(0)


def test_a_worker_is_named_by_host_and_process_unless_told(rig: Rig) -> None:
    # Given a service built without a worker id (as the Lambda handler builds it)
    service = rig.service()
    service.worker_id = IngestService(rig.indexer, rig.objects, rig.ledger, 1).worker_id
    rig.objects.put("who.txt", sentences(2))
    # When it claims a document
    service.handle_message(upsert_uri("who.txt"), remaining_ms=60_000)
    # Then the lease owner names this host and process, then a per-action suffix
    (claim,) = rig.ledger.claims
    host_and_pid = f"{socket.gethostname()}:{os.getpid()}:"
    assert str(claim["owner"]).startswith(host_and_pid)
    assert len(str(claim["owner"])) == len(host_and_pid) + 12


# -- updates, reverts and retries of documents already indexed --------------------------------------


def failing_upserts(rig: Rig, document_id: str, after: int = 0) -> None:
    """The backend accepts `after` more writes of `document_id`, then fails each with a 503."""
    real_upsert = rig.backend.upsert
    allowed = [after]

    def upsert(chunks):  # type: ignore[no-untyped-def]
        if chunks and chunks[0].chunk.document_id == document_id:
            if allowed[0] <= 0:
                raise TransientIngestError("503 Service Unavailable")
            allowed[0] -= 1
        real_upsert(chunks)

    rig.backend.upsert = upsert  # type: ignore[method-assign]


def chunk_ids(rig: Rig, document_id: str, text: str) -> set[str]:
    return {c.chunk_id for c in rig.chunker.split(make_document(document_id, text))}


def test_changed_content_replaces_every_stale_chunk(rig: Rig) -> None:
    # Given an indexed object
    service = rig.service()
    rig.objects.put("doc.txt", sentences(12, "first"), version_id="v1")
    service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    # When new content is uploaded
    rig.objects.put("doc.txt", sentences(5, "second"), version_id="v2")
    service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    # Then the index and the ledger hold exactly the new version
    expected = chunk_ids(rig, "doc.txt", sentences(5, "second"))
    record = rig.record("doc.txt")
    assert rig.backend.chunk_ids_for_document("doc.txt") == set(record.chunk_ids) == expected
    assert (record.version, record.content_hash) == ("v2", content_hash(sentences(5, "second").encode()))


def test_a_failed_update_leaves_the_document_queued_with_its_last_good_chunks(rig: Rig) -> None:
    # Given an indexed object whose next version cannot be written (503s)
    service = rig.service()
    rig.objects.put("doc.txt", sentences(6, "good"), version_id="v1")
    service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    good = rig.record("doc.txt")
    failing_upserts(rig, "doc.txt")
    rig.objects.put("doc.txt", sentences(6, "new"), version_id="v2")
    # When the update is handled
    with pytest.raises(TransientIngestError):
        service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    # Then the ledger says queued (to be retried), not indexed, and keeps the good version's chunks
    record = rig.record("doc.txt")
    assert (record.status, record.chunk_ids, record.version) == (Status.QUEUED, good.chunk_ids, "v1")
    assert record.updated_at > good.updated_at


def test_a_retry_that_succeeds_clears_the_error(rig: Rig) -> None:
    # Given a document whose first attempt failed transiently
    service = rig.service()
    rig.objects.put("flaky.txt", sentences(4))
    failing_upserts(rig, "flaky.txt")
    with pytest.raises(TransientIngestError):
        service.handle_message(upsert_uri("flaky.txt"), remaining_ms=60_000)
    assert rig.record("flaky.txt").last_error
    # When the redelivered message succeeds
    rig.backend.upsert = MemoryBackend.upsert.__get__(rig.backend)  # type: ignore[method-assign]
    service.handle_message(upsert_uri("flaky.txt"), remaining_ms=60_000)
    # Then the ledger says indexed with no error left over, after two attempts
    record = rig.record("flaky.txt")
    assert (record.status, record.last_error, record.attempts) == (Status.INDEXED, None, 2)


@pytest.mark.parametrize("how", ["s3", "inline"])
def test_a_revert_after_a_half_written_update_leaves_exactly_the_reverted_version(rig: Rig, how: str) -> None:
    # Given a document indexed at v1, then a v2 whose writes failed after its first batch landed
    service = rig.service()
    first, second = sentences(10, "first"), sentences(10, "second")

    def deliver(text: str, version: str) -> None:
        if how == "s3":
            rig.objects.put("doc.txt", text, version_id=version)
            service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
        else:
            service.handle_message(inline("doc.txt", text, version=version), remaining_ms=60_000)

    deliver(first, "01")
    failing_upserts(rig, "doc.txt", after=1)
    with pytest.raises(TransientIngestError):
        deliver(second, "02")
    assert rig.backend.chunk_ids_for_document("doc.txt") - chunk_ids(rig, "doc.txt", first)
    # When v1's content comes back (a revert), and the backend works again
    rig.backend.upsert = MemoryBackend.upsert.__get__(rig.backend)  # type: ignore[method-assign]
    deliver(first, "03")
    # Then the half-written v2 chunks are gone: the index holds exactly v1's
    assert rig.backend.chunk_ids_for_document("doc.txt") == chunk_ids(rig, "doc.txt", first)
    assert rig.record("doc.txt").status is Status.INDEXED


def test_unchanged_inline_content_from_a_new_source_records_the_new_source(rig: Rig) -> None:
    service = rig.service()
    document = make_document("note", sentences(3), source="https://wiki/old")
    body = {"action": "upsert", "document": document.model_dump(mode="json")}
    service.handle_message(json.dumps(body), remaining_ms=60_000)
    moved = document.model_copy(update={"source": "https://wiki/new"})
    service.handle_message(
        json.dumps({**body, "document": moved.model_dump(mode="json")}), remaining_ms=60_000
    )
    assert rig.record("note").source == "https://wiki/new"


def test_a_large_update_of_an_indexed_document_is_queued_until_complete(rig: Rig) -> None:
    # Given an indexed document, then a much larger version that takes several messages
    service = rig.service(limits=SLICED)
    rig.objects.put("grow.txt", sentences(2, "small"), version_id="v1")
    service.handle_message(upsert_uri("grow.txt"), remaining_ms=60_000)
    assert rig.record("grow.txt").status is Status.INDEXED
    rig.objects.put("grow.txt", sentences(30, "large"), version_id="v2")
    # When the first slice is written
    service.handle_message(upsert_uri("grow.txt"), remaining_ms=60_000)
    # Then the ledger no longer says indexed, nor v2, until the last slice is
    record = rig.record("grow.txt")
    assert (record.status, record.version) == (Status.QUEUED, "v1")


def test_an_event_for_an_object_never_seen_and_already_gone_records_it_deleted(rig: Rig) -> None:
    rig.service().handle_message(upsert_uri("ghost.txt"), remaining_ms=60_000)
    record = rig.record("ghost.txt")
    assert (record.status, record.source) == (Status.DELETED, f"s3://{BUCKET}/ghost.txt")


def test_a_delete_retries_with_the_invocations_backoff(rig: Rig) -> None:
    # Given an indexed document and a backend whose deletes fail twice with a 503
    service = rig.service()
    rig.objects.put("doc.txt", sentences(4))
    service.handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    real_delete = rig.backend.delete_chunks
    failures = [2]

    def delete_chunks(ids):  # type: ignore[no-untyped-def]
        if failures[0]:
            failures[0] -= 1
            raise TransientIngestError("503")
        real_delete(ids)

    rig.backend.delete_chunks = delete_chunks  # type: ignore[method-assign]
    # When a delete is handled
    service.handle_message(json.dumps({"action": "delete", "document_id": "doc.txt"}), remaining_ms=60_000)
    # Then it backed off on the service's clock, and the chunks are gone
    assert rig.time.sleeps == pytest.approx([0.05, 0.1])
    assert rig.backend.chunk_ids_for_document("doc.txt") == set()


def test_retries_stop_before_the_invocation_deadline(rig: Rig) -> None:
    # Given a retry budget longer than the invocation's remaining 4 s (less the 1 s reserve)
    limits = IngestLimits(
        reserve_seconds=1.0, retry_budget_seconds=20.0, retry_base_seconds=0.05, retry_cap_seconds=0.4
    )
    rig.ledger.claim(
        "busy.txt", key=None, owner="worker-b:1", at=rig.time.wall, lease_until=rig.time.wall + 600
    )
    # When a busy document's message is handled
    with pytest.raises(TransientIngestError):
        rig.service(limits=limits).handle_message(upsert_uri("busy.txt"), remaining_ms=4_000)
    # Then the retries stop by the deadline less the reserve: 2.75 s of sleep, not the budget's 20
    assert rig.time.sleeps == pytest.approx([0.05, 0.1, 0.2] + [0.4] * 6)


def test_a_transient_read_failure_is_recorded_naming_the_step(rig: Rig) -> None:
    # Given an object store that times out
    def get(ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        raise TimeoutError("read timed out")

    rig.objects.get = get  # type: ignore[method-assign]
    # When a message is handled / Then it is retried later, and the ledger says which step failed
    with pytest.raises(TransientIngestError):
        rig.service().handle_message(upsert_uri("slow.txt"), remaining_ms=60_000)
    last_error = rig.record("slow.txt").last_error
    assert last_error is not None
    assert last_error.startswith("retrying: read object: still failing")


def test_the_size_limit_is_passed_to_the_store_so_an_oversized_body_is_never_read(rig: Rig) -> None:
    rig.objects.put("doc.txt", sentences(2))
    rig.service(max_document_bytes=12_345).handle_message(upsert_uri("doc.txt"), remaining_ms=60_000)
    assert rig.objects.limits_asked == [12_345]


def test_object_tags_reach_every_chunk(rig: Rig) -> None:
    rig.objects.put("tagged.txt", sentences(6), tags=("team-a", "public"))
    rig.service().handle_message(upsert_uri("tagged.txt"), remaining_ms=60_000)
    assert {c.chunk.tags for c in rig.backend.chunks.values()} == {("team-a", "public")}


def test_each_transient_failure_in_a_message_is_reported(rig: Rig) -> None:
    # Given an event of two objects whose writes both fail
    for key in ("a.txt", "b.txt"):
        rig.objects.put(key, sentences(2, key))
        failing_upserts(rig, key)
    # When handled / Then the error names both, one after the other
    with pytest.raises(TransientIngestError) as raised:
        rig.service().handle_message(s3_event("a.txt", "b.txt"), remaining_ms=60_000)
    parts = str(raised.value).split("; ")
    assert len(parts) == 2
    assert all(part.startswith("write chunks: still failing") for part in parts)


# -- failures nobody classified ---------------------------------------------------------------------


def test_an_unclassified_error_is_dead_lettered_with_its_type_and_message(rig: Rig) -> None:
    # Given an object store that fails in a way nobody classified
    def get(ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        raise ValueError("bad header")

    rig.objects.get = get  # type: ignore[method-assign]
    # When its message is handled
    rig.service().handle_message(upsert_uri("odd.txt"), remaining_ms=60_000)
    # Then it is acknowledged, in the DLQ and failed in the ledger, with the error's type and text
    (sent, attributes) = rig.dlq.messages[0]
    assert sent == upsert_uri("odd.txt")
    assert attributes[REASON_ATTRIBUTE] == "unexpected error: ValueError: bad header"
    assert attributes[DOCUMENT_ATTRIBUTE] == "odd.txt"
    record = rig.record("odd.txt")
    assert (record.status, record.last_error) == (Status.FAILED, "unexpected error: ValueError: bad header")


def test_without_a_dlq_an_unclassified_error_is_never_acknowledged(rig: Rig) -> None:
    def get(ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        raise ValueError("bad header")

    rig.objects.get = get  # type: ignore[method-assign]
    with pytest.raises(PermanentIngestError, match="ValueError: bad header"):
        rig.service(dlq=False).handle_message(upsert_uri("odd.txt"), remaining_ms=60_000)
    assert rig.record("odd.txt").status is Status.FAILED


def test_a_failure_without_a_reason_is_dead_lettered_as_unknown(rig: Rig) -> None:
    def get(ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        raise PermanentIngestError("")

    rig.objects.get = get  # type: ignore[method-assign]
    rig.service().handle_message(upsert_uri("blank.txt"), remaining_ms=60_000)
    assert rig.dlq.messages[0][1][REASON_ATTRIBUTE] == "unknown"


def test_an_object_outside_the_platforms_bucket_is_refused(rig: Rig) -> None:
    # Given a service for the platform's bucket, and an object of that name in another bucket
    rig.objects.put("guide.txt", sentences(3))
    service = IngestService(
        rig.indexer,
        rig.objects,
        rig.ledger,
        1 << 20,
        dead_letters=rig.dlq,
        bucket=BUCKET,
        seams=rig.time.seams(),
    )
    body = json.dumps({"action": "upsert", "s3_uri": "s3://someone-elses-bucket/guide.txt"})
    # When a message names it / Then it is dead-lettered, and nothing is indexed or recorded
    service.handle_message(body, remaining_ms=60_000)
    assert [sent for sent, _ in rig.dlq.messages] == [body]
    assert "someone-elses-bucket" in rig.dlq.messages[0][1][REASON_ATTRIBUTE]
    assert (rig.ledger.list(), rig.embedder.embedded_texts) == ([], 0)
    # And the same key in the platform's bucket is indexed
    service.handle_message(upsert_uri("guide.txt"), remaining_ms=60_000)
    assert rig.record("guide.txt").status is Status.INDEXED


class FailingSink(ListSink):
    """A DLQ whose first `failures` sends fail, as SQS does when unreachable or throttling."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def send(self, body: str, attributes: dict[str, str] | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("SQS unreachable")
        super().send(body, attributes)


def test_a_failed_dead_letter_send_records_the_failure_and_the_message_is_sent_on_redelivery(
    rig: Rig,
) -> None:
    # Given a poison document and a DLQ whose first send fails
    rig.objects.put("huge.txt", sentences(30))
    rig.dlq = FailingSink(failures=1)
    service = rig.service(max_document_bytes=100)
    body = upsert_uri("huge.txt")
    # When its message is handled / Then it is not acknowledged: the send error is raised
    with pytest.raises(ConnectionError, match="SQS unreachable"):
        service.handle_message(body, remaining_ms=60_000)
    # And the ledger still says failed, why, and that the message was not dead-lettered; the lease is free
    record = rig.record("huge.txt")
    assert record.status is Status.FAILED
    assert record.last_error is not None
    assert "over the 100-byte limit" in record.last_error
    assert record.last_error.endswith("(not dead-lettered: ConnectionError: SQS unreachable)")
    assert (record.dead_letter_key, record.lease_owner, record.attempts) == (None, None, 1)
    assert rig.dlq.messages == []
    # When SQS redelivers it / Then it is dead-lettered once and acknowledged, the ledger agreeing
    service.handle_message(body, remaining_ms=60_000)
    assert [sent for sent, _ in rig.dlq.messages] == [body]
    record = rig.record("huge.txt")
    assert record.dead_letter_key == content_hash(body)
    assert record.last_error == rig.dlq.messages[0][1][REASON_ATTRIBUTE]
    assert "not dead-lettered" not in record.last_error


def test_a_malformed_message_whose_dead_letter_send_fails_is_never_acknowledged(rig: Rig) -> None:
    # Given a DLQ that cannot be reached / When a malformed message is handled
    rig.dlq = FailingSink(failures=1)
    with pytest.raises(ConnectionError):
        rig.service().handle_message("this is not json", remaining_ms=60_000)
    # Then it raised (redelivered, not lost) and recorded nothing
    assert (rig.dlq.messages, rig.ledger.list()) == ([], [])
