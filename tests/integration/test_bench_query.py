"""A small-size smoke test of `ragctl bench query`'s code; the benchmark itself (up to 1M chunks)
is run by hand, never by `make test`."""

from __future__ import annotations

from functools import partial

import pytest

from pipelines import bench_query
from tests.factories import HashingEmbedder


@pytest.mark.timeout(300)
def test_the_query_bench_reports_latency_memory_build_time_and_recall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the bench at a tiny size, with the approximate engine compared from any size
    monkeypatch.setattr(bench_query, "APPROXIMATE_FROM", 0)
    monkeypatch.setattr(bench_query, "_RECALL_QUERIES", 20)
    # When it runs
    report = bench_query.run(
        partial(HashingEmbedder, 384), [300], count=6, warmup=1, engine_names=["projected", "hnsw"]
    )
    # Then every engine is timed in-process and over HTTP, with build time and peak RSS
    result = report["sizes"]["300"]
    assert result["chunks"] == 300
    assert result["build_seconds"] > 0
    for engine in ("exact", "projected", "hnsw"):
        timed = result[engine]
        assert timed["search"]["in_process_ms"]["p99"] >= timed["search"]["in_process_ms"]["p50"] > 0
        assert timed["query"]["http_ms"]["p50"] > 0
        assert timed["peak_rss_mb"] >= timed["rss_mb"] > 0
    for engine in ("projected", "hnsw"):
        approximate = result[engine]
        assert 0.0 <= approximate["recall_at_10_vs_exact"] <= 1.0
        # And recall is reported per kind of query: in the data's distribution (the target's) and not
        assert set(approximate["recall_at_10_vs_exact_by_queries"]) == {
            "distribution",
            "collection_questions",
            "bench_questions",
        }
        assert approximate["recall_queries"]["collection_questions"] == 337
        # And the engine was reopened with each variant, with recall, k-NN latency and open time
        sweep = approximate["sweep"]
        assert list(sweep) == list(bench_query.SWEEPS[engine])
        for measured in sweep.values():
            assert 0.0 <= measured["recall_at_10_vs_exact"]["in_distribution"] <= 1.0
            assert measured["open_seconds"] >= 0
            assert measured["knn_ms"]["p50"] > 0
    # And the targets judge the projected engine, the first approximate one
    targets = report["targets"]
    assert targets["engine_at_largest"] == "projected"
    assert set(targets) >= {"search_p99_met", "peak_rss_met", "recall_met"}
