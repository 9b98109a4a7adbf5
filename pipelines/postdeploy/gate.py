"""The retrieval gate: a golden set of questions, the documents that answer them, and thresholds.

Golden-set file (JSON)::

    {
      "name": "platform-docs",
      "top_k": 5,
      "thresholds": {"min_hit_rate": 0.8, "min_recall_at_k": 0.6, "min_mrr": 0.5},
      "seed": ["docs/cicd.md"],
      "questions": [{"question": "...", "relevant": ["docs/cicd.md"]}]
    }

`relevant` lists document ids (bucket keys); a question is a hit when any of them is in
the top k distinct documents `/v1/search` returns. recall@k and MRR follow the usual
definitions (Manning et al., *Introduction to Information Retrieval*, ch. 8).
`seed` names repository files that `--seed` uploads under their own path as key, so a
fresh environment holds the documents the questions are about.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.postdeploy.client import ApiClient, ranked_documents
from pipelines.postdeploy.report import Check, Clock, Sleep, wait_for
from pipelines.postdeploy.store import DocumentStore

THRESHOLD_KEYS = ("min_hit_rate", "min_recall_at_k", "min_mrr")


class GoldenSetError(ValueError):
    """The golden-set file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class GoldenQuestion:
    question: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class GoldenSet:
    name: str
    top_k: int
    thresholds: dict[str, float]
    questions: tuple[GoldenQuestion, ...]
    seed: tuple[str, ...] = ()


def _question(raw: object, where: str) -> GoldenQuestion:
    if not isinstance(raw, dict) or not isinstance(raw.get("question"), str):
        raise GoldenSetError(f"{where}: needs a 'question' string")
    relevant = raw.get("relevant")
    if not isinstance(relevant, list) or not relevant or not all(isinstance(d, str) for d in relevant):
        raise GoldenSetError(f"{where}: needs a non-empty 'relevant' list of document ids")
    return GoldenQuestion(raw["question"], tuple(relevant))


def load_golden(path: Path) -> GoldenSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    thresholds = data.get("thresholds", {})
    unknown = set(thresholds) - set(THRESHOLD_KEYS)
    if unknown or not thresholds:
        raise GoldenSetError(f"{path}: thresholds must be some of {THRESHOLD_KEYS}, got {sorted(thresholds)}")
    questions = data.get("questions")
    if not isinstance(questions, list) or not questions:
        raise GoldenSetError(f"{path}: 'questions' must be a non-empty list")
    top_k = data.get("top_k", 5)
    if not isinstance(top_k, int) or top_k < 1:
        raise GoldenSetError(f"{path}: 'top_k' must be a positive integer")
    return GoldenSet(
        name=str(data.get("name", path.stem)),
        top_k=top_k,
        thresholds={k: float(v) for k, v in thresholds.items()},
        questions=tuple(_question(q, f"{path} question {i}") for i, q in enumerate(questions)),
        seed=tuple(str(s) for s in data.get("seed", [])),
    )


@dataclass(frozen=True)
class Scores:
    hit_rate: float
    recall_at_k: float
    mrr: float
    misses: tuple[str, ...]

    def value(self, threshold_key: str) -> float:
        return {"min_hit_rate": self.hit_rate, "min_recall_at_k": self.recall_at_k, "min_mrr": self.mrr}[
            threshold_key
        ]


def score(golden: GoldenSet, rankings: Sequence[Sequence[str]]) -> Scores:
    """Metrics over the top-k distinct documents ranked for each golden question."""
    hits = recall = rr = 0.0
    misses: list[str] = []
    for question, ranked in zip(golden.questions, rankings, strict=True):
        top = list(ranked)[: golden.top_k]
        found = [doc for doc in question.relevant if doc in top]
        hits += bool(found)
        recall += len(found) / len(question.relevant)
        ranks = [top.index(doc) + 1 for doc in found]
        rr += 1 / min(ranks) if ranks else 0.0
        if not found:
            misses.append(f"{question.question!r} -> {top}")
    n = len(golden.questions)
    return Scores(hits / n, recall / n, rr / n, tuple(misses))


def judge(golden: GoldenSet, scores: Scores, seconds: float = 0.0) -> list[Check]:
    checks = [
        Check(
            f"{golden.name} {key.removeprefix('min_')}",
            scores.value(key) >= minimum,
            f"{scores.value(key):.3f} (min {minimum:.3f})",
            seconds,
        )
        for key, minimum in golden.thresholds.items()
    ]
    if scores.misses:
        checks.append(Check(f"{golden.name} misses", True, "; ".join(scores.misses)[:2000]))
    return checks


@dataclass(frozen=True)
class GateSettings:
    ingest_timeout: float = 600.0
    poll_interval: float = 5.0
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep


def seed(
    golden: GoldenSet, store: DocumentStore, client: ApiClient, root: Path, settings: GateSettings
) -> Check:
    """Upload the golden documents and wait until each is searchable by its own first line."""
    start = settings.clock()
    pending = []
    for doc in golden.seed:
        try:
            text = (root / doc).read_text(encoding="utf-8")
        except OSError as exc:
            return Check("seed golden documents", False, f"cannot read {doc}: {exc}")
        store.put(doc, text.encode())
        pending.append((doc, next((ln.strip("# ") for ln in text.splitlines() if ln.strip()), doc)))

    def all_searchable() -> bool:
        return all(doc in ranked_documents(client.search(probe, golden.top_k)) for doc, probe in pending)

    ok = wait_for(
        all_searchable, settings.ingest_timeout, settings.poll_interval, settings.clock, settings.sleep
    )
    return Check("seed golden documents", ok, f"{len(pending)} documents", settings.clock() - start)


def run_gate(golden: GoldenSet, client: ApiClient, clock: Clock = time.monotonic) -> list[Check]:
    start = clock()
    rankings = []
    for question in golden.questions:
        reply = client.search(question.question, golden.top_k)
        if reply.status != 200:
            return [
                Check(f"{golden.name} search", False, f"/v1/search -> {reply.status} {reply.body!r}"[:300])
            ]
        rankings.append(ranked_documents(reply))
    return judge(golden, score(golden, rankings), clock() - start)
