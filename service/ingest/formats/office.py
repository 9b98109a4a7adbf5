"""Office Open XML: .docx (python-docx), .xlsx (openpyxl, read-only) and .pptx.

All three are zip archives of XML parts. Before any library opens one, the archive's
declared uncompressed size is checked against a limit, so a zip bomb is refused without
being inflated. openpyxl parses through defusedxml when it is installed (it is a runtime
dependency for that reason); python-docx's and our lxml parsers resolve no entities.

.pptx is read with lxml directly rather than with python-pptx: python-pptx imports Pillow
at import time (~6.5 MB zipped on arm64), which would push the Lambda artifact past its
30 MB budget, and the text of a deck is just the `a:t` runs of its slide parts.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from service.ingest.errors import PermanentIngestError
from service.ingest.formats.tabular import rows_as_text
from service.ingest.formats.text import stem_title

# Inflated size an Office file may declare, as a multiple of its own size: text-heavy
# OOXML compresses 5-20x; 100x leaves room and still refuses a bomb.
MAX_INFLATION = 100
_SLIDE = re.compile(r"^ppt/slides/slide(\d+)\.xml$")
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


def open_archive(data: bytes, name: str, kind: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PermanentIngestError(f"{name}: not a {kind} file (not a zip archive)") from None
    inflated = sum(info.file_size for info in archive.infolist())
    limit = max(len(data), 1) * MAX_INFLATION
    if inflated > limit:
        raise PermanentIngestError(
            f"{name}: declares {inflated} bytes uncompressed, over {MAX_INFLATION}x its size (zip bomb?)"
        )
    return archive


def parse_docx(data: bytes, name: str) -> tuple[str, str]:
    import docx

    open_archive(data, name, "Word").close()
    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    heading = ""
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if not heading and (style.startswith("Heading") or style == "Title"):
            heading = text
        blocks.append(text)
    for table in document.tables:
        rows = [[cell.text for cell in row.cells] for row in table.rows]
        if rows:
            blocks.append(rows_as_text([c.strip() for c in rows[0]], iter(rows[1:])))
    title = (document.core_properties.title or "").strip() or heading or stem_title(name)
    return title, "\n\n".join(b for b in blocks if b)


def parse_xlsx(data: bytes, name: str) -> tuple[str, str]:
    import openpyxl

    open_archive(data, name, "Excel").close()
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets: list[str] = []
        for sheet in workbook.worksheets:
            rows = (["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True))
            header = next(rows, [])
            body = rows_as_text([h.strip() for h in header], rows)
            if body:
                sheets.append(f"{sheet.title}\n{body}")
        title = (workbook.properties.title or "").strip() or stem_title(name)
    finally:
        workbook.close()
    return title, "\n\n".join(sheets)


def _xml(archive: zipfile.ZipFile, part: str) -> object:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(archive.read(part), parser)


def _slide_paragraphs(root: object) -> Iterator[str]:
    for paragraph in root.iter(f"{_A}p"):  # type: ignore[attr-defined]
        text = "".join(run.text or "" for run in paragraph.iter(f"{_A}t")).strip()
        if text:
            yield text


def parse_pptx(data: bytes, name: str) -> tuple[str, str]:
    archive = open_archive(data, name, "PowerPoint")
    with archive:
        slides = sorted(
            (int(match.group(1)), part) for part in archive.namelist() if (match := _SLIDE.match(part))
        )
        if not slides and "ppt/presentation.xml" not in archive.namelist():
            raise PermanentIngestError(f"{name}: not a PowerPoint file (no ppt/presentation.xml)")
        texts = ["\n".join(_slide_paragraphs(_xml(archive, part))) for _, part in slides]
        title = ""
        if "docProps/core.xml" in archive.namelist():
            node = _xml(archive, "docProps/core.xml").find(_DC_TITLE)  # type: ignore[attr-defined]
            title = (node.text or "").strip() if node is not None else ""
    first = next((t.splitlines()[0] for t in texts if t), "")
    return title or first[:200] or stem_title(name), "\n\n".join(t for t in texts if t)
