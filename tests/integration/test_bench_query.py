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
    report = bench_query.run(partial(HashingEmbedder, 384), [300], count=6, warmup=1, approximate=True)
    # Then both engines are timed in-process and over HTTP, with build time, peak RSS and recall
    result = report["sizes"]["300"]
    assert result["chunks"] == 300
    assert result["build_seconds"] > 0
    for engine in ("exact", "approximate"):
        timed = result[engine]
        assert timed["search"]["in_process_ms"]["p99"] >= timed["search"]["in_process_ms"]["p50"] > 0
        assert timed["query"]["http_ms"]["p50"] > 0
        assert timed["peak_rss_mb"] >= timed["rss_mb"] > 0
    assert 0.0 <= result["approximate"]["recall_at_10_vs_exact"] <= 1.0
    targets = report["targets"]
    assert targets["engine_at_largest"] == "approximate"
    assert set(targets) >= {"search_p99_met", "peak_rss_met", "recall_met"}
