"""`ragctl eval` on a tiny BEIR-layout collection, with the hashing embedder (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines import cli
from pipelines.evaluate import evaluate, load_beir
from service.contract import SearchMode
from service.embed.cache import CachingEmbedder
from service.ingest.chunking import Chunker
from tests.factories import HashingEmbedder

DOCS = {
    "d1": ("Wing lift", "Lift on a swept wing at supersonic speed depends on the sweep angle."),
    "d2": ("Boundary layers", "Laminar boundary layer transition on a flat plate with heat transfer."),
    "d3": ("Shock waves", "Shock wave interaction with a turbulent boundary layer near a ramp."),
    "d4": ("Heat", "Aerodynamic heating of a blunt body re-entering the atmosphere."),
}
QUERIES = {"q1": "supersonic swept wing lift", "q2": "heating of a blunt body on re-entry"}
QRELS = [("q1", "d1", 1), ("q2", "d4", 2)]


def write_collection(root: Path) -> Path:
    directory = root / "tiny"
    (directory / "qrels").mkdir(parents=True)
    with (directory / "corpus.jsonl").open("w") as out:
        for doc_id, (title, text) in DOCS.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (directory / "queries.jsonl").open("w") as out:
        for query_id, text in {**QUERIES, "unjudged": "ignored"}.items():
            out.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in QRELS)]
    (directory / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return directory


def test_loader_keeps_only_judged_queries(tmp_path: Path) -> None:
    collection = load_beir(write_collection(tmp_path))
    assert (len(collection.documents), sorted(collection.queries)) == (4, ["q1", "q2"])


def test_a_perfect_query_scores_one_in_every_mode(tmp_path: Path) -> None:
    # Given a collection whose queries each name their only relevant document
    dataset = write_collection(tmp_path)
    # When every mode is evaluated
    result = evaluate(dataset, list(SearchMode), HashingEmbedder(), Chunker(200, 20), alpha=0.5)
    # Then the metrics are perfect and the run is described
    assert result["documents"] == 4
    assert result["queries"] == 2
    modes = result["modes"]
    assert isinstance(modes, dict)
    for mode in SearchMode:
        assert modes[mode.value] == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}


def test_cli_json_and_report_with_a_warm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the CLI wired to the hashing embedder and a data dir for its cache
    embedder = HashingEmbedder()
    monkeypatch.setattr("service.wiring.build_embedder", lambda settings: embedder)
    dataset = write_collection(tmp_path)
    args = ["eval", "--dataset", str(dataset), "--json", "--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    # When it is run twice, the second time with a report
    first = runner.invoke(cli.app, args)
    embedded = embedder.embedded_texts
    second = runner.invoke(cli.app, [*args, "--report", str(tmp_path / "eval.html")])
    # Then stdout is one JSON object with every mode's four metrics
    assert first.exit_code == 0, first.output
    payload = json.loads(second.stdout)
    assert set(payload["modes"]) == {"bm25", "vector", "hybrid"}
    assert set(payload["modes"]["hybrid"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert {"dataset", "documents", "chunks", "queries", "fusion", "alpha", "candidates"} <= set(payload)
    # And the second run embedded no passage, and wrote the report
    assert embedder.embedded_texts == embedded
    assert (tmp_path / "data" / "cache").is_dir()
    assert "<svg" in (tmp_path / "eval.html").read_text()


def test_cli_one_mode_flattens_the_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.wiring.build_embedder", lambda settings: HashingEmbedder())
    dataset = write_collection(tmp_path)
    result = CliRunner().invoke(
        cli.app,
        ["eval", "--dataset", str(dataset), "--mode", "bm25", "--json", "--no-cache", "--fusion", "rrf"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["mode"], payload["ndcg@10"], payload["fusion"]) == ("bm25", 1.0, "rrf")


def test_cached_embedder_gives_the_same_metrics(tmp_path: Path) -> None:
    dataset = write_collection(tmp_path)
    cached = CachingEmbedder(HashingEmbedder(), tmp_path / "cache.sqlite")
    plain = evaluate(dataset, [SearchMode.HYBRID], HashingEmbedder(), Chunker(200, 20), alpha=0.5)
    assert (
        evaluate(dataset, [SearchMode.HYBRID], cached, Chunker(200, 20), alpha=0.5)["modes"] == plain["modes"]
    )
