"""The answer-generator protocol."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from service.models import SearchHit, Turn


class GenerationError(RuntimeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class AnswerGenerator(Protocol):
    @property
    def name(self) -> str:
        """Shown to clients as the response `mode`, e.g. `extractive`."""
        ...

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        """Yield the answer in pieces. Sources are cited as [n], n being the 1-based passage number."""
        ...

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """Rewrite a follow-up question into a standalone one, using the conversation so far."""
        ...
