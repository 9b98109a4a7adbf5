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
from pipelines.postdeploy.corpus import PREFIX
from service.contract import API_KEY_HEADER

GOLDEN = {
    "name": "tiny",
    "top_k": 3,
    "margin": 0.1,
    "baseline": {"hybrid": {"hit_rate": 0.6, "recall_at_k": 0.6, "mrr": 0.6}},
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
    scores = gate.score(golden.all_questions, rankings, golden.top_k)

    # Then hit rate counts both, recall@k halves the second, MRR averages 1/2 and 1/1
    assert scores.hit_rate == 1.0
    assert scores.recall_at_k == pytest.approx((1 + 0.5) / 2)
    assert scores.mrr == pytest.approx((0.5 + 1.0) / 2)
    assert scores.misses == ()


def test_the_gate_passes_above_and_fails_below_baseline_minus_margin(tmp_path: Path) -> None:
    # Given the golden set (baseline 0.6, margin 0.1) and a search that answers only the first question
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    client = _search_api(
        {"how do I deploy": ["docs/deploying.md"], "how does CI work": ["docs/unrelated.md"]}
    )

    # When the gate runs
    result = gate.run_gate(golden, client)
    checks = {c.name: c for c in result.checks}

    # Then hit rate 0.5 meets its 0.6 - 0.1 minimum, recall 0.5 too, MRR 0.5 too
    assert checks["tiny hybrid hit_rate"].ok
    assert checks["tiny hybrid recall_at_k"].ok
    assert checks["tiny hybrid mrr"].ok
    assert result.figures == {"hybrid": {"hit_rate": 0.5, "recall_at_k": 0.5, "mrr": 0.5}}
    # And the miss is reported with what was retrieved, for whoever reads the log
    assert "'how does CI work' retrieved ['docs/unrelated.md']" in checks["tiny hybrid misses (1)"].detail

    # Given a higher baseline / Then the same results fail the gate, the misses check too
    strict = gate.load_golden(
        _golden(
            tmp_path, {**GOLDEN, "baseline": {"hybrid": {"hit_rate": 0.9, "recall_at_k": 0.5, "mrr": 0.5}}}
        )
    )
    failed = {c.name: c for c in gate.run_gate(strict, client).checks}
    assert not failed["tiny hybrid hit_rate"].ok
    assert failed["tiny hybrid hit_rate"].detail == "0.500 (baseline 0.900 - margin 0.10)"
    assert not failed["tiny hybrid misses (1)"].ok


def test_a_drop_from_the_previous_deploy_larger_than_the_margin_fails(tmp_path: Path) -> None:
    # Given the previous deploy's recorded figures, and a search that now answers one question of two
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    client = _search_api({"how do I deploy": ["docs/deploying.md"]})
    record = tmp_path / "figures" / "gate.json"
    gate.save_figures(record, golden, {"hybrid": {"hit_rate": 1.0, "recall_at_k": 0.75, "mrr": 0.55}})

    # When the gate runs against them
    checks = {c.name: c for c in gate.run_gate(golden, client, gate.load_figures(record)).checks}

    # Then the baseline checks pass but the drop of 0.5 in hit rate (margin 0.1) fails the gate
    assert checks["tiny hybrid hit_rate"].ok
    previous = checks["tiny hybrid vs previous deploy"]
    assert not previous.ok
    assert "hit_rate 1.000 -> 0.500" in previous.detail
    assert "largest drop 0.500 in hit_rate" in previous.detail

    # Given previous figures within the margin / Then it passes
    gate.save_figures(record, golden, {"hybrid": {"hit_rate": 0.55, "recall_at_k": 0.6, "mrr": 0.5}})
    checks = {c.name: c for c in gate.run_gate(golden, client, gate.load_figures(record)).checks}
    assert checks["tiny hybrid vs previous deploy"].ok
    # And no file means a first deploy: nothing to compare with
    assert gate.load_figures(tmp_path / "absent.json") is None


def test_a_search_error_fails_the_gate_instead_of_scoring_zero(tmp_path: Path) -> None:
    # Given a search route that is broken
    golden = gate.load_golden(_golden(tmp_path, GOLDEN))
    checks = gate.run_gate(golden, _search_api({}, status=500)).checks

    # Then the gate fails naming the status
    assert [(c.name, c.ok) for c in checks] == [("tiny hybrid search", False)]
    assert "500" in checks[0].detail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baseline": {}}, "baseline.hybrid"),
        ({"baseline": {"hybrid": {"hit_rate": 0.5}}}, "baseline.hybrid"),
        ({"baseline": {"hybrid": {"hit_rate": 2, "recall_at_k": 0.5, "mrr": 0.5}}}, "baseline.hybrid"),
        ({"margin": 1.5}, "margin"),
        ({"modes": ["semantic"]}, "modes"),
        ({"corpus": {"documents": 5, "questions": 9}}, "corpus"),
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

    # Then its own questions expect only documents of the local sample corpus (README.md and
    # docs/*.md), it seeds them all, and it has a baseline for every metric in every mode
    relevant = {doc for q in golden.questions for doc in q.relevant}
    assert all(doc == "README.md" or (doc.startswith("docs/") and doc.endswith(".md")) for doc in relevant)
    assert relevant <= set(golden.seed)
    assert set(golden.modes) == set(gate.MODES)
    assert all(set(golden.baseline[m]) == set(gate.METRICS) for m in golden.modes)
    # And the generated corpus lies under the reserved prefix
    assert golden.corpus is not None
    assert all(key.startswith(PREFIX) for key in golden.corpus.keys)
    # And the CI/CD questions it asks are answered by a document that exists
    assert (REPO_ROOT / "docs" / "cicd.md").is_file()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"figures": 3}',
        '{"figures": {"hybrid": 3}}',
        '{"figures": {"hybrid": {"mrr": "x"}}}',
    ],
)
def test_a_malformed_previous_record_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    # Given a --previous file that is not a --record output
    record = tmp_path / "previous.json"
    record.write_text(text)
    # Then loading it fails with the gate's own error, naming the file and the shape (exit 2, no traceback)
    with pytest.raises(gate.GoldenSetError, match=r"previous\.json: needs a 'figures' object"):
        gate.load_figures(record)
