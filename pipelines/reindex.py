"""`ragctl reindex`: build a new versioned index from the source documents, verify it, switch the alias.

1. Open a new concrete index (`<alias>-vN`) next to the one the read alias points at;
   queries keep reading the old one.
2. Index every document the ledger lists as indexed, read from its source object, with
   the current chunking, embedding model and mapping.
3. Catch up: re-sync documents the live ingester changed meanwhile (ledger `updated_at`
   after the start), until a pass finds none.
4. Verify: the new index holds exactly the expected chunk ids of every document, and
   its total count matches. Refuse to switch otherwise.
5. Switch the read alias in one atomic step (OpenSearch/Elasticsearch `_aliases`, locally
   one `os.replace` of `aliases.json`), then record the new chunk ids in the ledger.

`ragctl reindex --rollback` points the alias back at the previous version and refreshes
the ledger's chunk ids from it (documents changed since are re-synced there too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from service.ingest.errors import PermanentIngestError
from service.ingest.indexer import Indexer
from service.ingest.ledger import Ledger, LedgerRecord, Status, now
from service.ingest.messages import parse_s3_uri
from service.ingest.objects import ObjectStore
from service.ingest.parse import parse_document
from service.search.admin import IndexAdmin
from service.search.protocol import SearchBackend

log = logging.getLogger("pipelines.reindex")
_ALL = 1_000_000


class VerificationError(RuntimeError):
    """The new index does not hold what it should: the alias was not switched."""


class ShrinkRefused(RuntimeError):
    """The new index would hold fewer documents than the ledger has indexed: the alias was not switched."""

    def __init__(self, indexed: int, rebuilt: int, missing: list[str]) -> None:
        super().__init__(
            f"refusing to switch: the ledger has {indexed} document(s) indexed, but only {rebuilt} could be "
            f"rebuilt from their source ({len(missing)} missing, e.g. {', '.join(missing[:5])}); "
            "restore the sources (`ragctl reconcile --dry-run` shows the drift) or pass --allow-shrink"
        )
        self.indexed = indexed
        self.rebuilt = rebuilt
        self.missing = missing


@dataclass
class ReindexReport:
    previous: str | None
    current: str
    documents: int = 0
    chunks: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    switched: bool = False


class Rebuilder:
    def __init__(
        self,
        ledger: Ledger,
        objects: ObjectStore,
        make_indexer: Callable[[SearchBackend], Indexer],
        max_document_bytes: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.objects = objects
        self.make_indexer = make_indexer
        self.max_document_bytes = max_document_bytes
        self.progress = progress or (lambda done, total: None)

    def _sync(self, indexer: Indexer, record: LedgerRecord) -> tuple[str, ...] | None:
        """Index the record's current source into the target; None if it has none (deleted or unreadable)."""
        if record.status is not Status.INDEXED or not record.source or not record.source.startswith("s3://"):
            indexer.delete(record.document_id)
            return None
        ref = parse_s3_uri(record.source)
        stored = self.objects.get(ref, self.max_document_bytes)
        if stored is None:
            indexer.delete(record.document_id)
            return None
        document = parse_document(
            stored.data,
            document_id=record.document_id,
            source=record.source,
            max_bytes=self.max_document_bytes,
            tags=stored.tags,
            workspace=record.workspace,
            allowed_users=stored.allowed_users,
            allowed_groups=stored.allowed_groups,
        )
        return indexer.index(document).chunk_ids

    def _pass(
        self,
        indexer: Indexer,
        records: list[LedgerRecord],
        report: ReindexReport,
        expected: dict[str, tuple[str, ...]],
    ) -> None:
        for done, record in enumerate(records, 1):
            try:
                ids = self._sync(indexer, record)
            except PermanentIngestError as error:
                report.skipped[record.document_id] = error.reason
                ids = None
            if ids is None:
                expected.pop(record.document_id, None)
            else:
                expected[record.document_id] = ids
            self.progress(done, len(records))

    def build(self, target: SearchBackend, report: ReindexReport) -> dict[str, tuple[str, ...]]:
        indexer = self.make_indexer(target)
        started = now()
        records = self.ledger.list(Status.INDEXED, _ALL)
        skipped = [r for r in records if not (r.source or "").startswith("s3://")]
        for record in skipped:
            report.skipped[record.document_id] = "no source object to rebuild from (inline document)"
        expected: dict[str, tuple[str, ...]] = {}
        self._pass(indexer, [r for r in records if r not in skipped], report, expected)
        for _ in range(5):  # catch up with the live ingester
            changed = changed_since(self.ledger, started)
            if not changed:
                break
            started = now()
            self._pass(indexer, changed, report, expected)
        return expected


def changed_since(ledger: Ledger, since: datetime) -> list[LedgerRecord]:
    return [r for r in ledger.list(None, _ALL) if r.updated_at > since]


def verify(target: SearchBackend, expected: dict[str, tuple[str, ...]]) -> int:
    wrong = [d for d, ids in expected.items() if target.chunk_ids_for_document(d) != set(ids)]
    if wrong:
        raise VerificationError(f"{len(wrong)} document(s) do not match in the new index, e.g. {wrong[:3]}")
    total = sum(len(ids) for ids in expected.values())
    if target.count() != total:
        raise VerificationError(f"the new index holds {target.count()} chunks, expected {total}")
    return total


# The ledger's note on a document the switched-to index does not hold; rollback clears it.
DROPPED_NOTE = "reindex: not in the index the read alias points at"


def record_chunk_ids(ledger: Ledger, backend: SearchBackend) -> None:
    """Make the ledger describe the index the alias now reads.

    A document the index holds no chunk of is not `indexed` there: it becomes `failed` with
    a note (and is brought back by a rollback to an index that holds it).
    """
    for record in ledger.list(None, _ALL):
        ids = tuple(sorted(backend.chunk_ids_for_document(record.document_id)))
        if record.status is Status.INDEXED and not ids:
            ledger.put(
                record.model_copy(
                    update={
                        "status": Status.FAILED,
                        "chunk_ids": (),
                        "last_error": DROPPED_NOTE,
                        "updated_at": now(),
                    }
                )
            )
        elif record.status is Status.FAILED and record.last_error == DROPPED_NOTE and ids:
            ledger.put(
                record.model_copy(
                    update={
                        "status": Status.INDEXED,
                        "chunk_ids": ids,
                        "last_error": None,
                        "updated_at": now(),
                    }
                )
            )
        elif record.status is Status.INDEXED and set(ids) != set(record.chunk_ids):
            ledger.put(record.model_copy(update={"chunk_ids": ids}))


def reindex(admin: IndexAdmin, rebuilder: Rebuilder, *, allow_shrink: bool = False) -> ReindexReport:
    name = admin.new_version_name()
    report = ReindexReport(previous=admin.current_version(), current=name)
    indexed = [r.document_id for r in rebuilder.ledger.list(Status.INDEXED, _ALL)]
    target = admin.open_version(name)
    target.ensure_index()
    try:
        expected = rebuilder.build(target, report)
        report.documents = len(expected)
        report.chunks = verify(target, expected)
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()  # release the local writer lock before the live ingester takes over
    missing = sorted(set(indexed) - set(expected))
    if missing and not allow_shrink:
        raise ShrinkRefused(len(indexed), len(set(indexed) & set(expected)), missing)
    admin.switch(name)
    report.switched = True
    record_chunk_ids(rebuilder.ledger, admin.open_version(name))
    return report


def rollback(admin: IndexAdmin, ledger: Ledger) -> str:
    """Point the alias back at the previous version; the ledger follows it.

    Documents changed while the newer version was live are in that version only:
    backfill them with `ragctl ingest s3://bucket/prefix` (unchanged ones cost no embedding).
    """
    name = admin.rollback()
    record_chunk_ids(ledger, admin.open_version(name))
    return name


def command(
    rollback_: bool = False,
    data_dir: Path | None = None,
    as_json: bool = False,
    *,
    allow_shrink: bool = False,
) -> None:  # pragma: no cover - thin CLI shim, exercised through `ragctl reindex`
    import json
    import sys

    from pipelines.ops import ops_settings
    from service.ingest.chunking import Chunker
    from service.wiring import Container, build_index_admin

    settings = ops_settings(data_dir)
    container = Container(settings)
    admin = build_index_admin(settings, container.embedder.dimension)
    if rollback_:
        name = rollback(admin, container.ledger)
        print(json.dumps({"current": name}) if as_json else f"read alias {admin.alias} -> {name}")
        return
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    rebuilder = Rebuilder(
        container.ledger,
        container.objects,
        lambda backend: Indexer(
            backend, container.embedder, chunker, batch_size=settings.embedding_batch_size
        ),
        settings.max_document_bytes,
    )
    try:
        report = reindex(admin, rebuilder, allow_shrink=allow_shrink)
    except ShrinkRefused as error:
        if as_json:
            print(
                json.dumps(
                    {
                        "switched": False,
                        "indexed": error.indexed,
                        "rebuilt": error.rebuilt,
                        "missing": error.missing,
                    }
                )
            )
        print(str(error), file=sys.stderr)
        raise SystemExit(3) from None
    except VerificationError as error:
        print(f"refusing to switch: {error}", file=sys.stderr)
        raise SystemExit(3) from None
    if as_json:
        print(json.dumps(report.__dict__))
    else:
        print(
            f"read alias {admin.alias}: {report.previous} -> {report.current} "
            f"({report.documents} documents, {report.chunks} chunks, {len(report.skipped)} skipped)"
        )
