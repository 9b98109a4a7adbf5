"""Turn a generator's [n] passage markers into the answer's citations.

A generator cites passages by their 1-based position in the retrieved list. The reader sees
documents instead: citations are numbered 1, 2, 3... in order of first mention, passages of
the same document share one number, and a marker pointing at no retrieved passage is removed
and the answer says so (a citation is never invented, nor silently dropped).

`Renumberer` works on a stream: markers may arrive split across pieces ("[", "1]"), so text
that could still become a marker is held back until it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.models import Citation, SearchHit
from service.query.plaintext import one_line

_MARKER = re.compile(r"\[(\d{1,3})\]")
# A removed marker takes the space before it, so "says [9]." becomes "says.".
_SPACED_MARKER = re.compile(r"(\s?)\[(\d{1,3})\]")
# The longest tail that may still grow into a marker: optional space, "[", up to 3 digits.
_OPEN_TAIL = re.compile(r"\s?\[\d{0,3}$|\s$")


def cited_numbers(answer: str) -> list[int]:
    seen: list[int] = []
    for match in _MARKER.finditer(answer):
        number = int(match.group(1))
        if number not in seen:
            seen.append(number)
    return seen


def removal_note(removed: Sequence[int]) -> str:
    markers = ", ".join(f"[{n}]" for n in removed)
    plural = "s" if len(removed) > 1 else ""
    return f"(Removed citation{plural} {markers}: no retrieved passage has that number.)"


class Renumberer:
    """Rewrites passage markers to document citations, piece by piece."""

    def __init__(self, passages: Sequence[SearchHit]) -> None:
        self._passages = passages
        self._number_of: dict[str, int] = {}  # document id -> citation number
        self._first_hit: dict[str, SearchHit] = {}
        self._removed: list[int] = []
        self._pending = ""
        self._emitted_tail = ""

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        tail = _OPEN_TAIL.search(text)
        cut = tail.start() if tail else len(text)
        self._pending = text[cut:]
        return self._rewrite(text[:cut])

    def close(self) -> str:
        out = self._rewrite(self._pending)
        self._pending = ""
        if self._removed:
            out += ("\n\n" if self._emitted_tail.strip() else "") + removal_note(self._removed)
        return out

    def _rewrite(self, text: str) -> str:
        out: list[str] = []
        cursor = 0
        for match in _SPACED_MARKER.finditer(text):
            out.append(text[cursor : match.start()])
            out.append(self._replace(match, "".join(out)))
            cursor = match.end()
        out.append(text[cursor:])
        rewritten = "".join(out)
        self._emitted_tail = (self._emitted_tail + rewritten)[-16:]
        return rewritten

    def _replace(self, match: re.Match[str], before: str) -> str:
        space, number = match.group(1), int(match.group(2))
        if not 1 <= number <= len(self._passages):
            if number not in self._removed:
                self._removed.append(number)
            return ""
        hit = self._passages[number - 1]
        cited = self._number_of.setdefault(hit.document_id, len(self._number_of) + 1)
        self._first_hit.setdefault(hit.document_id, hit)
        marker = f"[{cited}]"
        # "[1][3]" for two passages of one document reads "[1]" once.
        if (self._emitted_tail + before).rstrip().endswith(marker):
            return ""
        return space + marker

    @property
    def removed(self) -> list[int]:
        return list(self._removed)

    def citations(self) -> list[Citation]:
        return [
            Citation(
                number=number,
                document_id=document_id,
                chunk_id=hit.chunk_id,
                title=hit.title,
                source=hit.source,
                snippet=one_line(hit.snippet),
                score=hit.score,
            )
            for document_id, number in self._number_of.items()
            for hit in [self._first_hit[document_id]]
        ]


def renumber(answer: str, passages: Sequence[SearchHit]) -> tuple[str, list[Citation]]:
    """The whole answer at once: rewritten text (with the removal note, if any) and its citations."""
    renumberer = Renumberer(passages)
    text = renumberer.feed(answer) + renumberer.close()
    return text, renumberer.citations()


def strip_unknown(answer: str, passages: int) -> str:
    """Remove markers that point at no returned passage (numbering left as it is)."""
    return _SPACED_MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(2)) <= passages else "", answer)
