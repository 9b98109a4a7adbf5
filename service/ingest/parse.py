"""Turn raw bytes into a `Document`, by file extension.

Formats: prose (.txt), markdown, HTML, PDF, Word (.docx), PowerPoint (.pptx), Excel
(.xlsx), CSV/TSV, JSON, and source/config files (indexed verbatim). The parsers live in
`service.ingest.formats`.

Whatever a parser raises becomes a `PermanentIngestError` with a reason: the same bytes
fail the same way on every retry, so the message belongs in the DLQ, never in a retry loop.
Text that is mostly control characters (a binary file with a text extension) is refused
with a reason instead of being indexed as garbage.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from service.access import DEFAULT_WORKSPACE
from service.ingest.errors import PermanentIngestError
from service.ingest.formats import html, office, pdf, tabular, text
from service.models import Document

Parser = Callable[[bytes, str], tuple[str, str]]

_CODE = "text/x-source"
# Source and configuration files, indexed verbatim (see `formats.text.parse_code`).
_CODE_EXTENSIONS = (
    *(".py", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".kts", ".scala"),
    *(".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh", ".bash", ".sql"),
    *(".r", ".lua", ".pl", ".css", ".scss", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf"),
    *(".tf", ".proto", ".graphql", ".gradle", ".rst", ".tex"),
)

CONTENT_TYPES: dict[str, str] = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    **{extension: _CODE for extension in _CODE_EXTENSIONS},
}

_PARSERS: dict[str, Parser] = {
    "text/plain": text.parse_text,
    "text/markdown": text.parse_markdown,
    _CODE: text.parse_code,
    "text/html": html.parse_html,
    "application/pdf": pdf.parse_pdf,
    CONTENT_TYPES[".docx"]: office.parse_docx,
    CONTENT_TYPES[".pptx"]: office.parse_pptx,
    CONTENT_TYPES[".xlsx"]: office.parse_xlsx,
    "text/csv": tabular.parse_csv,
    "text/tab-separated-values": tabular.parse_csv,
    "application/json": tabular.parse_json,
}

# C0 and C1 control characters other than the whitespace ones text legitimately holds.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Share of control characters above which extracted text is taken for binary: real prose,
# code and PDF text extraction stay far below 1 in 100. A few strays (a bell in a heading,
# a form feed from a PDF) are tolerated whatever the length.
MAX_CONTROL_SHARE = 0.01
TOLERATED_CONTROLS = 8


def content_type_for(name: str) -> str:
    extension = posixpath.splitext(name.lower())[1]
    try:
        return CONTENT_TYPES[extension]
    except KeyError:
        supported = ", ".join(sorted(CONTENT_TYPES))
        raise PermanentIngestError(
            f"{name}: unsupported file type {extension or '(none)'!r}; supported: {supported}"
        ) from None


def reject_binary(extracted: str, name: str) -> None:
    """Refuse text that is really binary data: NUL bytes, or too many control characters."""
    if "\x00" in extracted:
        raise PermanentIngestError(f"{name}: binary content (NUL bytes), not text")
    controls = len(_CONTROL.findall(extracted))
    if controls > max(TOLERATED_CONTROLS, MAX_CONTROL_SHARE * len(extracted)):
        raise PermanentIngestError(
            f"{name}: binary content ({controls} control characters in {len(extracted)}), not text"
        )


def _run(parser: Parser, data: bytes, name: str) -> tuple[str, str]:
    try:
        return parser(data, name)
    except PermanentIngestError:
        raise
    except Exception as error:  # any parser failure is a property of the bytes
        raise PermanentIngestError(f"{name}: could not parse ({type(error).__name__}: {error})") from None


def parse_document(
    data: bytes,
    *,
    document_id: str,
    source: str,
    max_bytes: int,
    tags: tuple[str, ...] = (),
    name: str | None = None,
    workspace: str = DEFAULT_WORKSPACE,
    allowed_users: tuple[str, ...] = (),
    allowed_groups: tuple[str, ...] = (),
) -> Document:
    """Parse by file extension; raise `PermanentIngestError` naming what is wrong."""
    name = name or document_id
    content_type = content_type_for(name)
    if len(data) > max_bytes:
        raise PermanentIngestError(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit")
    title, body = _run(_PARSERS[content_type], data, name)
    if not body.strip():
        raise PermanentIngestError(f"{name}: no extractable text")
    reject_binary(body, name)
    # A title is short metadata (a PDF's /Title, a sheet name): drop stray control characters.
    title = _CONTROL.sub("", title).strip()[:500]
    return Document(
        document_id=document_id,
        title=title or text.stem_title(name),
        text=body,
        source=source,
        content_type=content_type,
        tags=tags,
        workspace=workspace,
        allowed_users=allowed_users,
        allowed_groups=allowed_groups,
    )
