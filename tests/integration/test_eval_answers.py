"""`ragctl eval --answers`: the golden answer set and how answers are scored against it."""

from __future__ import annotations

import pytest

from pipelines.evaluate_answers import (
    DEFAULT_GOLDEN,
    REPO_ROOT,
    GoldenAnswer,
    evaluate_answers,
    load_answers,
    score_answer,
)
from service.generate.extractive import ExtractiveGenerator
from service.ingest.chunking import Chunker
from tests.factories import HashingEmbedder

GOLDEN = GoldenAnswer(
    "How do I deploy?", ("docs/deploying.md",), ("docs/cicd.md",), ("pulumi up", "make package")
)


def test_the_golden_answer_set_covers_what_a_forker_asks_about_pages_that_exist() -> None:
    # Given the shipped golden answer set
    golden = load_answers(DEFAULT_GOLDEN)
    # Then every document it names exists, and deploy, add a stack, DLQ redrive, key rotation
    # and roll back are all asked about
    named = {doc for item in golden for doc in (*item.cite, *item.also)}
    assert all((REPO_ROOT / doc).is_file() for doc in named), named
    asked = " ".join(item.question.lower() for item in golden)
    for topic in ("deploy", "add a new stack", "redrive", "rotate", "roll back"):
        assert topic in asked


@pytest.mark.parametrize(
    ("answer", "cited", "figures"),
    [
        ("Run make package then pulumi up.", ["docs/deploying.md"], (1.0, 1.0, 1.0)),
        ("Run pulumi up.", ["docs/cicd.md"], (1.0, 0.0, 0.5)),
        ("Run pulumi up.", ["docs/deploying.md", "README.md", "docs/deploying.md"], (0.5, 1.0, 0.5)),
        ("I could not find anything.", [], (0.0, 0.0, 0.0)),
    ],
)
def test_citation_precision_recall_and_coverage_follow_their_definitions(
    answer: str, cited: list[str], figures: tuple[float, float, float]
) -> None:
    # Given an answer and the documents it cites / Then the figures are as defined
    scored = score_answer(GOLDEN, answer, cited)
    assert (scored.precision, scored.recall, scored.coverage) == figures


def test_answers_are_scored_per_generator_over_the_platforms_own_docs() -> None:
    # Given the golden set and the extractive generator, on the repository's docs
    golden = load_answers(DEFAULT_GOLDEN)[:3]
    # When evaluated (a hashing embedder stands in for MiniLM)
    result = evaluate_answers(
        golden, [ExtractiveGenerator()], HashingEmbedder(), Chunker(1000, 100), alpha=0.5, candidates=100
    )
    # Then each question has its answer, citations and figures, and the means lie in [0, 1]
    figures = result["generators"]["extractive"]  # type: ignore[index]
    assert len(figures["questions"]) == 3
    assert all(0.0 <= figures[k] <= 1.0 for k in ("citation_precision", "citation_recall", "coverage"))
    assert all(q["answer"] for q in figures["questions"])
