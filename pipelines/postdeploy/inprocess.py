"""The gate against an in-process platform: how its baseline is recorded, and how tests run it.

`python -m pipelines.postdeploy.inprocess` indexes the golden set's repository documents and its
evaluation corpus with the local platform's defaults (its chunker, the bundled MiniLM embedder,
the embedded engine) in a temporary directory, runs the gate through the real API app, and
prints the figures: the `baseline` of the golden-set file is that output. `--shuffle` first
gives every document another document's text, the retrieval equivalent of a scrambled index:
the gate must go red.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from pipelines.postdeploy import gate
from pipelines.postdeploy.client import ApiClient
from service.api.app import create_app
from service.ingest.indexer import embedding_text
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status
from service.ingest.parse import parse_document
from service.models import Document, EmbeddedChunk
from service.settings import Settings
from service.wiring import Container

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "gate-inprocess-key"
_MAX_BYTES = 10 * 1024 * 1024


def golden_documents(golden: gate.GoldenSet, root: Path = REPO_ROOT) -> list[Document]:
    """The repository files the golden set seeds, then its generated corpus, as parsed documents."""
    texts = [(key, (root / key).read_bytes()) for key in golden.seed]
    if golden.corpus is not None:
        texts += [(d.key, d.text.encode()) for d in golden.corpus.documents]
    return [parse_document(body, document_id=key, source=key, max_bytes=_MAX_BYTES) for key, body in texts]


def shuffled(documents: Sequence[Document], seed: int = 1) -> list[Document]:
    """Each document id with another document's title and text (a derangement-like permutation)."""
    bodies = [(d.title, d.text) for d in documents]
    random.Random(seed).shuffle(bodies)
    return [d.model_copy(update={"title": t, "text": x}) for d, (t, x) in zip(documents, bodies, strict=True)]


def index_documents(container: Container, documents: Sequence[Document]) -> None:
    """Index in one batch and record each as indexed, as the ingestion worker would."""
    chunks = {d.document_id: container.indexer.chunker.split(d) for d in documents}
    flat = [chunk for split in chunks.values() for chunk in split]
    container.backend.delete_chunks(
        [cid for d in documents for cid in container.backend.chunk_ids_for_document(d.document_id)]
    )
    vectors = container.embedder.embed_documents([embedding_text(c) for c in flat])
    container.backend.upsert(
        [EmbeddedChunk(chunk=c, vector=tuple(v)) for c, v in zip(flat, vectors, strict=True)]
    )
    now = datetime.now(UTC)
    for document in documents:
        container.ledger.put(
            LedgerRecord(
                document_id=document.document_id,
                status=Status.INDEXED,
                source=document.source,
                chunk_ids=tuple(c.chunk_id for c in chunks[document.document_id]),
                created_at=now,
                updated_at=now,
            )
        )


def api_client(container: Container, key: str = KEY) -> ApiClient:
    """An `ApiClient` whose requests go to the real app, in-process."""
    test_client = TestClient(create_app(container))

    def handle(request: httpx.Request) -> httpx.Response:
        reply = test_client.request(
            request.method,
            request.url.path,
            params=request.url.params,
            content=request.content,
            headers=dict(request.headers),
        )
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    return ApiClient("http://inprocess", key, transport=httpx.MockTransport(handle))


@contextmanager
def platform(directory: Path, settings: Settings | None = None, **fakes: object) -> Iterator[Container]:
    """A container on `directory` with the local defaults (or `settings`), and any fakes given."""
    settings = settings or Settings(data_dir=directory / "data", api_keys=KEY, rate_limit_per_minute=100_000)
    fakes.setdefault("ledger", SqliteLedger(directory / "ledger.sqlite"))
    container = Container(settings, **fakes)
    try:
        yield container
    finally:
        close = getattr(container.backend, "close", None)
        if close is not None:
            close()


def measure(golden: gate.GoldenSet, shuffle: bool = False) -> gate.GateResult:
    with tempfile.TemporaryDirectory(prefix="gate-baseline-") as tmp, platform(Path(tmp)) as container:
        documents = golden_documents(golden)
        index_documents(container, shuffled(documents) if shuffle else documents)
        return gate.run_gate(golden, api_client(container))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--golden", type=Path, default=Path(__file__).parent / "golden" / "platform-docs.json"
    )
    parser.add_argument("--shuffle", action="store_true", help="scramble the index first")
    args = parser.parse_args(argv)
    result = measure(gate.load_golden(args.golden), args.shuffle)
    for check in result.checks:
        print(f"[{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    print(json.dumps({"figures": result.figures}, indent=2, sort_keys=True))
    return 0 if all(c.ok for c in result.checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
