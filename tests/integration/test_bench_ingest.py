"""`ragctl bench ingest` runs end to end (tiny, with the hashing embedder instead of the model)."""

from __future__ import annotations

from pipelines.bench_ingest import corpus, run
from service.settings import Settings
from tests.factories import HashingEmbedder


def test_bench_ingest_reports_pipeline_embedder_and_ratio(settings: Settings) -> None:
    # Given a tiny corpus
    embedder = HashingEmbedder()
    # When the benchmark runs
    report = run(settings, embedder, documents=3, paragraphs=4)
    # Then it indexed every chunk through the pipeline and reports all three figures
    assert report["chunks"] >= 12
    assert report["pipeline_chunks_per_second"] > 0
    assert report["embedder_chunks_per_second"] > 0
    assert report["ratio"] == round(
        report["pipeline_chunks_per_second"] / report["embedder_chunks_per_second"], 3
    )
    # And the pipeline embedded each chunk once, on top of two bare runs and the warm-up
    assert embedder.embedded_texts == 3 * report["chunks"] + min(
        report["chunks"], settings.embedding_batch_size
    )


def test_corpus_is_deterministic() -> None:
    assert corpus(2, 3) == corpus(2, 3)
