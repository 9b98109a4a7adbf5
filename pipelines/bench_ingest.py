"""`ragctl bench ingest`: the whole ingestion pipeline against the bare embedder, on the same chunks.

The pipeline run is end to end, queue included: objects are put in the bucket (moto,
in-process), S3 sends its events to the ingest queue, and the local worker (the event
source mapping emulation) calls the Lambda handler until the ledger shows every
document indexed. The bare run embeds the very same chunk texts with the same embedder
and batch size, nothing else. The embedder is the physical limit, so
`ratio = pipeline / bare` says how much the rest (S3, SQS, parsing, chunking, index
and ledger writes) costs; the target is at least 0.9 with the local defaults.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from service.contract import ResourceNames
from service.embed.protocol import Embedder
from service.ingest.indexer import embedding_text
from service.settings import Settings

_WORDS = (
    "index",
    "alias",
    "queue",
    "ledger",
    "chunk",
    "vector",
    "query",
    "answer",
    "deploy",
    "stack",
    "bucket",
    "lambda",
    "worker",
    "batch",
    "retry",
    "backoff",
    "jitter",
    "embedding",
    "model",
    "latency",
    "throughput",
    "shard",
    "replica",
    "mapping",
    "version",
    "sequence",
    "event",
)


def corpus(documents: int, paragraphs: int) -> dict[str, bytes]:
    """Deterministic Markdown documents of `paragraphs` paragraphs of about 900 characters."""
    out: dict[str, bytes] = {}
    for d in range(documents):
        parts = [f"# Bench document {d}\n"]
        for p in range(paragraphs):
            words = [_WORDS[(d * 7 + p * 13 + w * 3) % len(_WORDS)] for w in range(120)]
            parts.append(f"## Section {p}\n\n{' '.join(words).capitalize()}.\n")
        out[f"bench/doc-{d:04d}.md"] = "\n".join(parts).encode()
    return out


def _bare(embedder: Embedder, texts: list[str], batch_size: int, concurrency: int) -> float:
    """The embedder alone, batched and concurrent exactly as the indexer calls it."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(embedder.embed_documents, batches):
            pass
    return time.perf_counter() - started


def _pipeline(
    settings: Settings, embedder: Embedder, docs: dict[str, bytes], data_dir: Path
) -> tuple[float, int]:
    import boto3
    from moto import mock_aws

    from pipelines.local_aws import QueueSettings, create_resources
    from pipelines.worker import EventSourceMapping, LocalWorker
    from service import runtime
    from service.handlers.ingest import handler
    from service.ingest.ledger import Status
    from service.wiring import Container

    with mock_aws():
        s3 = boto3.client("s3", region_name=settings.aws_region)
        sqs = boto3.client("sqs", region_name=settings.aws_region)
        resources = create_resources(s3, sqs, ResourceNames.for_stack("bench"), QueueSettings())
        sqs.purge_queue(QueueUrl=resources.ingest_queue_url)  # the s3:TestEvent
        local = settings.model_copy(
            update={
                "data_dir": data_dir,
                "ingest_queue_url": resources.ingest_queue_url,
                "dead_letter_queue_url": resources.dead_letter_queue_url,
            }
        )
        container = Container(local, embedder=embedder)
        runtime.install(container)
        try:
            worker = LocalWorker(sqs, EventSourceMapping(resources.ingest_queue_url), handler)
            stop = threading.Event()
            started = time.perf_counter()
            for key, body in docs.items():
                s3.put_object(Bucket=resources.document_bucket, Key=key, Body=body)
            ledger = container.ledger
            while ledger.counts().get(Status.INDEXED.value, 0) + ledger.counts().get(
                Status.FAILED.value, 0
            ) < len(docs):
                messages = worker.receive_batch(stop)
                if messages:
                    worker.invoke(messages)
            elapsed = time.perf_counter() - started
            failed = ledger.counts().get(Status.FAILED.value, 0)
            if failed:
                raise RuntimeError(
                    f"{failed} bench document(s) failed: {ledger.list(Status.FAILED)[0].last_error}"
                )
            return elapsed, container.backend.count()
        finally:
            runtime.install(None)


def run(settings: Settings, embedder: Embedder, documents: int, paragraphs: int) -> dict[str, Any]:
    from service.ingest.chunking import Chunker
    from service.ingest.parse import parse_document

    docs = corpus(documents, paragraphs)
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    texts = [
        embedding_text(chunk)
        for key, body in docs.items()
        for chunk in chunker.split(
            parse_document(body, document_id=key, source=key, max_bytes=settings.max_document_bytes)
        )
    ]
    embedder.embed_documents(texts[: settings.embedding_batch_size])  # load the model before timing
    batch, concurrency = settings.embedding_batch_size, settings.embedding_concurrency
    # The bare embedder runs before and after the pipeline; the faster run counts, so noise
    # from other load on the machine can only make the ratio look worse, never better.
    bare_runs = [_bare(embedder, texts, batch, concurrency)]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        pipeline_seconds, indexed = _pipeline(settings, embedder, docs, Path(tmp))
    bare_runs.append(_bare(embedder, texts, batch, concurrency))
    bare_seconds = min(bare_runs)
    if indexed != len(texts):
        raise RuntimeError(f"the pipeline indexed {indexed} chunks, expected {len(texts)}")
    pipeline_cps = len(texts) / pipeline_seconds
    bare_cps = len(texts) / bare_seconds
    return {
        "documents": documents,
        "chunks": len(texts),
        "embedder": embedder.model_id,
        "embedding_batch_size": settings.embedding_batch_size,
        "embedding_concurrency": settings.embedding_concurrency,
        "pipeline_seconds": round(pipeline_seconds, 2),
        "embedder_seconds": round(bare_seconds, 2),
        "embedder_runs_seconds": [round(r, 2) for r in bare_runs],
        "pipeline_chunks_per_second": round(pipeline_cps, 2),
        "embedder_chunks_per_second": round(bare_cps, 2),
        "ratio": round(pipeline_cps / bare_cps, 3),
        "target_ratio": 0.9,
    }
