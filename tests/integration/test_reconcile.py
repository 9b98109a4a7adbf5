"""`ragctl reconcile` and the reindex guard: bucket, ledger and index brought back in step, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.reconcile import S3Listing, find_drift, reconcile, release_leases
from pipelines.reindex import DROPPED_NOTE, Rebuilder, ShrinkRefused, reindex
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger, Status
from service.ingest.objects import S3ObjectStore
from service.ingest.queue import SqsSink
from service.ingest.service import IngestService
from service.search.admin import AliasFollowingBackend, LocalIndexAdmin
from service.search.local_catalog import LocalCatalog
from service.search.protocol import SearchBackend
from tests.factories import HashingEmbedder
from tests.ingest_fakes import Cloud, MemoryBackend, make_service, moto_cloud


def text(i: int, version: int = 1) -> bytes:
    return " ".join(f"Guide {i} version {version} paragraph {p} on reconciling." for p in range(20)).encode()


def ingest_all(cloud: Cloud, service: IngestService) -> None:
    while messages := cloud.drain():
        for message in messages:
            service.handle_message(message["Body"])


def test_reconcile_reports_each_kind_of_drift_then_repairs_it_through_the_queue(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    backend = MemoryBackend(embedder.dimension)
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    with moto_cloud() as cloud:
        # Given five documents ingested and in step
        service = make_service(cloud, backend, ledger, embedder)
        for i in range(5):
            cloud.put(f"doc-{i}.txt", text(i))
        ingest_all(cloud, service)
        listing = S3Listing(cloud.s3, cloud.bucket)
        sink = SqsSink(cloud.sqs, cloud.queue_url)
        assert find_drift(listing, ledger, backend).drift == []
        # When their events are lost in four different ways
        cloud.put("doc-0.txt", text(0, version=2))  # a new version whose event is lost
        cloud.put("doc-new.txt", text(9))  # a new document whose event is lost
        cloud.s3.delete_object(Bucket=cloud.bucket, Key="doc-1.txt")  # a delete whose event is lost
        record = ledger.get("doc-2.txt")
        assert record is not None
        backend.delete_chunks(list(record.chunk_ids))  # an index that lost a document's chunks
        cloud.drain()
        # Then a dry run names each, and changes nothing
        report = reconcile(listing, ledger, backend, sink, dry_run=True)
        assert sorted((d.document_id, d.kind) for d in report.drift) == [
            ("doc-0.txt", "stale"),
            ("doc-1.txt", "orphaned"),
            ("doc-2.txt", "unindexed"),
            ("doc-new.txt", "missing"),
        ]
        assert cloud.depth() == 0
        # And a repair puts them on the queue; once the ingester ran, nothing drifts any more
        reconcile(listing, ledger, backend, sink)
        repaired = ledger.get("doc-2.txt")
        assert repaired is not None
        assert repaired.status is Status.QUEUED
        ingest_all(cloud, service)
        assert find_drift(listing, ledger, backend).drift == []
        states = {r.document_id: r.status for r in ledger.list()}
        assert states == {
            "doc-0.txt": Status.INDEXED,
            "doc-1.txt": Status.DELETED,
            "doc-2.txt": Status.INDEXED,
            "doc-3.txt": Status.INDEXED,
            "doc-4.txt": Status.INDEXED,
            "doc-new.txt": Status.INDEXED,
        }
        assert backend.count() == sum(len(r.chunk_ids) for r in ledger.list() if r.status is Status.INDEXED)


def test_a_document_queued_by_a_dead_worker_is_retried_once_its_lease_is_released(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    backend = MemoryBackend(embedder.dimension)
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    with moto_cloud() as cloud:
        # Given a document a worker claimed and then died on, its message lost with it
        cloud.put("orphan.txt", text(1))
        cloud.drain()
        ledger.claim("orphan.txt", key=None, owner="host:4242:abc", at=0, lease_until=4e9)
        listing = S3Listing(cloud.s3, cloud.bucket)
        # Then, while the lease is held, reconcile leaves it alone (a live worker may hold it)
        assert find_drift(listing, ledger, backend, stuck_after_seconds=0).drift == []
        # When the dead worker's leases are released
        assert release_leases(ledger, lambda owner: owner.startswith("host:4242:")) == ["orphan.txt"]
        # Then it is stuck, requeued, and indexed
        report = reconcile(
            listing, ledger, backend, SqsSink(cloud.sqs, cloud.queue_url), stuck_after_seconds=0
        )
        assert [(d.document_id, d.kind) for d in report.drift] == [("orphan.txt", "stuck")]
        ingest_all(cloud, make_service(cloud, backend, ledger, embedder))
        record = ledger.get("orphan.txt")
        assert record is not None
        assert record.status is Status.INDEXED
        assert record.chunk_ids


def _local_setup(
    tmp_path: Path, cloud: Cloud
) -> tuple[SqliteLedger, LocalIndexAdmin, Rebuilder, SearchBackend]:
    embedder = HashingEmbedder()
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    live = AliasFollowingBackend(LocalCatalog(tmp_path), "chunks", embedder.dimension)
    live.ensure_index()
    objects = S3ObjectStore(cloud.s3)
    service = IngestService(Indexer(live, embedder, Chunker(200, 20)), objects, ledger, 1 << 20)
    for i in range(4):
        cloud.put(f"guide-{i}.txt", text(i))
    ingest_all(cloud, service)
    admin = LocalIndexAdmin(tmp_path, "chunks", embedder.dimension)
    rebuilder = Rebuilder(ledger, objects, lambda b: Indexer(b, embedder, Chunker(300, 30)), 1 << 20)
    return ledger, admin, rebuilder, live


def test_reindex_refuses_to_switch_to_an_index_missing_documents_the_ledger_has_indexed(
    tmp_path: Path,
) -> None:
    with moto_cloud() as cloud:
        # Given four indexed documents, and a bucket that lost two of them (as after a restart on main)
        ledger, admin, rebuilder, live = _local_setup(tmp_path, cloud)
        for i in (0, 1):
            cloud.s3.delete_object(Bucket=cloud.bucket, Key=f"guide-{i}.txt")
        cloud.drain()
        before = live.count()
        # When a reindex runs
        with pytest.raises(ShrinkRefused) as refused:
            reindex(admin, rebuilder)
        # Then it refuses with the counts, and the read alias and the ledger are unchanged
        assert (refused.value.indexed, refused.value.rebuilt) == (4, 2)
        assert refused.value.missing == ["guide-0.txt", "guide-1.txt"]
        assert "4 document(s) indexed" in str(refused.value)
        assert "--allow-shrink" in str(refused.value)
        assert admin.current_version() == "chunks-v1"
        assert live.count() == before
        assert ledger.counts() == {"indexed": 4}


def test_reindex_with_allow_shrink_never_leaves_indexed_documents_without_chunks(tmp_path: Path) -> None:
    with moto_cloud() as cloud:
        # Given four indexed documents, two of whose sources are gone
        ledger, admin, rebuilder, live = _local_setup(tmp_path, cloud)
        for i in (0, 1):
            cloud.s3.delete_object(Bucket=cloud.bucket, Key=f"guide-{i}.txt")
        cloud.drain()
        # When the shrink is allowed
        report = reindex(admin, rebuilder, allow_shrink=True)
        # Then the ledger says `indexed` only for documents with chunks in the live index
        assert report.switched
        assert report.documents == 2
        for record in ledger.list():
            held = live.chunk_ids_for_document(record.document_id)
            assert (record.status is Status.INDEXED) == bool(held), record.document_id
            if record.status is not Status.INDEXED:
                assert record.last_error == DROPPED_NOTE
        # And once a dropped document's source is back, reconcile finds it missing from the index
        # (and the one whose source is still gone, orphaned: to be deleted)
        cloud.put("guide-0.txt", text(0))
        cloud.drain()
        drift = find_drift(S3Listing(cloud.s3, cloud.bucket), ledger, live)
        assert [(d.document_id, d.kind) for d in drift.drift] == [
            ("guide-0.txt", "missing"),
            ("guide-1.txt", "orphaned"),
        ]
        # And a rollback brings the two back as indexed
        from pipelines.reindex import rollback

        rollback(admin, ledger)
        assert ledger.counts() == {"indexed": 4}
        assert all(live.chunk_ids_for_document(r.document_id) == set(r.chunk_ids) for r in ledger.list())
