"""The local default: quote the best sentences of the best passages, with their [n] citations.

No model, no network: it scores each sentence of the retrieved passages by the
query words it contains (stemmed), and quotes the best few in passage order of
relevance. The response says `mode: extractive` so nobody mistakes it for a
generated answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from service.models import SearchHit, Turn

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[#*\-\d])")
_WORD = re.compile(r"[a-z0-9]+")
_MARKUP = re.compile(r"[`*_#>|]+|\[([^\]]*)\]\([^)]*\)")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "should",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def keywords(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def _is_prose(sentence: str) -> bool:
    """Commands and code read badly as a quoted answer: keep sentences that are mostly words."""
    letters = sum(ch.isalnum() or ch.isspace() for ch in sentence)
    return letters >= 0.85 * len(sentence) and not any(mark in sentence for mark in ("\\", "{", "$"))


def _clean(sentence: str) -> str:
    return re.sub(r"\s+", " ", _MARKUP.sub(r"\1", sentence)).strip()


class ExtractiveGenerator:
    """Quotes up to `max_sentences` sentences, each followed by its passage's [n]."""

    def __init__(self, max_sentences: int = 3, max_chars: int = 600) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars

    @property
    def name(self) -> str:
        return "extractive"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        # Without a model, carry the previous user turn's keywords so "and in prod?" still retrieves.
        previous = [t.content for t in history if t.role == "user"]
        return f"{previous[-1]} {question}" if previous else question

    def _ranked_sentences(self, question: str, passages: Sequence[SearchHit]) -> list[tuple[float, int, str]]:
        wanted = keywords(question)
        scored: list[tuple[float, int, str]] = []
        for number, passage in enumerate(passages, 1):
            for order, raw in enumerate(_SENTENCE.split(passage.text)):
                sentence = _clean(raw)
                if len(sentence) < 20 or not _is_prose(sentence):
                    continue
                overlap = len(wanted & keywords(sentence))
                if overlap == 0:
                    continue
                # Earlier passages and earlier sentences win ties: retrieval already ranked them.
                scored.append((overlap - 0.1 * number - 0.001 * order, number, sentence))
        scored.sort(key=lambda item: item[0], reverse=True)
        return scored

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        chosen: list[tuple[int, str]] = []
        used = 0
        for _, number, sentence in self._ranked_sentences(question, passages):
            if len(chosen) == self.max_sentences or (chosen and used + len(sentence) > self.max_chars):
                break
            chosen.append((number, sentence))
            used += len(sentence)
        for index, (number, sentence) in enumerate(chosen):
            yield ("" if index == 0 else " ") + f"{sentence} [{number}]"
