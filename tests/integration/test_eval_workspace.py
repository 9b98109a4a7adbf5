"""`ragctl eval --workspace` (issue 15 item 1): evaluation within one workspace's scope.

The retrieval evaluation asks every query through the retriever with the workspace's
`AccessScope`, the filter the backends apply inside the query for the API, and indexes its
temporary collection into that workspace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines import cli
from pipelines.evaluate import Collection, build_index, document_run, evaluate
from pipelines.evaluate_answers import DEFAULT_GOLDEN, evaluate_answers, load_answers
from service.access import operator_scope
from service.contract import SearchMode
from service.generate.extractive import ExtractiveGenerator
from service.ingest.chunking import Chunker
from service.ingest.indexer import embedding_text
from service.models import Document, EmbeddedChunk
from service.search.local import LocalSearchBackend
from service.search.retriever import Retriever
from tests.factories import HashingEmbedder
from tests.integration.test_eval import QUERIES, write_collection

PERFECT = {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
# Two workspaces holding the same texts under different ids: only the scope tells them apart.
TEXTS = {
    "wing": "Lift on a swept wing at supersonic speed depends on the sweep angle.",
    "heat": "Aerodynamic heating of a blunt body re-entering the atmosphere.",
}


def two_workspace_index(directory: Path, embedder: HashingEmbedder) -> LocalSearchBackend:
    backend = LocalSearchBackend(directory, embedder.dimension)
    backend.ensure_index()
    chunker = Chunker(200, 20)
    for workspace in ("acme", "globex"):
        for name, text in TEXTS.items():
            document = Document(
                document_id=f"{workspace}-{name}", title=name, text=text, source=name, workspace=workspace
            )
            chunks = chunker.split(document)
            vectors = embedder.embed_documents([embedding_text(c) for c in chunks])
            backend.upsert(
                [EmbeddedChunk(chunk=c, vector=tuple(v)) for c, v in zip(chunks, vectors, strict=True)]
            )
    return backend


@pytest.mark.parametrize("workspace", ["acme", "globex"])
def test_the_run_of_a_workspace_ranks_only_its_documents(tmp_path: Path, workspace: str) -> None:
    # Given one index holding the same texts in two workspaces
    embedder = HashingEmbedder()
    backend = two_workspace_index(tmp_path / "index", embedder)
    retriever = Retriever(backend, embedder, alpha=0.5)
    try:
        # When the evaluation's run asks every query within one workspace
        for mode in SearchMode:
            run = document_run(
                retriever, {"q": "supersonic swept wing lift"}, mode, scope=operator_scope(workspace)
            )
            # Then it ranks that workspace's documents, best first, and never the other's
            ranked = [d.doc_id for d in sorted(run, key=lambda d: -d.score)]
            assert ranked[0] == f"{workspace}-wing", (mode, ranked)
            assert all(doc.startswith(f"{workspace}-") for doc in ranked), (mode, ranked)
    finally:
        backend.close()


def test_the_collection_is_indexed_into_the_workspace(tmp_path: Path) -> None:
    # Given a collection built into workspace acme
    embedder = HashingEmbedder()
    collection = Collection(
        "tiny", [Document(document_id="d", title="t", text=TEXTS["wing"], source="s")], {}, []
    )
    backend, chunks = build_index(collection, tmp_path / "index", embedder, Chunker(200, 20), "acme")
    retriever = Retriever(backend, embedder, alpha=0.5)
    try:
        # Then acme finds its chunk and the default workspace finds nothing
        def found(workspace: str) -> list[str]:
            hits = retriever.search("swept wing", 5, SearchMode.BM25, scope=operator_scope(workspace)).hits
            return [h.document_id for h in hits]

        assert (chunks, found("acme"), found("default")) == (1, ["d"], [])
    finally:
        backend.close()


def test_evaluate_within_a_workspace_scores_as_in_default_and_says_which(tmp_path: Path) -> None:
    # Given the tiny collection whose queries each name their relevant document
    dataset = write_collection(tmp_path)
    # When it is evaluated within workspace acme
    result = evaluate(
        dataset, list(SearchMode), HashingEmbedder(), Chunker(200, 20), alpha=0.5, workspace="acme"
    )
    # Then every mode finds every relevant document (indexed and asked in acme), and says so
    assert result["workspace"] == "acme"
    assert result["queries"] == len(QUERIES)
    assert result["modes"] == {mode.value: PERFECT for mode in SearchMode}


def test_ragctl_eval_workspace_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = HashingEmbedder()
    monkeypatch.setattr("service.wiring.build_embedder", lambda settings: embedder)
    dataset = write_collection(tmp_path)
    base = ["eval", "--dataset", str(dataset), "--json", "--no-cache", "--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    # When `ragctl eval --workspace acme` runs
    result = runner.invoke(cli.app, [*base, "--workspace", "acme", "--mode", "hybrid"])
    # Then its one JSON object is acme's, with perfect figures
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["workspace"], payload["mode"], payload["mrr@10"]) == ("acme", "hybrid", 1.0)
    # And without the option it is the default workspace
    default = json.loads(runner.invoke(cli.app, [*base, "--mode", "hybrid"]).stdout)
    assert default["workspace"] == "default"
    # And a malformed workspace exits 2 naming it
    bad = runner.invoke(cli.app, [*base, "--workspace", "Not_A_Workspace"])
    assert bad.exit_code == 2
    assert "Not_A_Workspace" in bad.output


def test_answers_are_asked_within_the_workspace() -> None:
    # Given the golden answers, indexed and asked in workspace acme
    golden = load_answers(DEFAULT_GOLDEN)[:2]

    def run(workspace: str) -> dict[str, object]:
        generators = [ExtractiveGenerator()]
        chunker = Chunker(1000, 100)
        return evaluate_answers(
            golden, generators, HashingEmbedder(), chunker, alpha=0.5, candidates=100, workspace=workspace
        )

    scoped, plain = run("acme"), run("default")
    # Then acme's answers cite what the default workspace's do (the scope found its documents)
    assert scoped["workspace"] == "acme"
    assert scoped["generators"] == plain["generators"]
    figures = scoped["generators"]["extractive"]  # type: ignore[index]
    assert all(q["cited"] for q in figures["questions"])
