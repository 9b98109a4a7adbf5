"""`ragctl eval`: retrieval quality of each search mode on a BEIR-layout collection.

Builds an isolated temporary index with the platform's own chunker, embedder
and engine (never the dev index), runs every judged query through the
platform's `Retriever`, ranks documents by their best chunk (MaxP), and
computes nDCG@10, recall@10, recall@100 and MRR@10 with ir-measures. The CLI
wraps the embedder in `service.embed.cache.CachingEmbedder`, so a re-run embeds
nothing it has embedded before.

`--workspace` (issue 15): the collection is indexed into that workspace and every query goes
through the retriever with that workspace's `AccessScope`, the filter the API applies inside
the backend query, so the evaluation measures exactly what a caller of the workspace gets.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ir_measures
from ir_measures import RR, R, nDCG

from service.access import DEFAULT_WORKSPACE, AccessScope, operator_scope
from service.contract import SearchMode
from service.embed.protocol import Embedder
from service.ingest.chunking import Chunker
from service.ingest.indexer import embedding_text
from service.models import Chunk, Document, EmbeddedChunk
from service.search.fusion import DEFAULT, Fusion
from service.search.local import LocalSearchBackend
from service.search.retriever import Retriever

MEASURES = {"ndcg@10": nDCG @ 10, "recall@10": R @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
DOCS_PER_QUERY = 100
EMBED_BATCH = 256


@dataclass(frozen=True)
class Collection:
    name: str
    documents: list[Document]
    queries: dict[str, str]
    qrels: list[ir_measures.Qrel]


def _jsonl(path: Path) -> Iterable[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_beir(directory: Path, split: str = "test") -> Collection:
    """Read `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (header line, then query, doc, score)."""
    for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (directory / required).exists():
            raise FileNotFoundError(f"{directory} is not a BEIR-layout directory: {required} is missing")
    documents = [
        Document(
            document_id=str(row["_id"]),
            title=row.get("title", "") or "",
            text=row.get("text", "") or "",
            source=f"beir://{directory.name}/{row['_id']}",
        )
        for row in _jsonl(directory / "corpus.jsonl")
    ]
    qrels = []
    with (directory / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            parts = line.split()
            if len(parts) >= 3:
                qrels.append(ir_measures.Qrel(parts[0], parts[1], int(float(parts[2]))))
    judged = {q.query_id for q in qrels}
    queries = {
        str(r["_id"]): r["text"] for r in _jsonl(directory / "queries.jsonl") if str(r["_id"]) in judged
    }
    return Collection(directory.name, documents, queries, qrels)


def build_index(
    collection: Collection,
    directory: Path,
    embedder: Embedder,
    chunker: Chunker,
    workspace: str = DEFAULT_WORKSPACE,
) -> tuple[LocalSearchBackend, int]:
    """Chunk into `workspace`, embed in large batches and write; return the backend and the chunk count."""
    chunks: list[Chunk] = []
    for document in collection.documents:
        if document.text.strip() or document.title.strip():
            text = document.text if document.text.strip() else document.title
            chunks.extend(chunker.split(document.model_copy(update={"text": text, "workspace": workspace})))
    backend = LocalSearchBackend(directory, embedder.dimension)
    for start in range(0, len(chunks), EMBED_BATCH * 4):
        batch = chunks[start : start + EMBED_BATCH * 4]
        vectors = embedder.embed_documents([embedding_text(c) for c in batch])
        backend.upsert([EmbeddedChunk(chunk=c, vector=tuple(v)) for c, v in zip(batch, vectors, strict=True)])
    return backend, len(chunks)


def document_run(
    retriever: Retriever,
    queries: dict[str, str],
    mode: SearchMode,
    latencies: list[float] | None = None,
    *,
    scope: AccessScope,
) -> list[ir_measures.ScoredDoc]:
    """Rank `scope`'s documents by their best chunk; ask for extra chunks so 100 documents remain."""
    run = []
    for query_id, text in queries.items():
        started = time.perf_counter()
        hits = retriever.search(text, k=DOCS_PER_QUERY * 3, mode=mode, scope=scope).hits
        if latencies is not None:
            latencies.append((time.perf_counter() - started) * 1000)
        best: dict[str, float] = {}
        for rank, hit in enumerate(hits):
            # Scores of one list are comparable; rank breaks ties deterministically.
            best.setdefault(hit.document_id, hit.score - rank * 1e-9)
        for document_id, score in list(best.items())[:DOCS_PER_QUERY]:
            run.append(ir_measures.ScoredDoc(query_id, document_id, score))
    return run


def score(qrels: Sequence[ir_measures.Qrel], run: Sequence[ir_measures.ScoredDoc]) -> dict[str, float]:
    aggregate = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, run)
    return {name: round(float(aggregate[measure]), 4) for name, measure in MEASURES.items()}


def evaluate(
    dataset: Path,
    modes: Sequence[SearchMode],
    embedder: Embedder,
    chunker: Chunker,
    *,
    alpha: float,
    fusion: Fusion = DEFAULT,
    candidates: int = 100,
    workspace: str = DEFAULT_WORKSPACE,
) -> dict[str, object]:
    """Metrics per mode within `workspace`, plus what produced them (collection sizes, fusion,
    chunking, timings)."""
    scope = operator_scope(workspace)
    collection = load_beir(dataset)
    # Documents are ranked from the top 300 chunks, so hybrid fuses at least that deep.
    depth = max(candidates, DOCS_PER_QUERY * 3)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragctl-eval-") as tmp:
        backend, chunk_count = build_index(collection, Path(tmp), embedder, chunker, scope.workspace)
        indexed = time.perf_counter()
        retriever = Retriever(backend, embedder, alpha=alpha, candidates=depth, method=fusion)
        results: dict[str, dict[str, float]] = {}
        latency: dict[str, float] = {}
        for mode in modes:
            timings: list[float] = []
            run = document_run(retriever, collection.queries, mode, timings, scope=scope)
            results[mode.value] = score(collection.qrels, run)
            latency[mode.value] = round(statistics.median(timings), 2) if timings else 0.0
        backend.close()
    return {
        "dataset": collection.name,
        "workspace": scope.workspace,
        "documents": len(collection.documents),
        "chunks": chunk_count,
        "queries": len(collection.queries),
        "embedder": embedder.model_id,
        "chunk_size": chunker.size,
        "chunk_overlap": chunker.overlap,
        "fusion": fusion.value,
        "alpha": alpha,
        "candidates": depth,
        "index_seconds": round(indexed - started, 1),
        "query_ms_p50": latency,
        "modes": results,
    }
