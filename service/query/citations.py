"""Map [n] markers in an answer to the passages retrieval returned; drop any other marker."""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.models import Citation, SearchHit

_MARKER = re.compile(r"\[(\d{1,3})\]")
# A removed marker takes the space before it, so "says [9]." becomes "says.".
_SPACED_MARKER = re.compile(r"\s?\[(\d{1,3})\]")


def cited_numbers(answer: str) -> list[int]:
    seen: list[int] = []
    for match in _MARKER.finditer(answer):
        number = int(match.group(1))
        if number not in seen:
            seen.append(number)
    return seen


def strip_unknown(answer: str, passages: int) -> str:
    """Remove markers that point at no returned passage: a citation is never invented."""
    return _SPACED_MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= passages else "", answer)


def citations_for(answer: str, passages: Sequence[SearchHit]) -> list[Citation]:
    out = []
    for number in cited_numbers(answer):
        if 1 <= number <= len(passages):
            hit = passages[number - 1]
            out.append(
                Citation(
                    number=number,
                    document_id=hit.document_id,
                    chunk_id=hit.chunk_id,
                    title=hit.title,
                    source=hit.source,
                    snippet=hit.snippet,
                    score=hit.score,
                )
            )
    return out
