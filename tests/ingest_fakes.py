"""Fakes and a moto-backed harness for the ingestion tests (issue 3)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.access import AccessScope
from service.contract import ResourceNames
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger
from service.ingest.objects import S3ObjectStore
from service.ingest.queue import SqsSink
from service.ingest.service import IngestLimits, IngestService
from service.models import EmbeddedChunk, SearchFilters, SearchHit
from service.search.local import LocalSearchBackend
from service.search.protocol import SearchBackend, SearchBackendError
from tests.factories import HashingEmbedder


class MemoryBackend:
    """A dictionary that honours the `SearchBackend` write and listing contract (no ranking)."""

    def __init__(self, dimension: int = 64) -> None:
        self._dimension = dimension
        self.chunks: dict[str, EmbeddedChunk] = {}
        self.permission_updates: list[str] = []

    @property
    def dimension(self) -> int:
        return self._dimension

    def ensure_index(self) -> None:
        return None

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> None:
        self.chunks.update({c.chunk.chunk_id: c for c in chunks})

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for chunk_id in chunk_ids:
            self.chunks.pop(chunk_id, None)

    def chunk_ids_for_document(self, document_id: str) -> set[str]:
        return {k for k, c in self.chunks.items() if c.chunk.document_id == document_id}

    def update_permissions(
        self, document_id: str, allowed_users: Sequence[str], allowed_groups: Sequence[str]
    ) -> int:
        self.permission_updates.append(document_id)
        ids = self.chunk_ids_for_document(document_id)
        for chunk_id in ids:
            item = self.chunks[chunk_id]
            chunk = item.chunk.model_copy(
                update={"allowed_users": tuple(allowed_users), "allowed_groups": tuple(allowed_groups)}
            )
            self.chunks[chunk_id] = item.model_copy(update={"chunk": chunk})
        return len(ids)

    def bm25(
        self, query: str, k: int, filters: SearchFilters | None = None, *, scope: AccessScope
    ) -> list[SearchHit]:
        return []

    def knn(
        self,
        vector: Sequence[float],
        k: int,
        filters: SearchFilters | None = None,
        highlight: str = "",
        *,
        scope: AccessScope,
    ) -> list[SearchHit]:
        return []

    def count(self, scope: AccessScope | None = None) -> int:
        if scope is None:
            return len(self.chunks)
        return sum(1 for c in self.chunks.values() if c.chunk.workspace == scope.workspace)

    def ping(self) -> None:
        return None


class WorkerKilled(BaseException):
    """Raised mid-batch to simulate SIGKILL: no `except Exception` catches it."""


@dataclass
class Faults:
    """Fault plan shared by every backend instance of one test run."""

    failure_rate: float = 0.0
    kill_after_writes: int | None = None
    seed: int = 7
    writes: int = 0
    injected: int = 0
    killed: bool = False
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class FaultyBackend:
    """Wraps a backend: ~`failure_rate` of writes fail transiently (half before, half after applying)."""

    def __init__(self, inner: SearchBackend, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def _write(self, apply: Callable[[], None]) -> None:
        faults = self.faults
        faults.writes += 1
        roll = faults.rng.random()
        if roll < faults.failure_rate / 2:
            faults.injected += 1
            raise SearchBackendError("429 Too Many Requests (injected)", transient=True)
        apply()
        if (
            not faults.killed
            and faults.kill_after_writes is not None
            and faults.writes >= faults.kill_after_writes
        ):
            faults.killed = True
            raise WorkerKilled
        if roll < faults.failure_rate:
            faults.injected += 1
            raise SearchBackendError("504 Gateway Timeout after the write landed (injected)", transient=True)

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> None:
        self._write(lambda: self.inner.upsert(chunks))

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        self._write(lambda: self.inner.delete_chunks(chunk_ids))

    def chunk_ids_for_document(self, document_id: str) -> set[str]:
        return self.inner.chunk_ids_for_document(document_id)


@dataclass
class Cloud:
    """moto S3 + SQS set up as the stack sets them up."""

    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    dlq_url: str

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete(self, key: str) -> None:
        """Delete the object and enqueue the direct delete, as `ragctl docs delete` does (moto sends
        no ObjectRemoved event for a versioned bucket)."""
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        self.send(json.dumps({"action": "delete", "document_id": key}))

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def drain(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Receive and delete every visible message."""
        url = queue_url or self.queue_url
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return out
            out.extend(got)
            for message in got:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def depth(self, queue_url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@contextmanager
def moto_cloud(visibility_timeout: int = 30, max_receive_count: int = 3) -> Iterator[Cloud]:
    import boto3
    from moto import mock_aws

    from pipelines.local_aws import QueueSettings, create_resources

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        names = ResourceNames.for_stack("test")
        resources = create_resources(
            s3,
            sqs,
            names,
            QueueSettings(visibility_timeout_seconds=visibility_timeout, max_receive_count=max_receive_count),
        )
        cloud = Cloud(
            s3, sqs, resources.document_bucket, resources.ingest_queue_url, resources.dead_letter_queue_url
        )
        cloud.drain()  # the s3:TestEvent
        yield cloud


FAST_RETRIES = IngestLimits(
    max_chunks_per_message=10_000, reserve_seconds=0.2, retry_base_seconds=0.002, retry_cap_seconds=0.02
)


def make_service(
    cloud: Cloud,
    backend: SearchBackend,
    ledger: SqliteLedger,
    embedder: HashingEmbedder,
    *,
    max_document_bytes: int = 4096,
    limits: IngestLimits = FAST_RETRIES,
    chunker: Chunker | None = None,
) -> IngestService:
    indexer = Indexer(backend, embedder, chunker or Chunker(200, 20), batch_size=8, concurrency=1)
    return IngestService(
        indexer,
        S3ObjectStore(cloud.s3),
        ledger,
        max_document_bytes,
        dead_letters=SqsSink(cloud.sqs, cloud.dlq_url),
        requeue=SqsSink(cloud.sqs, cloud.queue_url),
        bucket=cloud.bucket,
        limits=limits,
    )


def open_local(path: Path, dimension: int) -> tuple[LocalSearchBackend, SqliteLedger]:
    backend = LocalSearchBackend(path / "index", dimension)
    backend.ensure_index()
    return backend, SqliteLedger(path / "ledger.sqlite")
