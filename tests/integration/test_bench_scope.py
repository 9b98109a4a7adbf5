"""A small-size smoke test of `ragctl bench scope`'s code; the benchmark itself (100k and 1M
chunks) is run by hand, never by `make test`."""

from __future__ import annotations

import pytest

from pipelines import bench_scope
from tests.factories import HashingEmbedder


@pytest.mark.timeout(120)
def test_the_scope_bench_times_knn_and_hybrid_search_for_each_scope_and_filter() -> None:
    # Given the bench at a tiny size
    # When it runs
    report = bench_scope.run(HashingEmbedder(384), [400], count=4, warmup=1)
    # Then each case is timed for k-NN and hybrid search, with the share of chunks it allows
    result = report["sizes"]["400"]
    assert result["chunks"] == 400
    assert set(result["cases"]) == set(bench_scope.CASES)
    shares = {case: timed["allowed_share"] for case, timed in result["cases"].items()}
    assert shares == {"reader": 0.85, "tag filter": 0.5, "operator": 0.9, "second workspace": 0.1}
    for timed in result["cases"].values():
        for op in ("knn_ms", "hybrid_search_ms"):
            assert timed[op]["p99"] >= timed[op]["p50"] > 0
