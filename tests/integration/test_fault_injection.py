"""Issue 3, "Must show" 6: N documents ingested under every fault at once end in the right state.

Faults, all in one run: (a) ~30% of index writes fail transiently (half of them after the
write landed), (b) every message is delivered twice and out of order, (c) the worker is
killed mid-batch and restarted (new backend, ledger and worker over the same files),
(d) poison documents are mixed in. Documents are also updated and deleted meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipelines.worker import EventSourceMapping, LocalWorker
from service.handlers import ingest as ingest_handler
from service.ingest.chunking import Chunker
from service.ingest.ledger import SqliteLedger, Status
from service.ingest.parse import parse_document
from service.ingest.queue import DOCUMENT_ATTRIBUTE, REASON_ATTRIBUTE
from service.search.local import LocalSearchBackend
from tests.factories import HashingEmbedder
from tests.ingest_fakes import (
    Cloud,
    Faults,
    FaultyBackend,
    WorkerKilled,
    make_service,
    moto_cloud,
    open_local,
)

VISIBILITY = 3
MAX_BYTES = 4096


def _text(i: int, version: int, sentences: int) -> bytes:
    words = " ".join(
        f"Document {i} version {version} sentence {s} about topic {s % 5}." for s in range(sentences)
    )
    return f"# Doc {i} v{version}\n\n{words}\n".encode()


POISON = {
    "poison/picture.png": (b"\x89PNG\r\n\x1a\n", "unsupported file type"),
    "poison/broken.pdf": (b"%PDF-1.4 this is not a pdf", "PDF"),
    "poison/huge.txt": (b"x " * (MAX_BYTES // 2 + 10), "over the 4096-byte limit"),
    "poison/latin1.txt": (b"caf\xe9 au lait", "not valid UTF-8"),
}


def _drain(cloud: Cloud, worker: LocalWorker, timeout: float = 60) -> None:
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    while cloud.depth() and time.monotonic() < deadline:
        messages = worker.receive_batch(stop)
        if messages:
            worker.invoke(messages)
    assert cloud.depth() == 0, "the ingest queue did not drain"


def _worker(
    cloud: Cloud, tmp_path: Path, faults: Faults, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> tuple[LocalWorker, LocalSearchBackend, SqliteLedger]:
    backend, ledger = open_local(tmp_path, embedder.dimension)
    service = make_service(
        cloud, FaultyBackend(backend, faults), ledger, embedder, max_document_bytes=MAX_BYTES
    )
    monkeypatch.setattr(ingest_handler, "ingest_service", lambda: service)
    mapping = EventSourceMapping(
        cloud.queue_url,
        batch_size=10,
        batching_window_seconds=0.2,
        visibility_timeout_seconds=VISIBILITY,
        function_timeout_seconds=VISIBILITY - 1,
    )
    return LocalWorker(cloud.sqs, mapping, ingest_handler.handler), backend, ledger


def _expected_chunks(cloud: Cloud, keys: list[str], chunker: Chunker) -> dict[str, set[str]]:
    expected = {}
    for key in keys:
        body = cloud.s3.get_object(Bucket=cloud.bucket, Key=key)["Body"].read()
        document = parse_document(
            body, document_id=key, source=f"s3://{cloud.bucket}/{key}", max_bytes=MAX_BYTES
        )
        expected[key] = {c.chunk_id for c in chunker.split(document)}
    return expected


def _deliver_twice_shuffled(cloud: Cloud, rng: random.Random, extra: Sequence[str] = ()) -> list[str]:
    bodies = [m["Body"] for m in cloud.drain()]
    doubled = bodies + bodies + list(extra)
    rng.shuffle(doubled)
    for body in doubled:
        cloud.send(body)
    return bodies


def _assert_dlq_holds_exactly_the_poison(cloud: Cloud) -> None:
    dead = cloud.drain(cloud.dlq_url)
    reasons = {
        m["MessageAttributes"][DOCUMENT_ATTRIBUTE]["StringValue"]: m["MessageAttributes"][REASON_ATTRIBUTE][
            "StringValue"
        ]
        for m in dead
    }
    assert len(dead) == len(POISON)
    assert set(reasons) == set(POISON)
    for key, (_, reason) in POISON.items():
        assert reason in reasons[key]


def _assert_ledger_agrees(
    ledger: SqliteLedger, backend: LocalSearchBackend, live: list[str], deleted: list[str]
) -> None:
    records = {r.document_id: r for r in ledger.list(limit=10_000)}
    assert {k for k, r in records.items() if r.status is Status.INDEXED} == set(live)
    assert {k for k, r in records.items() if r.status is Status.DELETED} == set(deleted)
    assert {k for k, r in records.items() if r.status is Status.FAILED} == set(POISON)
    for key, record in records.items():
        assert set(record.chunk_ids) == backend.chunk_ids_for_document(key), key
        assert record.lease_owner is None
    for key, (_, reason) in POISON.items():
        assert reason in (records[key].last_error or "")


def test_pipeline_converges_under_all_faults_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    embedder = HashingEmbedder()
    n = 24
    keys = [f"good/doc-{i}.md" for i in range(n)]
    with moto_cloud(visibility_timeout=VISIBILITY, max_receive_count=3) as cloud:
        # Given N good documents with poison mixed in, every message delivered twice, out of order
        for i, key in enumerate(keys):
            cloud.put(key, _text(i, 1, sentences=6 + (i % 4) * 4))
        for key, (body, _) in POISON.items():
            cloud.put(key, body)
        first_round = _deliver_twice_shuffled(cloud, rng)

        # When a worker hits ~30% transient write failures and is killed mid-batch
        faults = Faults(failure_rate=0.3, kill_after_writes=15, seed=11)
        worker, backend, ledger = _worker(cloud, tmp_path, faults, embedder, monkeypatch)
        with pytest.raises(WorkerKilled):
            _drain(cloud, worker)
        backend.close()  # the process died: its index lock and connections go with it
        ledger.close()
        # And is restarted over the same files
        worker, backend, ledger = _worker(cloud, tmp_path, faults, embedder, monkeypatch)
        _drain(cloud, worker)
        # And then documents change (growing and shrinking by more than 10 chunks) or are deleted,
        # with the new events doubled and shuffled among stale copies of the first round's
        updated = list(range(0, n, 3))
        for i in updated:
            cloud.put(keys[i], _text(i, 2, sentences=2 if i % 2 else 40))
        deleted = [keys[1], keys[5]]
        for key in deleted:
            cloud.delete(key)
        _deliver_twice_shuffled(cloud, rng, extra=rng.sample(first_round, 10))
        _drain(cloud, worker)

        # Then the index holds exactly the chunks of the latest version of every good document
        live = [k for k in keys if k not in deleted]
        expected = _expected_chunks(cloud, live, Chunker(200, 20))
        for key, chunk_ids in expected.items():
            assert backend.chunk_ids_for_document(key) == chunk_ids, key
        assert backend.count() == sum(len(ids) for ids in expected.values())
        # And the DLQ holds exactly the poison documents, once each, with their reason
        _assert_dlq_holds_exactly_the_poison(cloud)
        # And the ledger agrees with the index, document by document
        _assert_ledger_agrees(ledger, backend, live, deleted)
        # And the faults really happened
        assert faults.killed
        assert faults.injected > 0.15 * faults.writes
        backend.close()
        ledger.close()
