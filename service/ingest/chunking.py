"""Split documents into chunks with semantic-text-splitter (sentence- and heading-aware).

Markdown chunks stand on their own: the splitter cuts a long section, or a long code block,
wherever its size runs out, which left a page's command block in a chunk with neither its
heading nor its opening fence (read as prose, never as commands) and a chunk of nothing but
"```bash". So each Markdown chunk carries the heading path it sits under (the headings not
already at its top), a chunk that starts inside a fenced block reopens it with the block's
fence line, and one that ends inside closes it. A piece that is only headings and fence lines
is dropped: the next chunk carries those headings. Decorated chunks still fit `size`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from service.ingest.ids import chunk_id, content_hash
from service.models import Chunk, Document

# CommonMark: an ATX heading is up to 3 spaces, 1-6 #, then a space (or the line's end).
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
# CommonMark: a fence is 3+ backticks or tildes; it closes on the same character, at least as many.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class _State:
    """Before a line: the headings in force (level, line, text) and the fence line of an open block."""

    headings: tuple[tuple[int, str, str], ...]
    fence: str | None


class _Outline:
    """Per line of a Markdown text, the headings and the open fenced block before it."""

    def __init__(self, text: str) -> None:
        self.starts: list[int] = []
        self.states: list[_State] = []
        headings: list[tuple[int, str, str]] = []
        fence: str | None = None
        offset = 0
        for line in text.splitlines(keepends=True):
            self.starts.append(offset)
            self.states.append(_State(tuple(headings), fence))
            offset += len(line)
            stripped = line.rstrip("\r\n")
            marker = _FENCE.match(stripped)
            if fence is not None:
                if _closes(fence, stripped):
                    fence = None
                continue
            if marker:
                fence = stripped.strip()
                continue
            heading = _HEADING.match(stripped)
            if heading:
                level = len(heading.group(1))
                entry = (level, stripped.strip(), (heading.group(2) or "").strip())
                headings = [h for h in headings if h[0] < level] + [entry]
        self.starts.append(offset)
        self.states.append(_State(tuple(headings), fence))

    def at(self, offset: int) -> _State:
        """The state before the line holding `offset`."""
        return self.states[bisect.bisect_right(self.starts, offset) - 1]

    def after(self, offset: int) -> _State:
        """The state after the line holding `offset - 1` (the last character of a piece)."""
        return self.states[bisect.bisect_right(self.starts, max(offset - 1, 0))]


def _run(fence: str) -> str:
    """The backticks or tildes that open `fence`: what closes its block."""
    marker = _FENCE.match(fence)
    return marker.group(1) if marker else "```"


def _closes(fence: str, line: str) -> bool:
    """Whether `line` closes the block `fence` opened: the same character, at least as many, no text."""
    opened, marker = _run(fence), _FENCE.match(line)
    return bool(
        marker
        and marker.group(1)[0] == opened[0]
        and len(marker.group(1)) >= len(opened)
        and not line[marker.end() :].strip()
    )


def _past_closing_fence(outline: _Outline, start: int, piece: str) -> tuple[int, str]:
    """A piece that starts on the closing fence of a block before it holds none of that block:
    it starts after that line."""
    fence = outline.at(start).fence
    first, _, rest = piece.partition("\n")
    if fence is None or not _closes(fence, first):
        return start, piece
    rest = rest.lstrip()
    return start + len(piece) - len(rest), rest


def _only_structure(piece: str) -> bool:
    """Nothing but headings and fence lines: no content of its own."""
    return all(_HEADING.match(line) or _FENCE.match(line) for line in piece.splitlines() if line.strip())


class Chunker:
    """Character-sized chunks with overlap; Markdown is split on its structure first."""

    def __init__(self, size: int, overlap: int) -> None:
        if overlap >= size:
            raise ValueError(f"chunk overlap {overlap} must be smaller than chunk size {size}")
        self.size = size
        self.overlap = overlap
        # A chunk's heading path and fence lines take at most this much of it.
        self.reserve = size // 4
        self._text = TextSplitter(size, overlap=overlap, trim=True)
        self._markdown = MarkdownSplitter(size, overlap=overlap, trim=True)

    def split(self, document: Document) -> list[Chunk]:
        if document.content_type == "text/markdown":
            pieces = self._markdown_pieces(document.text, document.title)
        else:
            pieces = list(self._text.chunks(document.text))
        return self._chunks(document, [p for p in pieces if p.strip()])

    def _markdown_pieces(self, text: str, title: str) -> list[str]:
        outline = _Outline(text)
        raw = self._markdown.chunk_indices(text)
        out: list[str] = []
        for start, piece in (_past_closing_fence(outline, at, part) for at, part in raw):
            if _only_structure(piece):
                continue
            decorated = self._decorate(outline, start, piece, title)
            if len(decorated) <= self.size:
                out.append(decorated)
            else:
                out.extend(self._split_again(outline, start, piece, title, len(decorated) - len(piece)))
        # A document of nothing but headings still has a chunk.
        return out or [piece for _, piece in raw]

    def _split_again(self, outline: _Outline, start: int, piece: str, title: str, extra: int) -> list[str]:
        """A piece too long with its headings and fences, split so each part fits with its own:
        first leaving room for the piece's own (`extra`), then for the most any part can get."""
        parts: list[tuple[int, str]] = []
        for capacity in (self.size - extra, self.size - self.reserve):
            splitter = MarkdownSplitter(capacity, overlap=min(self.overlap, capacity // 2), trim=True)
            parts = [
                _past_closing_fence(outline, start + at, part) for at, part in splitter.chunk_indices(piece)
            ]
            parts = [(at, part) for at, part in parts if not _only_structure(part)]
            decorated = [self._decorate(outline, at, part, title) for at, part in parts]
            if all(len(chunk) <= self.size for chunk in decorated):
                return decorated
        # Only fence lines of absurd length get here: the bare parts, which fit.
        return [part for _, part in parts]

    def _decorate(self, outline: _Outline, start: int, piece: str, title: str) -> str:
        """`piece` (at `start` of the text) under its heading path, its fenced block reopened/closed."""
        before = outline.at(start)
        first = next((line for line in piece.splitlines() if line.strip()), "")
        top = _HEADING.match(first) if before.fence is None else None
        # The piece's own first heading replaces those of its level and below.
        level = len(top.group(1)) if top else 7
        # The title heading is left out: the chunk's title already carries it (searched, embedded).
        path = [line for depth, line, name in before.headings if depth < level and name != title]
        opener = before.fence
        if opener and len(opener) > self.reserve // 2:  # a long info string: the bare fence will do
            opener = _run(opener)
        closer = outline.after(start + len(piece)).fence
        close = _run(closer) if closer else ""
        budget = self.reserve - (len(opener) + 1 if opener else 0) - (len(close) + 1 if close else 0)
        while path and sum(len(line) + 2 for line in path) > budget:
            path.pop(0)  # the outermost headings go first
        head = "".join(f"{line}\n\n" for line in path) + (f"{opener}\n" if opener else "")
        return head + piece + (f"\n{close}" if close else "")

    def _chunks(self, document: Document, pieces: Sequence[str]) -> list[Chunk]:
        chunks = []
        for position, text in enumerate(pieces):
            digest = content_hash(text)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(document.document_id, position, digest),
                    document_id=document.document_id,
                    position=position,
                    title=document.title,
                    text=text,
                    source=document.source,
                    content_hash=digest,
                    tags=document.tags,
                    published=document.published,
                    workspace=document.workspace,
                    allowed_users=document.allowed_users,
                    allowed_groups=document.allowed_groups,
                )
            )
        return chunks
