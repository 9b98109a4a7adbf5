"""PDF with pypdf. Anything pypdf raises (unreadable structure, or a filter it cannot decode
such as JBIG2 or an unknown one: `DependencyError`/`NotImplementedError`) is permanent:
the same bytes fail the same way on every retry."""

from __future__ import annotations

import io

from service.ingest.errors import PermanentIngestError
from service.ingest.formats.text import stem_title


def parse_pdf(data: bytes, name: str) -> tuple[str, str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception as error:  # see the module docstring
        raise PermanentIngestError(f"{name}: unreadable PDF ({type(error).__name__}: {error})") from None
    return (str(title).strip() or stem_title(name)), "\n\n".join(p.strip() for p in pages if p.strip())
