"""Answer a question: condense the conversation, retrieve, generate, and cite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from service.access import AccessScope
from service.generate.protocol import AnswerGenerator
from service.models import Citation, QueryRequest, QueryResponse, SearchHit
from service.query.citations import Renumberer
from service.search.retriever import Retrieval, Retriever

NO_ANSWER = "I could not find anything about that in the indexed documents."


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event: `token` pieces, then `citations`, then `done`."""

    event: str
    data: Any


class QueryService:
    def __init__(self, retriever: Retriever, generator: AnswerGenerator) -> None:
        self.retriever = retriever
        self.generator = generator

    def _retrieve(
        self, request: QueryRequest, scope: AccessScope, timings: dict[str, float]
    ) -> tuple[str, Retrieval]:
        question = request.question
        if request.history:
            started = time.perf_counter()
            question = self.generator.condense(request.question, request.history)
            timings["condense"] = _ms(started)
        started = time.perf_counter()
        retrieval = self.retriever.search(question, request.top_k, request.mode, request.filters, scope=scope)
        timings.update({f"search_{k}": v for k, v in retrieval.timings_ms.items()})
        timings["search"] = _ms(started)
        return question, retrieval

    def answer(self, request: QueryRequest, scope: AccessScope) -> QueryResponse:
        """Only passages `scope` may read are retrieved, so the answer and its citations hold no other."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        _, retrieval = self._retrieve(request, scope, timings)
        generated = time.perf_counter()
        text = "".join(self._generate(request.question, retrieval.hits))
        timings["generate"] = _ms(generated)
        answer, citations = finish(text, retrieval.hits)
        timings["total"] = _ms(started)
        return QueryResponse(
            answer=answer,
            citations=citations,
            mode=self.generator.name,
            search_mode=retrieval.mode,
            timings_ms=timings,
        )

    def stream(self, request: QueryRequest, scope: AccessScope) -> Iterator[StreamEvent]:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        _, retrieval = self._retrieve(request, scope, timings)
        # Tokens carry the answer's own citation numbers: the stream reads like the final answer.
        renumberer = Renumberer(retrieval.hits)
        pieces: list[str] = []
        for piece in self._generate(request.question, retrieval.hits):
            rewritten = renumberer.feed(piece)
            if rewritten:
                pieces.append(rewritten)
                yield StreamEvent("token", rewritten)
        rest = renumberer.close()
        if rest and ("".join(pieces) + rest).strip():
            pieces.append(rest)
            yield StreamEvent("token", rest)
        answer, citations = _settled("".join(pieces), renumberer)
        yield StreamEvent("citations", [c.model_dump(mode="json") for c in citations])
        timings["total"] = _ms(started)
        yield StreamEvent(
            "done",
            {
                "answer": answer,
                "mode": self.generator.name,
                "search_mode": retrieval.mode,
                "timings_ms": timings,
            },
        )

    def _generate(self, question: str, hits: list[SearchHit]) -> Iterator[str]:
        if not hits:
            return iter(())
        return self.generator.stream(question, hits)


def finish(text: str, hits: list[SearchHit]) -> tuple[str, list[Citation]]:
    """Number citations by document, drop invented markers (saying so), and say so when
    nothing relevant was found."""
    renumberer = Renumberer(hits)
    return _settled(renumberer.feed(text) + renumberer.close(), renumberer)


def _settled(text: str, renumberer: Renumberer) -> tuple[str, list[Citation]]:
    answer = text.strip()
    if not answer:
        return NO_ANSWER, []
    return answer, renumberer.citations()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
