"""`ragctl eval --answers`: do answers cite the right page and say what the page says?

The golden answer set (`pipelines/golden/answers.json`) holds questions a forker asks about this
platform's own docs, each naming the document(s) its answer must cite (`cite`), others that may
also be cited without penalty (`also`), and phrases a complete answer contains (`mention`,
usually the command). The docs are indexed exactly as the local platform ingests its sample
corpus (README.md and docs/*.md, parsed, chunked and embedded by the platform's own code) in a
temporary index, and each question goes through the platform's `QueryService`.

Per question, over the cited documents C, the required R and the acceptable A = R + also:
citation precision |C & A| / |C| (0 when nothing is cited), citation recall |C & R| / |R|,
coverage = share of `mention` phrases in the answer (case-insensitive). Reported as means.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.access import DEFAULT_WORKSPACE, operator_scope
from service.embed.protocol import Embedder
from service.generate.protocol import AnswerGenerator
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.parse import parse_document
from service.models import QueryRequest
from service.query.service import QueryService
from service.search.local import LocalSearchBackend
from service.search.retriever import Retriever

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GOLDEN = Path(__file__).resolve().parent / "golden" / "answers.json"
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class GoldenAnswer:
    question: str
    cite: tuple[str, ...]
    also: tuple[str, ...]
    mention: tuple[str, ...]


@dataclass(frozen=True)
class AnswerScore:
    question: str
    answer: str
    cited: tuple[str, ...]
    precision: float
    recall: float
    coverage: float


def load_answers(path: Path) -> list[GoldenAnswer]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, raw in enumerate(data.get("questions", [])):
        if not isinstance(raw.get("question"), str) or not raw.get("cite"):
            raise ValueError(f"{path} question {index}: needs 'question' and a non-empty 'cite' list")
        out.append(
            GoldenAnswer(
                raw["question"],
                tuple(raw["cite"]),
                tuple(raw.get("also", [])),
                tuple(raw.get("mention", [])),
            )
        )
    if not out:
        raise ValueError(f"{path}: 'questions' must be a non-empty list")
    return out


def corpus_files(root: Path = REPO_ROOT) -> list[Path]:
    """The local platform's sample corpus: README.md and docs/*.md (as `ragctl dev` ingests it)."""
    readme = root / "README.md"
    return ([readme] if readme.exists() else []) + sorted((root / "docs").glob("*.md"))


def score_answer(golden: GoldenAnswer, answer: str, cited: Sequence[str]) -> AnswerScore:
    distinct = tuple(dict.fromkeys(cited))
    acceptable = set(golden.cite) | set(golden.also)
    precision = sum(doc in acceptable for doc in distinct) / len(distinct) if distinct else 0.0
    recall = sum(doc in distinct for doc in golden.cite) / len(golden.cite)
    lowered = answer.lower()
    coverage = (
        sum(phrase.lower() in lowered for phrase in golden.mention) / len(golden.mention)
        if golden.mention
        else 1.0
    )
    return AnswerScore(golden.question, answer, distinct, precision, recall, coverage)


def summarise(scores: Sequence[AnswerScore]) -> dict[str, float]:
    n = len(scores)
    return {
        "citation_precision": round(sum(s.precision for s in scores) / n, 4),
        "citation_recall": round(sum(s.recall for s in scores) / n, 4),
        "coverage": round(sum(s.coverage for s in scores) / n, 4),
    }


def build_docs_index(
    directory: Path,
    files: Sequence[Path],
    root: Path,
    embedder: Embedder,
    chunker: Chunker,
    *,
    workspace: str = DEFAULT_WORKSPACE,
) -> LocalSearchBackend:
    """The files indexed into `workspace` of a new index in `directory`."""
    backend = LocalSearchBackend(directory, embedder.dimension)
    backend.ensure_index()
    indexer = Indexer(backend, embedder, chunker)
    for path in files:
        key = path.relative_to(root).as_posix()
        document = parse_document(
            path.read_bytes(), document_id=key, source=key, max_bytes=MAX_DOCUMENT_BYTES
        )
        indexer.index(document.model_copy(update={"workspace": workspace}))
    return backend


def evaluate_answers(
    golden: Sequence[GoldenAnswer],
    generators: Sequence[AnswerGenerator],
    embedder: Embedder,
    chunker: Chunker,
    *,
    alpha: float,
    candidates: int,
    top_k: int = 5,
    root: Path = REPO_ROOT,
    workspace: str = DEFAULT_WORKSPACE,
) -> dict[str, object]:
    """Per generator: the mean figures and each question's answer, citations and scores, asked
    within `workspace` (its `AccessScope`, as the API scopes a caller's question)."""
    scope = operator_scope(workspace)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ragctl-answers-") as tmp:
        backend = build_docs_index(
            Path(tmp), corpus_files(root), root, embedder, chunker, workspace=scope.workspace
        )
        retriever = Retriever(backend, embedder, alpha=alpha, candidates=candidates)
        try:
            for generator in generators:
                service = QueryService(retriever, generator)
                scores = []
                for item in golden:
                    request = QueryRequest(question=item.question, top_k=top_k, workspace=scope.workspace)
                    response = service.answer(request, scope)
                    cited = [c.document_id for c in response.citations]
                    scores.append(score_answer(item, response.answer, cited))
                results[generator.name] = {
                    **summarise(scores),
                    "questions": [
                        {
                            "question": s.question,
                            "cited": list(s.cited),
                            "precision": round(s.precision, 3),
                            "recall": round(s.recall, 3),
                            "coverage": round(s.coverage, 3),
                            "answer": s.answer,
                        }
                        for s in scores
                    ],
                }
        finally:
            backend.close()
    return {"golden": len(golden), "top_k": top_k, "workspace": scope.workspace, "generators": results}
