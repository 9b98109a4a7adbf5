"""The gate discriminates: a ranker that ignores the question fails it with probability < 1%.

A query-blind ranker returns a ranking drawn from one distribution whatever the question.
Two families cover it: a fixed ranking (the best is the documents most often relevant, first),
for which the number of questions it can hit is counted exactly; and random rankings drawn
afresh for every question, simulated many times.
"""

from __future__ import annotations

import random
from collections import Counter

from pipelines.postdeploy import gate
from pipelines.postdeploy.cli import DEFAULT_GOLDEN

TRIALS = 1000  # 0 passes in 1,000 runs puts the 95% upper bound on p at 0.3% (rule of three)


def _golden() -> gate.GoldenSet:
    return gate.load_golden(DEFAULT_GOLDEN)


def _candidates(golden: gate.GoldenSet) -> list[str]:
    """Every document a stack holds during the gate: the corpus and the seeded repository files."""
    assert golden.corpus is not None
    relevant = {doc for q in golden.all_questions for doc in q.relevant}
    return sorted(set(golden.corpus.keys) | set(golden.seed) | relevant)


def _passes_every_mode(golden: gate.GoldenSet, scores: gate.Scores) -> bool:
    return any(gate.passes(golden, mode, scores) for mode in golden.modes)


def test_the_best_fixed_ranking_cannot_pass() -> None:
    # Given the shipped golden set, and the fixed ranking that hits the most questions:
    # the documents relevant to the most questions, first
    golden = _golden()
    questions = golden.all_questions
    popularity = Counter(doc for q in questions for doc in q.relevant)
    best = [doc for doc, _ in popularity.most_common()]
    # When every question gets that ranking
    scores = gate.score(questions, [best] * len(questions), golden.top_k)
    # Then it fails in every mode, with room to spare
    assert not _passes_every_mode(golden, scores)
    assert scores.hit_rate < min(golden.threshold(m, "hit_rate") for m in golden.modes) / 2


def test_random_query_blind_rankers_fail_with_probability_below_one_percent() -> None:
    # Given rankers that draw a random ranking for every question, uniformly or weighted
    # towards the popular documents (a cleverer guess)
    golden = _golden()
    questions = golden.all_questions
    candidates = _candidates(golden)
    popularity = Counter(doc for q in questions for doc in q.relevant)
    weights = [1 + 50 * popularity[doc] for doc in candidates]
    rng = random.Random(14)

    def uniform() -> list[str]:
        return rng.sample(candidates, golden.top_k)

    def weighted() -> list[str]:
        picked: list[str] = []
        while len(picked) < golden.top_k:
            doc = rng.choices(candidates, weights)[0]
            if doc not in picked:
                picked.append(doc)
        return picked

    for ranker in (uniform, weighted):
        # When the gate is run TRIALS times with it
        passed = sum(
            _passes_every_mode(golden, gate.score(questions, [ranker() for _ in questions], golden.top_k))
            for _ in range(TRIALS)
        )
        # Then it passes in fewer than 1% of the runs
        assert passed / TRIALS < 0.01, (ranker.__name__, passed)


def test_the_golden_set_is_large_and_specific_enough_to_discriminate() -> None:
    # Given the shipped golden set
    golden = _golden()
    assert golden.corpus is not None
    # Then the stack holds hundreds of documents during the gate, every generated question has
    # its own answering document, and each of them has near-miss distractors
    assert len(golden.corpus.documents) >= 200
    generated = [q.relevant for q in golden.corpus.questions]
    assert len(generated) >= 40
    assert len(set(generated)) == len(generated)
    for document in golden.corpus.documents:
        adjective, animal = document.service.split("-")
        near = [
            d
            for d in golden.corpus.documents
            if d is not document and {adjective, animal} & set(d.service.split("-"))
        ]
        assert near, document.key
