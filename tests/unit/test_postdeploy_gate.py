"""The retrieval gate: golden-set loading, the metrics, the thresholds, seeding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.postdeploy import gate
from pipelines.postdeploy.cli import DEFAULT_GOLDEN, REPO_ROOT
from pipelines.postdeploy.client import ApiClient
from service.contract import API_KEY_HEADER

GOLDEN = {
    "name": "tiny",
    "top_k": 3,
    "thresholds": {"min_hit_rate": 0.5, "min_recall_at_k": 0.5, "min_mrr": 0.5},
    "questions": [
        {"question": "how do I deploy", "relevant": ["docs/deploying.md"]},
        {"question": "how does CI work", "relevant": ["docs/cicd.md", "README.md"]},
    ],
}


def _golden(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _search_api(rankings: dict[str, list[str]], status: int = 200) -> ApiClient:
    """A fake `/v1/search` returning chunks (two per document, as real hits are) in the given order."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers[API_KEY_HEADER] == "k"
        query = json.loads(request.content)["query"]
        docs = rankings.get(query, [])
        hits = [{"document_id": d, "chunk_id": f"{d}#{i}"} for d in docs for i in range(2)]
        return httpx.Response(status, json={"hits": hits, "mode": "hybrid"})

    return ApiClient("http://platform.test", "k", transport=httpx.MockTransport(handle))


def test_metrics_follow_their_definitions(tmp_path: Path) -> None:
    # Given two questions: the first answered at rank 2, the second finding one of its two documents at rank 1
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    rankings = [
        ["README.md", "docs/deploying.md"],
        ["docs/cicd.md", "docs/other.md", "docs/more.md", "README.md"],
    ]

    # When scored at k=3 (README.md is 4th for the second question: outside k)
    scores = gate.score(golden, rankings)

    # Then hit rate counts both, recall@k halves the second, MRR averages 1/2 and 1/1
    assert scores.hit_rate == 1.0
    assert scores.recall_at_k == pytest.approx((1 + 0.5) / 2)
    assert scores.mrr == pytest.approx((0.5 + 1.0) / 2)
    assert scores.misses == ()


def test_the_gate_passes_above_and_fails_below_its_thresholds(tmp_path: Path) -> None:
    # Given the golden set and a search that answers only the first question
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    client = _search_api(
        {"how do I deploy": ["docs/deploying.md"], "how does CI work": ["docs/unrelated.md"]}
    )

    # When the gate runs
    checks = {c.name: c for c in gate.run_gate(golden, client)}

    # Then hit rate 0.5 meets its 0.5 minimum, recall 0.5 too, MRR 0.5 too
    assert checks["tiny hit_rate"].ok
    assert checks["tiny recall_at_k"].ok
    assert checks["tiny mrr"].ok
    # And the miss is reported for whoever reads the log
    assert "how does CI work" in checks["tiny misses"].detail

    # Given stricter thresholds / Then the same results fail the gate
    strict = gate.load_golden(_golden(tmp_path, {**GOLDEN, "thresholds": {"min_hit_rate": 0.9}}))
    (check, _) = gate.run_gate(strict, client)
    assert not check.ok
    assert check.detail == "0.500 (min 0.900)"


def test_a_search_error_fails_the_gate_instead_of_scoring_zero(tmp_path: Path) -> None:
    # Given a search route that is broken
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    checks = gate.run_gate(golden, _search_api({}, status=500))

    # Then the gate fails naming the status
    assert [(c.name, c.ok) for c in checks] == [("tiny search", False)]
    assert "500" in checks[0].detail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"thresholds": {}}, "thresholds"),
        ({"thresholds": {"min_precision": 0.5}}, "thresholds"),
        ({"questions": []}, "questions"),
        ({"questions": [{"question": "q", "relevant": []}]}, "relevant"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_a_malformed_golden_set_is_refused_with_the_field_named(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    # Given a golden set with one field wrong / Then loading names that field
    with pytest.raises(gate.GoldenSetError, match=message):
        gate.load_golden(_golden(tmp_path, {**GOLDEN, **change}))


def test_seeding_uploads_each_document_under_its_path_and_waits_until_searchable(tmp_path: Path) -> None:
    # Given a golden set seeding one repository file, and a store and search that see it at once
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cicd.md").write_text("# CI/CD and environments\n\nbody\n", encoding="utf-8")
    golden = gate.load_golden(_golden(tmp_path, {**GOLDEN, "seed": ["docs/cicd.md"]}))
    uploaded: dict[str, bytes] = {}

    class Store:
        def put(self, key: str, body: bytes) -> None:
            uploaded[key] = body

        def delete(self, key: str) -> None:
            uploaded.pop(key)

    client = _search_api({"CI/CD and environments": ["docs/cicd.md"]})

    # When seeded
    check = gate.seed(golden, Store(), client, tmp_path, gate.GateSettings(ingest_timeout=1, poll_interval=1))

    # Then the document id is its repository path, and it was found by its title
    assert check.ok
    assert uploaded == {"docs/cicd.md": b"# CI/CD and environments\n\nbody\n"}


def test_the_shipped_golden_set_is_about_the_projects_own_docs() -> None:
    # Given the golden set `make smoke` uses against the local platform
    golden = gate.load_golden(DEFAULT_GOLDEN)

    # Then it expects only documents of the local sample corpus (README.md and docs/*.md),
    # seeds them all, and has thresholds for every metric
    relevant = {doc for q in golden.questions for doc in q.relevant}
    assert all(doc == "README.md" or (doc.startswith("docs/") and doc.endswith(".md")) for doc in relevant)
    assert relevant <= set(golden.seed)
    assert set(golden.thresholds) == set(gate.THRESHOLD_KEYS)
    # And the CI/CD questions it asks are answered by a document that exists
    assert (REPO_ROOT / "docs" / "cicd.md").is_file()
