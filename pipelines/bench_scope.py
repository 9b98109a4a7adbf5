"""`ragctl bench scope`: k-NN and hybrid search latency on the local engine when the scope or the
filters do not admit every chunk (docs/api.md, "Performance").

A search whose scope admits every chunk (one workspace, nothing restricted, no filter) scans the
vectors without asking the text index which chunks it may return. Any other search first
computes the set of chunks its scope and filters allow. This bench times that case: it writes
`size` chunks as `ragctl bench query` does (`bench_query.synthesise`), of which one in ten
belongs to a second workspace, one in twenty is restricted to a group, and every other chunk
carries a tag, and times, with the same questions in the same order:

- `reader`: a reader of the first workspace (no groups), no filter: 85% of the chunks allowed;
- `tag filter`: the same reader, with a tag filter: 50% allowed;
- `operator`: an operator (who bypasses document permissions) of the first workspace: 90%;
- `second workspace`: a reader of the second workspace: 10%.

For each it reports the k-NN call as hybrid search makes it (`LocalSearchBackend.knn`, the
fusion's 100 candidates) and the whole hybrid search (`Retriever.search`, top 10), in process.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.bench_query import Percentiles, questions, synthesise
from service.access import AccessScope, operator_scope
from service.contract import LocalVectorIndex
from service.embed.protocol import Embedder
from service.models import SearchFilters
from service.search.local import LocalSearchBackend
from service.search.retriever import Retriever
from service.search.vector_store import approximate_for

OTHER_WORKSPACE = "bench-other"
GROUP = "finance"
TAG = "even"
TOP_K = 10
CANDIDATES = 100  # Retriever's default hybrid depth
CASES: dict[str, tuple[AccessScope, SearchFilters | None]] = {
    "reader": (AccessScope(workspace="default", user="bench-reader"), None),
    "tag filter": (AccessScope(workspace="default", user="bench-reader"), SearchFilters(tags=(TAG,))),
    "operator": (operator_scope(), None),
    "second workspace": (AccessScope(workspace=OTHER_WORKSPACE, user="bench-reader"), None),
}


def access(number: int) -> dict[str, Any]:
    """Chunk `number`'s workspace, permissions and tags (see the module doc)."""
    fields: dict[str, Any] = {"tags": (TAG,) if number % 2 == 0 else ()}
    if number % 10 == 9:
        fields["workspace"] = OTHER_WORKSPACE
    elif number % 20 == 3:
        fields["allowed_groups"] = (GROUP,)
    return fields


def allowed_share(size: int, scope: AccessScope, filters: SearchFilters | None) -> float:
    """The share of the chunks that `scope` and `filters` allow, by `access`'s rule."""
    allowed = 0
    for number in range(size):
        fields = access(number)
        if fields.get("workspace", "default") != scope.workspace:
            continue
        if fields.get("allowed_groups") and not scope.bypass_document_permissions:
            continue
        if filters is not None and filters.tags and TAG not in fields["tags"]:
            continue
        allowed += 1
    return round(allowed / size, 3)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def bench_size(
    embedder: Embedder, size: int, asked: Sequence[str], *, warmup: int, root: Path, engine: str
) -> dict[str, Any]:
    started = time.perf_counter()
    directory = root / f"index-{size}"
    synthesise(directory, size, embedder.dimension, access=access).close()
    built = round(time.perf_counter() - started, 1)
    backend = LocalSearchBackend(directory, embedder.dimension, approximate_for(LocalVectorIndex(engine)))
    backend.ping()
    retriever = Retriever(backend, embedder, candidates=CANDIDATES)
    vectors = [embedder.embed_query(question) for question in asked]
    result: dict[str, Any] = {"chunks": size, "build_seconds": built, "engine": engine, "cases": {}}
    for case, (scope, filters) in CASES.items():

        def knn(at: int, scope: AccessScope = scope, filters: SearchFilters | None = filters) -> float:
            return _timed(lambda: backend.knn(vectors[at], CANDIDATES, filters, asked[at], scope=scope))

        def hybrid(at: int, scope: AccessScope = scope, filters: SearchFilters | None = filters) -> float:
            return _timed(lambda: retriever.search(asked[at], TOP_K, filters=filters, scope=scope))

        for at in range(min(warmup, len(asked))):
            knn(at)
            hybrid(at)
        knn_ms = [knn(at) for at in range(len(asked))]
        hybrid_ms = [hybrid(at) for at in range(len(asked))]
        result["cases"][case] = {
            "allowed_share": allowed_share(size, scope, filters),
            "knn_ms": vars(Percentiles.of(knn_ms)),
            "hybrid_search_ms": vars(Percentiles.of(hybrid_ms)),
        }
    backend.close()
    return result


def run(
    embedder: Embedder, sizes: Sequence[int], count: int, warmup: int, engine: str = "exact"
) -> dict[str, Any]:
    asked = questions(count)
    report: dict[str, Any] = {
        "engine": "local",
        "embedder": embedder.model_id,
        "knn": f"{CANDIDATES} candidates, as hybrid search asks",
        "search": f"hybrid, top {TOP_K}",
        "questions": count,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-scope-") as tmp:
        for size in sizes:
            report["sizes"][str(size)] = bench_size(
                embedder, size, asked, warmup=warmup, root=Path(tmp), engine=engine
            )
    return report
