"""Hybrid fusion: convex z-score (the default), min-max and RRF."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.access import operator_scope
from service.contract import SearchMode
from service.models import SearchHit
from service.search import fusion
from service.search.fusion import Fusion
from service.settings import load_settings
from service.wiring import Container


def hit(chunk_id: str, score: float) -> SearchHit:
    return SearchHit(
        chunk_id=chunk_id, document_id=chunk_id, title="", source="", text="", snippet="", score=score
    )


def hits(*pairs: tuple[str, float]) -> list[SearchHit]:
    return [hit(cid, score) for cid, score in pairs]


@pytest.mark.parametrize("method", list(Fusion))
def test_a_chunk_top_of_both_lists_wins(method: Fusion) -> None:
    # Given a chunk ranked first by BM25 and by the vector search
    lexical = hits(("both", 12.0), ("lex-only", 9.0), ("c", 3.0))
    semantic = hits(("both", 0.81), ("vec-only", 0.80), ("c", 0.2))
    # When the lists are fused
    fused = fusion.fuse(method, lexical, semantic, alpha=0.5, k=10)
    # Then it is first, and every chunk of either list appears once
    assert fused[0].chunk_id == "both"
    assert sorted(h.chunk_id for h in fused) == ["both", "c", "lex-only", "vec-only"]


def test_alpha_weights_the_vector_list() -> None:
    # Given two chunks each found by one list only
    lexical, semantic = hits(("lex", 5.0), ("x", 1.0)), hits(("vec", 0.9), ("x", 0.1))
    # When alpha favours one side, then that side's chunk leads
    assert fusion.convex(lexical, semantic, alpha=0.9, k=3)[0].chunk_id == "vec"
    assert fusion.convex(lexical, semantic, alpha=0.1, k=3)[0].chunk_id == "lex"


def test_minmax_edge_cases() -> None:
    # Given an empty list, a single hit and a list of equal scores
    # Then: nothing; the single hit is 1; equal scores are all 1
    assert fusion.minmax([]) == {}
    assert fusion.minmax(hits(("a", 7.5))) == {"a": 1.0}
    assert fusion.minmax(hits(("a", 2.0), ("b", 2.0))) == {"a": 1.0, "b": 1.0}
    assert fusion.minmax(hits(("a", 3.0), ("b", 2.0), ("c", 1.0))) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_one_empty_list_keeps_the_other_order() -> None:
    # Given BM25 found nothing (e.g. a query of stop words only)
    semantic = hits(("a", 0.9), ("b", 0.5), ("c", 0.4))
    # When fused, then the vector order is kept and k is respected
    for method in Fusion:
        assert [h.chunk_id for h in fusion.fuse(method, [], semantic, 0.5, 2)] == ["a", "b"]
    assert fusion.fuse(Fusion.CONVEX, [], [], 0.5, 10) == []


def test_equal_fused_scores_keep_the_vector_order() -> None:
    # Given two chunks with the same fused score
    lexical, semantic = hits(("b", 1.0), ("a", 0.0)), hits(("a", 1.0), ("b", 0.0))
    # When fused at alpha 0.5, then the vector list's first chunk comes first
    assert [h.chunk_id for h in fusion.convex(lexical, semantic, 0.5, 2)] == ["a", "b"]


def test_rrf_uses_ranks_not_scores() -> None:
    # Given lists whose scores differ wildly but ranks agree
    fused = fusion.rrf(hits(("a", 1000.0), ("b", 0.001)), hits(("a", 0.3), ("b", 0.29)), k=2)
    # Then scores are sums of 1/(60 + rank)
    assert fused[0].score == pytest.approx(2 / 61, abs=1e-6)
    assert fused[1].score == pytest.approx(2 / 62, abs=1e-6)


def test_lexical_snippet_is_kept_for_chunks_in_both_lists() -> None:
    # Given the same chunk from both lists with different snippets
    lexical = [hit("a", 1.0).model_copy(update={"snippet": "<mark>term</mark>"})]
    semantic = [hit("a", 0.5)]
    # Then the fused hit carries the BM25 snippet
    assert fusion.convex(lexical, semantic, 0.5, 1)[0].snippet == "<mark>term</mark>"


scores = st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False), min_size=0, max_size=12)


def scored(prefix: str, values: list[float]) -> list[SearchHit]:
    ordered = sorted(values, reverse=True)
    return [hit(f"{prefix}{i}", v) for i, v in enumerate(ordered)]


@given(lex=scores, sem=scores, shared=st.integers(0, 12), alpha=st.floats(0, 1))
def test_fused_scores_lie_in_unit_interval(
    lex: list[float], sem: list[float], shared: int, alpha: float
) -> None:
    # Given arbitrary lists that share some chunk ids
    lexical = scored("c", lex)
    semantic = scored("c", sem[:shared]) + scored("s", sem[shared:])
    # When fused by convex min-max and by RRF
    # Then every score is in [0, 1]
    for method in (Fusion.CONVEX, Fusion.RRF):
        for h in fusion.fuse(method, lexical, semantic, alpha, 30):
            assert 0.0 <= h.score <= 1.0


@given(
    lex=st.lists(st.floats(0, 30, allow_nan=False), min_size=2, max_size=10, unique=True),
    sem=st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=10, unique=True),
    alpha=st.floats(0.05, 0.95),
)
def test_fused_order_is_monotone_in_each_input(lex: list[float], sem: list[float], alpha: float) -> None:
    # Given chunks found by both lists, with the same ids in each
    n = min(len(lex), len(sem))
    lexical = [hit(f"c{i}", s) for i, s in enumerate(lex[:n])]
    semantic = [hit(f"c{i}", s) for i, s in enumerate(sem[:n])]
    lex_norm, sem_norm = fusion.minmax(lexical), fusion.minmax(semantic)
    fused = {h.chunk_id: h.score for h in fusion.convex(lexical, semantic, alpha, n)}
    # Then a chunk at least as good in both normalised inputs is fused at least as high
    for a, score_a in fused.items():
        for b, score_b in fused.items():
            if lex_norm[a] >= lex_norm[b] and sem_norm[a] >= sem_norm[b]:
                assert score_a >= score_b - 1e-6


# -- values computed independently of the code under test (issue 16) ------------------------------


def test_minmax_spreads_real_cosine_scores_whose_range_is_below_one() -> None:
    # Given MiniLM cosine similarities: a narrow range, far below 1
    semantic = hits(("a", 0.82), ("b", 0.80), ("c", 0.78))
    # When they are normalised
    normalised = fusion.minmax(semantic)
    # Then they span [0, 1] by hand: (0.80 - 0.78) / (0.82 - 0.78) = 0.5; not all 1
    assert normalised == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})


def test_convex_fusion_of_cosine_and_bm25_scores_by_hand() -> None:
    # Given BM25 scores and cosine scores, with one chunk in both lists
    lexical = hits(("x", 9.0), ("y", 6.0), ("z", 3.0))
    semantic = hits(("y", 0.90), ("w", 0.84), ("x", 0.81))
    # When fused at alpha 0.25 (the vector list weighs a quarter)
    fused = {h.chunk_id: h.score for h in fusion.fuse(Fusion.CONVEX, lexical, semantic, alpha=0.25, k=10)}
    # Then each score is 0.25 * mm(vector) + 0.75 * mm(bm25), worked out by hand:
    # mm(bm25): x 1, y 0.5, z 0; mm(vector): y 1, w (0.84-0.81)/(0.90-0.81) = 1/3, x 0
    assert fused == {
        "x": 0.75,
        "y": 0.25 + 0.75 * 0.5,
        "w": 0.083333,  # 0.25 / 3, reported to six decimal places
        "z": 0.0,
    }


def test_zscore_values_by_hand() -> None:
    # Given scores 3, 2 and 1: mean 2, population standard deviation sqrt(2/3)
    spread = statistics.pstdev([3.0, 2.0, 1.0])
    assert spread == pytest.approx(math.sqrt(2 / 3))
    # When z-score normalised
    normalised = fusion.zscore(hits(("a", 3.0), ("b", 2.0), ("c", 1.0)))
    # Then each is its distance above the weakest, in standard deviations
    assert normalised == pytest.approx({"a": 2 / spread, "b": 1 / spread, "c": 0.0})
    # And the result does not depend on where the scores lie, only on their spread
    shifted = fusion.zscore(hits(("a", 0.53), ("b", 0.52), ("c", 0.51)))
    assert shifted == pytest.approx(normalised)


@pytest.mark.parametrize("score", [0.0, 0.81, 7.5, -0.2])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_zscore_of_equal_scores_is_zero_and_never_fails(score: float, size: int) -> None:
    # Given a list whose scores are all equal (its spread is 0), e.g. a single hit
    equal = [hit(f"c{i}", score) for i in range(size)]
    # When normalised, alone and fused with another list
    normalised = fusion.zscore(equal)
    fused = fusion.fuse(Fusion.ZSCORE, equal, hits(("v", 0.9), ("c0", 0.5)), alpha=0.5, k=10)
    # Then every candidate is the weakest one (0), and fusion ranks by the other list
    assert normalised == {f"c{i}": 0.0 for i in range(size)}
    assert fused[0].chunk_id == "v"


def test_fuse_runs_the_method_it_is_asked_for() -> None:
    # Given two lists on which the three methods disagree
    lexical = hits(("a", 10.0), ("b", 9.0), ("c", 1.0))
    semantic = hits(("c", 0.9), ("b", 0.5), ("a", 0.49))
    fused = {method: fusion.fuse(method, lexical, semantic, alpha=0.5, k=3) for method in Fusion}
    # Then CONVEX is min-max: a = 0.5 * 1 + 0.5 * 0 and so on, by hand
    mm_b = (0.5 - 0.49) / (0.9 - 0.49)
    assert {h.chunk_id: h.score for h in fused[Fusion.CONVEX]} == pytest.approx(
        {"a": 0.5, "b": round(0.5 * mm_b + 0.5 * (8 / 9), 6), "c": 0.5}, abs=1e-6
    )
    # And ZSCORE divides by each list's standard deviation
    lex_sd, sem_sd = statistics.pstdev([10.0, 9.0, 1.0]), statistics.pstdev([0.9, 0.5, 0.49])
    assert {h.chunk_id: h.score for h in fused[Fusion.ZSCORE]} == pytest.approx(
        {
            "a": 0.5 * 9 / lex_sd,
            "b": 0.5 * 8 / lex_sd + 0.5 * (0.5 - 0.49) / sem_sd,
            "c": 0.5 * (0.9 - 0.49) / sem_sd,
        },
        abs=1e-6,
    )
    # And RRF uses ranks only, 1 / (60 + rank) from each list
    assert {h.chunk_id: h.score for h in fused[Fusion.RRF]} == pytest.approx(
        {"a": 1 / 61 + 1 / 63, "b": 2 / 62, "c": 1 / 63 + 1 / 61}, abs=1e-6
    )


class _Lists:
    """A backend that answers BM25 and k-NN with fixed lists (the retriever only fuses them)."""

    def __init__(self, lexical: list[SearchHit], semantic: list[SearchHit]) -> None:
        self.lexical, self.semantic = lexical, semantic

    def bm25(self, *_: object, **__: object) -> list[SearchHit]:
        return self.lexical

    def knn(self, *_: object, **__: object) -> list[SearchHit]:
        return self.semantic


class _Embedder:
    dimension = 2

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0]


def test_the_platform_fuses_z_scores_by_default(tmp_path: Path) -> None:
    # Given two lists on which min-max and z-score disagree: min-max ties a and c (the vector
    # order then puts c first); z-score puts a first (issue 14: z-score lifted both collections)
    lexical = hits(("a", 10.0), ("b", 9.0), ("c", 1.0))
    semantic = hits(("c", 0.9), ("b", 0.5), ("a", 0.49))
    assert [h.chunk_id for h in fusion.fuse(Fusion.CONVEX, lexical, semantic, 0.5, 3)] == ["c", "a", "b"]
    # When the platform's retriever, wired as the API wires it, runs a hybrid search
    backend = _Lists(lexical, semantic)
    container = Container(load_settings(data_dir=tmp_path), backend=backend, embedder=_Embedder())
    found = container.retriever.search("q", 3, SearchMode.HYBRID, scope=operator_scope())
    # Then the ranking is z-score's
    assert [h.chunk_id for h in found.hits] == ["a", "c", "b"]
