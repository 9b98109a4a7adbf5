"""Turn raw bytes into a `Document`: .txt, .md, .html and .pdf."""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Callable

from service.ingest.errors import PermanentIngestError
from service.models import Document

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PermanentIngestError(
            f"{name}: not valid UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def _stem_title(name: str) -> str:
    stem = posixpath.splitext(posixpath.basename(name))[0]
    return stem.replace("-", " ").replace("_", " ").strip() or name


def _parse_text(data: bytes, name: str) -> tuple[str, str]:
    text = _decode(data, name)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (first[:200] if 0 < len(first) <= 200 else _stem_title(name)), text


def _parse_markdown(data: bytes, name: str) -> tuple[str, str]:
    text = _FRONT_MATTER.sub("", _decode(data, name), count=1)
    heading = _HEADING.search(text)
    return (heading.group(1) if heading else _stem_title(name)), text


def _parse_html(data: bytes, name: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data, name), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = h1.get_text(strip=True)
    body = soup.body or soup
    text = re.sub(r"\n{3,}", "\n\n", body.get_text("\n", strip=True))
    return title or _stem_title(name), text


def _parse_pdf(data: bytes, name: str) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise PermanentIngestError(f"{name}: unreadable PDF ({error})") from None
    return (title.strip() or _stem_title(name)), "\n\n".join(p.strip() for p in pages if p.strip())


_PARSERS: dict[str, Callable[[bytes, str], tuple[str, str]]] = {
    "text/plain": _parse_text,
    "text/markdown": _parse_markdown,
    "text/html": _parse_html,
    "application/pdf": _parse_pdf,
}


def content_type_for(name: str) -> str:
    extension = posixpath.splitext(name.lower())[1]
    try:
        return CONTENT_TYPES[extension]
    except KeyError:
        supported = ", ".join(sorted(CONTENT_TYPES))
        raise PermanentIngestError(
            f"{name}: unsupported file type {extension or '(none)'!r}; supported: {supported}"
        ) from None


def parse_document(
    data: bytes,
    *,
    document_id: str,
    source: str,
    max_bytes: int,
    tags: tuple[str, ...] = (),
    name: str | None = None,
) -> Document:
    """Parse by file extension; raise `PermanentIngestError` naming what is wrong."""
    name = name or document_id
    content_type = content_type_for(name)
    if len(data) > max_bytes:
        raise PermanentIngestError(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit")
    title, text = _PARSERS[content_type](data, name)
    if not text.strip():
        raise PermanentIngestError(f"{name}: no extractable text")
    return Document(
        document_id=document_id, title=title, text=text, source=source, content_type=content_type, tags=tags
    )
