from __future__ import annotations

import pytest

from service.ingest.chunking import Chunker
from service.ingest.errors import PermanentIngestError
from service.ingest.ids import chunk_id, content_hash
from service.ingest.parse import parse_document
from tests.factories import make_document, make_pdf

LIMIT = 1024 * 1024


def parse(data: bytes, name: str, max_bytes: int = LIMIT):  # type: ignore[no-untyped-def]
    return parse_document(data, document_id=name, source=f"s3://b/{name}", max_bytes=max_bytes)


def test_chunk_ids_are_deterministic_and_depend_on_each_input() -> None:
    # Given the same inputs twice, then the same id
    base = chunk_id("doc", 0, content_hash("text"))
    assert base == chunk_id("doc", 0, content_hash("text"))
    # And any changed input changes it
    assert (
        len(
            {
                base,
                chunk_id("doc2", 0, content_hash("text")),
                chunk_id("doc", 1, content_hash("text")),
                chunk_id("doc", 0, content_hash("other")),
            }
        )
        == 4
    )


def test_markdown_title_comes_from_first_heading_and_front_matter_is_dropped() -> None:
    document = parse(b"---\nlayout: x\n---\n# Deploying\n\nRun pulumi up.", "docs/deploying.md")
    assert document.title == "Deploying"
    assert "layout" not in document.text
    assert document.content_type == "text/markdown"


def test_html_drops_scripts_and_keeps_title() -> None:
    html = (
        b"<html><head><title>Guide</title><script>var x=1;</script></head>"
        b"<body><p>Hello there</p></body></html>"
    )
    document = parse(html, "guide.html")
    assert document.title == "Guide"
    assert "Hello there" in document.text
    assert "var x" not in document.text


def test_pdf_text_is_extracted() -> None:
    document = parse(make_pdf("Zero downtime reindex switches the alias"), "manual.pdf")
    assert "reindex switches the alias" in document.text


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"binary", "image.png", "unsupported file type '.png'"),
        (b"\xff\xfe\x00bad", "notes.txt", "not valid UTF-8"),
        (b"%PDF-1.4 garbage", "broken.pdf", "PDF"),
        (b"   \n  ", "empty.txt", "no extractable text"),
    ],
)
def test_bad_documents_fail_permanently_with_a_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(PermanentIngestError, match=reason):
        parse(data, name)


def test_documents_over_the_size_limit_are_rejected() -> None:
    with pytest.raises(PermanentIngestError, match="over the 10-byte limit"):
        parse(b"x" * 11, "big.txt", max_bytes=10)


def test_chunks_respect_size_and_overlap_and_carry_ids() -> None:
    # Given a long document
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    chunker = Chunker(size=300, overlap=50)
    # When it is split
    chunks = chunker.split(make_document(text=text))
    # Then every chunk fits, positions are consecutive, and neighbours overlap
    assert len(chunks) > 10
    assert all(len(c.text) <= 300 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].text[-20:] in chunks[1].text or chunks[1].text[:20] in chunks[0].text
    assert chunks == chunker.split(make_document(text=text))


def test_overlap_must_be_below_size() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Chunker(size=100, overlap=100)
