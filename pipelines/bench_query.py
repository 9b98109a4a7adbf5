"""`ragctl bench query`: search and answer latency on the local engine, in-process and over HTTP.

For each index size it synthesises the chunks straight into a temporary `LocalSearchBackend`:
realistic text (Zipf-distributed words from a documentation vocabulary, about 900 characters a
chunk, like the splitter's 1,000-character chunks) with synthetic unit vectors shaped like
MiniLM embeddings of real text (`pipelines.bench_vectors`: the mean and principal axes of real
embeddings, not uniform or isotropic noise, which no corpus resembles). Embedding 1M passages
with MiniLM would take days on two cores. Queries are embedded by the real local MiniLM model,
as in production.

It then times, with the same questions in the same order:
- `Retriever.search` (hybrid, top 10) and `QueryService.answer` (extractive) in-process, with
  the search's stages (BM25, query embedding, k-NN) timed apart;
- `POST /v1/search` and `POST /v1/query` against the real app under uvicorn on 127.0.0.1,
  through one keep-alive httpx client.
The HTTP overhead is the difference of the p50s, as a percentage of the in-process p50.

Each size also reports the build time and the peak resident memory of the timed phase. Each
engine is loaded and timed in a fresh process, so its peak RSS is its own (index, model and
all) and not what an earlier engine left behind. With `engines` beyond `exact`, sizes from
`APPROXIMATE_FROM` chunks are timed once per engine on the same index: exact vector search, the
projected scan (`service.search.projection`) and the HNSW graph (`service.search.ann`). Each
approximate engine's recall@10 against exact search is measured in the same run, as ANN
benchmarks measure it, with queries from the data's own distribution: points
drawn from the vectors' profile and the real question embeddings of the collections it was
fitted on (`pipelines.bench_vectors`). The recall of the bench's own questions is reported
apart: their vectors lie outside the synthetic chunks' distribution. The same run reopens each
approximate engine with other settings (the projection's dimensions; the graph's search breadth
`ef_search`, from the saved graph, which also times a restart) and reports recall and k-NN
latency for each.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import uvicorn

from pipelines import bench_vectors
from service.access import operator_scope
from service.api.app import create_app
from service.api.asgi import tune_inference_for_queries
from service.api.logs import build_logger
from service.contract import LocalVectorIndex
from service.embed.protocol import Embedder
from service.models import Chunk, EmbeddedChunk, QueryRequest
from service.search.ann import AnnSettings
from service.search.local import LocalSearchBackend
from service.search.projection import ProjectionSettings
from service.search.vector_store import Approximate, approximate_for
from service.settings import Settings
from service.wiring import Container

# The benchmark reads the whole default workspace, as an operator tool does.
_SCOPE = operator_scope()

TARGET_HTTP_OVERHEAD_PCT = 15.0
TARGET_SEARCH_P99_MS = 100.0
TARGET_PEAK_RSS_MB = 3 * 1024
TARGET_RECALL_AT_10 = 0.95
APPROXIMATE_FROM = 500_000
_RECALL_QUERIES = 200  # drawn from the profile; plus every real collection question
# The engines are LOCAL_VECTOR_INDEX's choices, each timed with the settings the platform uses.
ENGINES = tuple(index.value for index in LocalVectorIndex)
# The settings each approximate engine is reopened with, each measured for recall and k-NN
# latency: the projection's dimensions, the graph's search breadth.
SWEEPS: dict[str, dict[str, Approximate]] = {
    "projected": {f"dimensions {d}": ProjectionSettings(dimensions=d) for d in (32, 48, 64, 96, 128)},
    "hnsw": {f"ef_search {ef}": AnnSettings(expansion_search=ef) for ef in (128, 256, 512, 1024, 2048)},
}
_SENTENCES = 50_000  # the pool chunks draw their sentences from
TOP_K = 10
_BATCH = 5_000
_KEY = "bench-key"

_VOCABULARY = [
    "deploy",
    "staging",
    "production",
    "stack",
    "pulumi",
    "lambda",
    "function",
    "api",
    "gateway",
    "key",
    "secret",
    "manager",
    "rotate",
    "index",
    "alias",
    "search",
    "hybrid",
    "vector",
    "bm25",
    "embedding",
    "model",
    "chunk",
    "document",
    "ingestion",
    "queue",
    "worker",
    "bucket",
    "upload",
    "ledger",
    "status",
    "failed",
    "retry",
    "dead",
    "letter",
    "message",
    "timeout",
    "memory",
    "cold",
    "start",
    "region",
    "request",
    "response",
    "header",
    "stream",
    "token",
    "citation",
    "answer",
    "question",
    "history",
    "condense",
    "retrieval",
    "latency",
    "throughput",
    "percentile",
    "benchmark",
    "load",
    "test",
    "user",
    "error",
    "limit",
    "rate",
    "quota",
    "cors",
    "origin",
    "schema",
    "validation",
    "field",
    "body",
    "size",
    "json",
    "log",
    "trace",
    "metric",
    "alarm",
    "dashboard",
    "cost",
    "budget",
    "policy",
    "review",
    "diff",
    "inventory",
    "artifact",
    "package",
    "dependency",
    "version",
    "release",
    "rollback",
    "migration",
    "backup",
    "restore",
    "snapshot",
    "cluster",
    "node",
    "shard",
    "replica",
    "opensearch",
    "elasticsearch",
    "domain",
    "serverless",
    "collection",
    "permission",
    "role",
    "iam",
    "account",
    "credential",
    "endpoint",
    "network",
    "subnet",
    "private",
    "public",
    "encryption",
    "kms",
    "certificate",
    "domain",
    "dns",
    "route",
    "cache",
    "warm",
    "invoke",
    "concurrency",
    "provisioned",
    "configure",
    "install",
    "run",
    "make",
    "test",
    "lint",
    "type",
    "check",
    "ci",
    "pipeline",
    "workflow",
    "job",
    "step",
    "build",
    "local",
    "platform",
    "laptop",
    "moto",
    "server",
    "port",
    "process",
    "data",
    "directory",
    "sample",
    "corpus",
    "page",
    "browser",
]
_FILLER = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "for",
    "is",
    "on",
    "with",
    "that",
    "by",
    "this",
    "be",
    "it",
    "as",
    "are",
    "from",
    "at",
    "or",
    "can",
]


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Percentiles:
        # statistics.quantiles with n=100 gives the 1st..99th percentiles (inclusive method).
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        return cls(
            p50=round(cuts[49], 2),
            p95=round(cuts[94], 2),
            p99=round(cuts[98], 2),
            mean=round(statistics.fmean(samples_ms), 2),
        )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _words(rng: np.random.Generator, count: int) -> list[str]:
    # Zipf ranks give a few very common terms and a long tail, as real prose has.
    ranks = np.minimum(rng.zipf(1.3, count), len(_VOCABULARY)) - 1
    fillers = rng.integers(0, len(_FILLER), count)
    use_filler = rng.random(count) < 0.35
    return [
        _FILLER[f] if filler else _VOCABULARY[r]
        for r, f, filler in zip(ranks, fillers, use_filler, strict=True)
    ]


def _sentences(rng: np.random.Generator, count: int) -> list[str]:
    """`count` sentences of 9-16 words; drawn in one go, as word-at-a-time draws dominated 1M builds."""
    lengths = rng.integers(9, 17, count)
    words = _words(rng, int(lengths.sum()))
    ends = np.cumsum(lengths)
    return [" ".join(words[end - n : end]).capitalize() + "." for n, end in zip(lengths, ends, strict=True)]


def _texts(rng: np.random.Generator, pool: Sequence[str], count: int) -> list[str]:
    """`count` chunk texts of 8-12 sentences each from `pool` (about 900 characters)."""
    lengths = rng.integers(8, 13, count)
    picks = rng.integers(0, len(pool), int(lengths.sum()))
    ends = np.cumsum(lengths)
    return [" ".join(pool[i] for i in picks[end - n : end]) for n, end in zip(lengths, ends, strict=True)]


def synthesise(
    directory: Path,
    size: int,
    dimension: int,
    seed: int = 7,
    *,
    access: Callable[[int], dict[str, Any]] | None = None,
) -> LocalSearchBackend:
    """Write `size` chunks (realistic text, MiniLM-shaped unit vectors) into a new local index;
    `access(number)` gives chunk `number`'s other fields (workspace, tags, permissions), if any."""
    rng = np.random.default_rng(seed)
    profile = bench_vectors.load()
    if profile.dimension != dimension:
        raise ValueError(f"the bench's vector profile has {profile.dimension} dimensions, not {dimension}")
    pool = _sentences(rng, _SENTENCES)
    backend = LocalSearchBackend(directory, dimension)
    backend.ensure_index()
    for start in range(0, size, _BATCH):
        count = min(_BATCH, size - start)
        vectors = profile.sample(rng, count)
        texts = _texts(rng, pool, count)
        batch = []
        for offset in range(count):
            number = start + offset
            document = f"synthetic/doc-{number // 8:06d}.md"
            # model_construct: these values are made here, and validating 100k x 384 floats
            # would dominate the set-up time without checking anything.
            fields: dict[str, Any] = {"tags": (), "published": None}
            fields.update(access(number) if access is not None else {})
            chunk = Chunk.model_construct(
                chunk_id=f"chunk-{number:07d}",
                document_id=document,
                position=number % 8,
                title=f"Synthetic document {number // 8}",
                text=texts[offset],
                source=f"s3://bench/{document}",
                content_hash=f"{number:040x}",
                **fields,
            )
            batch.append(EmbeddedChunk.model_construct(chunk=chunk, vector=cast(Any, vectors[offset])))
        backend.upsert(batch)
    return backend


def questions(count: int, seed: int = 11) -> list[str]:
    rng = np.random.default_rng(seed)
    templates = ("How do I {} the {} {}?", "What is the {} {} for {}?", "Why does the {} {} fail with {}?")
    out = []
    for number in range(count):
        picks = rng.choice(len(_VOCABULARY), 3, replace=False)
        out.append(templates[number % len(templates)].format(*(_VOCABULARY[p] for p in picks)))
    return out


def _time_pair(
    local: Callable[[str], object], remote: Callable[[str], object], asked: Sequence[str], warmup: int
) -> tuple[list[float], list[float]]:
    """Time both ways on each question, interleaved and in alternating order.

    Interleaving makes both see the same machine: on a shared two-core box a burst of
    load elsewhere would otherwise land on one side only and fake an overhead (or a gain).
    """
    for question in asked[:warmup]:
        local(question)
        remote(question)
    samples: tuple[list[float], list[float]] = ([], [])
    for number, question in enumerate(asked):
        order = ((0, local), (1, remote)) if number % 2 == 0 else ((1, remote), (0, local))
        for side, call in order:
            started = time.perf_counter()
            call(question)
            samples[side].append((time.perf_counter() - started) * 1000)
    return samples


class _Server:
    """The real app under uvicorn in a thread; the access logs are written (JSON) and discarded."""

    def __init__(self, container: Container) -> None:
        logger = build_logger(service="bench-api", stream=_Discard())
        app = create_app(container, (_KEY,), logger=logger)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start within 30 s")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


def _overhead(in_process: Percentiles, http: Percentiles) -> float:
    return round((http.p50 - in_process.p50) / in_process.p50 * 100, 1)


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _time_engine(
    embedder: Embedder, backend: LocalSearchBackend, asked: Sequence[str], warmup: int, root: Path
) -> dict[str, Any]:
    settings = Settings(data_dir=root / "data", rate_limit_per_minute=1_000_000, max_body_bytes=1024 * 1024)
    container = Container(settings, backend=backend, embedder=embedder)
    retriever, answers = container.retriever, container.query_service
    result: dict[str, Any] = {}
    with (
        _Server(container) as url,
        httpx.Client(base_url=url, headers={"x-api-key": _KEY}, timeout=60) as client,
    ):

        def post(path: str, body: dict[str, object]) -> None:
            client.post(path, json=body).raise_for_status()

        stages: dict[str, list[float]] = {}

        def search(question: str) -> None:
            for stage, ms in retriever.search(question, TOP_K, scope=_SCOPE).timings_ms.items():
                stages.setdefault(stage, []).append(ms)

        timed = {
            "search": _time_pair(
                search,
                lambda q: post("/v1/search", {"query": q, "top_k": TOP_K}),
                asked,
                warmup,
            ),
            "query": _time_pair(
                lambda q: answers.answer(QueryRequest(question=q), _SCOPE),
                lambda q: post("/v1/query", {"question": q}),
                asked,
                warmup,
            ),
        }
    for name, (inproc, http) in timed.items():
        local, remote = Percentiles.of(inproc), Percentiles.of(http)
        result[name] = {
            "in_process_ms": vars(local),
            "http_ms": vars(remote),
            "http_overhead_p50_pct": _overhead(local, remote),
        }
    result["search"]["stages_in_process_ms"] = {
        stage: vars(Percentiles.of(samples)) for stage, samples in stages.items()
    }
    return result


def _recall_queries(embedder: Embedder, asked: Sequence[str]) -> dict[str, list[list[float]]]:
    """Query vectors per kind: the profile's own distribution, the real questions of the
    profile's collections, and the bench's own questions (outside the distribution)."""
    synthetic = bench_vectors.load().sample(np.random.default_rng(13), _RECALL_QUERIES)
    return {
        "distribution": [v.tolist() for v in synthetic],
        "collection_questions": [v.tolist() for v in bench_vectors.questions()],
        "bench_questions": [list(embedder.embed_query(q)) for q in asked],
    }


# The kinds whose recall the target counts: queries from the data's own distribution.
_IN_DISTRIBUTION = ("distribution", "collection_questions")

_Found = dict[str, list[list[str]]]


def _top_ids(
    backend: LocalSearchBackend, queries: dict[str, list[list[float]]]
) -> tuple[_Found, list[float]]:
    """Each kind's top-10 chunk ids, and the k-NN time of every query in ms."""
    found: _Found = {}
    samples: list[float] = []
    for kind, vectors in queries.items():
        found[kind] = []
        for vector in vectors:
            started = time.perf_counter()
            hits = backend.knn(vector, TOP_K, scope=_SCOPE)
            samples.append((time.perf_counter() - started) * 1000)
            found[kind].append([h.chunk_id for h in hits])
    return found, samples


@dataclass(frozen=True)
class _EngineJob:
    make_embedder: Callable[[], Embedder]
    directory: Path
    engine: str
    asked: Sequence[str]
    warmup: int
    root: Path
    recall: bool


def _open(directory: Path, dimension: int, settings: Approximate | None) -> tuple[LocalSearchBackend, float]:
    """Open the index, replay the vector log and build what the engine needs (the projection's
    axes and reduced rows; the graph, or its saved copy): all that happens before the first
    query, timed."""
    loaded = time.perf_counter()
    backend = LocalSearchBackend(directory, dimension, settings)
    backend.ping()
    backend.knn([1.0] * dimension, 1, scope=_SCOPE)  # the graph is built (or loaded) lazily
    return backend, round(time.perf_counter() - loaded, 1)


def _run_engine(job: _EngineJob) -> tuple[dict[str, Any], dict[str, _Found]]:
    """Load one engine on the index and time it; runs in a fresh process (see the module doc).

    Returns the measurements and the recall queries' top 10s: {"default": ...} and, for an
    approximate engine with recall on, one per entry of its `SWEEPS`."""
    tune_inference_for_queries()
    embedder = job.make_embedder()
    embedder.embed_query("warm up")
    windowed = _reset_peak_rss()
    settings = approximate_for(LocalVectorIndex(job.engine))
    backend, load_seconds = _open(job.directory, embedder.dimension, settings)
    _say(f"  {job.engine}: loaded in {load_seconds} s, {_rss_mb('VmRSS')} MB resident")
    timings = _time_engine(embedder, backend, job.asked, job.warmup, job.root)
    measured: dict[str, Any] = {
        "load_seconds": load_seconds,
        **timings,
        "rss_mb": _rss_mb("VmRSS"),
        "peak_rss_mb": _rss_mb("VmHWM"),
        "peak_rss_window": "this engine's process after the model loaded"
        if windowed
        else "this engine's process",
    }
    found: dict[str, _Found] = {}
    if job.recall:
        queries = _recall_queries(embedder, job.asked)
        found["default"], knn_ms = _top_ids(backend, queries)
        measured["knn_recall_queries_ms"] = vars(Percentiles.of(knn_ms))
    backend.close()
    if job.recall and settings is not None:
        # Reopened with each variant (the graph from its saved copy: a restart), for a
        # recall/latency curve.
        sweep: dict[str, Any] = {}
        for label, variant in SWEEPS[job.engine].items():
            reopened, restart_seconds = _open(job.directory, embedder.dimension, variant)
            found[label], knn_ms = _top_ids(reopened, queries)
            sweep[label] = {"open_seconds": restart_seconds, "knn_ms": vars(Percentiles.of(knn_ms))}
            reopened.close()
        measured["sweep"] = sweep
    return measured, found


def _recall(truth: Sequence[Sequence[str]], found: Sequence[Sequence[str]]) -> float:
    return round(statistics.fmean(len(set(t) & set(f)) / TOP_K for t, f in zip(truth, found, strict=True)), 4)


def _recalls(truth: _Found, found: _Found) -> dict[str, float]:
    """Recall@10 per query kind, and over the in-distribution kinds together (the target's)."""
    by_kind = {kind: _recall(truth[kind], found[kind]) for kind in truth}
    inside_truth = [t for kind in _IN_DISTRIBUTION for t in truth[kind]]
    inside_found = [f for kind in _IN_DISTRIBUTION for f in found[kind]]
    return {"in_distribution": _recall(inside_truth, inside_found), **by_kind}


def bench_size(
    make_embedder: Callable[[], Embedder],
    dimension: int,
    size: int,
    *,
    asked: Sequence[str],
    warmup: int,
    root: Path,
    engine_names: Sequence[str] = ("exact",),
) -> dict[str, Any]:
    started = time.perf_counter()
    directory = root / f"index-{size}"
    synthesise(directory, size, dimension).close()
    built = round(time.perf_counter() - started, 1)
    _say(f"  {size} chunks written in {built} s; timing {len(asked)} questions per combination")
    result: dict[str, Any] = {"chunks": size, "build_seconds": built}
    asked_for = ["exact", *(e for e in engine_names if e != "exact")]
    timed = asked_for if size >= APPROXIMATE_FROM else ["exact"]
    found: dict[str, dict[str, _Found]] = {}
    for engine in timed:
        job = _EngineJob(make_embedder, directory, engine, asked, warmup, root, len(timed) > 1)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            result[engine], found[engine] = pool.submit(_run_engine, job).result()
    truth = found["exact"].get("default")
    for engine in timed[1:]:
        if truth is None:
            break
        approx = result[engine]
        recalls = _recalls(truth, found[engine]["default"])
        settings = approximate_for(LocalVectorIndex(engine))
        approx["settings"] = vars(settings) if settings is not None else {}
        approx["recall_at_10_vs_exact"] = recalls.pop("in_distribution")
        approx["recall_at_10_vs_exact_by_queries"] = recalls
        approx["recall_queries"] = {kind: len(vectors) for kind, vectors in truth.items()}
        for label, measured in approx.get("sweep", {}).items():
            measured["recall_at_10_vs_exact"] = _recalls(truth, found[engine][label])
    if timed == ["exact"]:
        result.update(result.pop("exact"))
    return result


def run(
    make_embedder: Callable[[], Embedder],
    sizes: Sequence[int],
    count: int,
    warmup: int,
    engine_names: Sequence[str] = ("exact",),
) -> dict[str, Any]:
    """`make_embedder` is called in each engine's process, so it must pickle (a class, a partial)."""
    embedder = make_embedder()
    asked = questions(count)
    report: dict[str, Any] = {
        "engine": "local",
        "embedder": embedder.model_id,
        "search": f"hybrid, top {TOP_K}",
        "answer": "extractive",
        "threads": "torch and BLAS limited to 1 per request, as in the API process",
        "questions": count,
        "note": (
            "chunks synthesised (realistic text, unit vectors shaped like MiniLM embeddings of real "
            "text); the model embeds the queries; each engine runs in its own process"
        ),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        for size in sizes:
            _say(f"bench query: {size} chunks")
            report["sizes"][str(size)] = bench_size(
                make_embedder,
                embedder.dimension,
                size,
                asked=asked,
                warmup=warmup,
                root=Path(tmp),
                engine_names=engine_names,
            )
    report["targets"] = _targets(report["sizes"])
    return report


def engines(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The timed engines of one size: {"exact": ..., "projected": ..., ...} or the flat result."""
    return {k: result[k] for k in ENGINES if k in result} or {"exact": result}


def _targets(sizes: dict[str, Any]) -> dict[str, Any]:
    overheads = {
        f"{size}/{engine}/{op}": r[op]["http_overhead_p50_pct"]
        for size, result in sizes.items()
        for engine, r in engines(result).items()
        for op in ("search", "query")
    }
    largest = max(sizes, key=int)
    at_largest = engines(sizes[largest])
    # The targets judge the first approximate engine that ran, in ENGINES order (else exact).
    best = next((e for e in at_largest if e != "exact"), "exact")
    chosen = at_largest[best]
    search_p99 = chosen["search"]["in_process_ms"]["p99"]
    search_p99_http = chosen["search"]["http_ms"]["p99"]
    recall = chosen.get("recall_at_10_vs_exact", 1.0)
    return {
        "http_overhead_p50_max_pct": TARGET_HTTP_OVERHEAD_PCT,
        "http_overhead_p50_pct": overheads,
        "http_overhead_met": all(v <= TARGET_HTTP_OVERHEAD_PCT for v in overheads.values()),
        "search_p99_max_ms": TARGET_SEARCH_P99_MS,
        "largest_size": int(largest),
        "engine_at_largest": best,
        "search_p99_ms_at_largest": {"in_process": search_p99, "http": search_p99_http},
        "search_p99_met": search_p99 <= TARGET_SEARCH_P99_MS,
        "peak_rss_max_mb": TARGET_PEAK_RSS_MB,
        "peak_rss_mb_at_largest": chosen["peak_rss_mb"],
        "peak_rss_met": chosen["peak_rss_mb"] <= TARGET_PEAK_RSS_MB,
        "recall_at_10_min": TARGET_RECALL_AT_10,
        "recall_at_10_at_largest": recall,
        "recall_met": recall >= TARGET_RECALL_AT_10,
    }
