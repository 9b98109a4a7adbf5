"""Zero-downtime reindex on the local engine: build, verify, switch the alias, roll back."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.reindex import Rebuilder, VerificationError, reindex, rollback
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger, Status
from service.ingest.objects import S3ObjectStore
from service.ingest.service import IngestService
from service.search.admin import AliasFollowingBackend, LocalIndexAdmin
from service.search.local_catalog import LocalCatalog
from service.search.protocol import SearchBackend
from tests.factories import DEFAULT_READER, HashingEmbedder
from tests.ingest_fakes import FAST_RETRIES, moto_cloud

ALIAS = "chunks"


def _text(i: int) -> bytes:
    return " ".join(
        f"Guide {i} paragraph {p} explains topic {p % 3} of reindexing." for p in range(30)
    ).encode()


def test_reindex_switches_the_alias_atomically_and_rolls_back(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    with moto_cloud() as cloud:
        # Given documents ingested through the alias with one chunking
        live = AliasFollowingBackend(LocalCatalog(tmp_path), ALIAS, embedder.dimension)
        live.ensure_index()
        objects = S3ObjectStore(cloud.s3)
        service = IngestService(
            Indexer(live, embedder, Chunker(200, 20)), objects, ledger, 1 << 20, limits=FAST_RETRIES
        )
        for i in range(5):
            cloud.put(f"guide-{i}.txt", _text(i))
        for message in cloud.drain():
            service.handle_message(message["Body"])
        old_count = live.count()
        hits_before = live.bm25("reindexing topic", 3, scope=DEFAULT_READER)
        assert live.version == f"{ALIAS}-v1"

        # When a reindex builds a new version with another chunking
        admin = LocalIndexAdmin(tmp_path, ALIAS, embedder.dimension)
        rebuilder = Rebuilder(
            ledger, objects, lambda backend: Indexer(backend, embedder, Chunker(400, 40)), 1 << 20
        )
        report = reindex(admin, rebuilder)

        # Then the alias moved, and the same reader object now reads the new version
        assert (report.previous, report.current, report.switched) == (f"{ALIAS}-v1", f"{ALIAS}-v2", True)
        assert report.documents == 5
        assert live.version == f"{ALIAS}-v2"
        assert 0 < live.count() < old_count
        assert live.bm25("reindexing topic", 3, scope=DEFAULT_READER)
        # And the ledger describes the index the alias reads
        for record in ledger.list(Status.INDEXED):
            assert set(record.chunk_ids) == live.chunk_ids_for_document(record.document_id)
        # And the old version is untouched, so rollback is instant
        assert rollback(admin, ledger) == f"{ALIAS}-v1"
        assert live.version == f"{ALIAS}-v1"
        assert live.count() == old_count
        assert [h.chunk_id for h in live.bm25("reindexing topic", 3, scope=DEFAULT_READER)] == [
            h.chunk_id for h in hits_before
        ]
        for record in ledger.list(Status.INDEXED):
            assert set(record.chunk_ids) == live.chunk_ids_for_document(record.document_id)
        live.close()
    ledger.close()


def test_a_reindex_that_does_not_verify_never_switches(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    with moto_cloud() as cloud:
        cloud.put("a.txt", _text(1))
        live = AliasFollowingBackend(LocalCatalog(tmp_path), ALIAS, embedder.dimension)
        objects = S3ObjectStore(cloud.s3)
        service = IngestService(
            Indexer(live, embedder, Chunker(200, 20)), objects, ledger, 1 << 20, limits=FAST_RETRIES
        )
        for message in cloud.drain():
            service.handle_message(message["Body"])

        class DroppingIndexer(Indexer):
            def index(self, document, retry=None, limits=None):  # type: ignore[no-untyped-def]
                result = super().index(document, retry, limits)
                self.backend.delete_chunks(sorted(result.chunk_ids)[:1])  # loses a chunk
                return result

        def make(backend: SearchBackend) -> Indexer:
            return DroppingIndexer(backend, embedder, Chunker(300, 30))

        admin = LocalIndexAdmin(tmp_path, ALIAS, embedder.dimension)
        # When the new version is missing a chunk
        with pytest.raises(VerificationError):
            reindex(admin, Rebuilder(ledger, objects, make, 1 << 20))
        # Then the alias still reads the old version
        assert admin.current_version() == f"{ALIAS}-v1"
        live.close()
    ledger.close()
