"""Every supported format parses to real text; every failure is permanent and names its reason."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from service.ingest.errors import PermanentIngestError
from service.ingest.formats import office
from service.ingest.parse import CONTENT_TYPES, parse_document
from service.models import Document
from tests.factories import make_pdf

LIMIT = 1 << 20


def parse(data: bytes, name: str) -> Document:
    return parse_document(data, document_id=name, source=f"s3://b/{name}", max_bytes=LIMIT)


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Rotation runbook", level=1)
    document.add_paragraph("Rotate the API key with pulumi up after changing the secret.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Stack", "Owner"
    table.cell(1, 0).text, table.cell(1, 1).text = "prod", "platform team"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    for title, body in (("Revenue", "Revenue grew in the third quarter."), ("Hiring", "Two engineers")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Prices"
    sheet.append(["Region", "Price per GB"])
    sheet.append(["eu-west-1", 0.023])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_and_tables_become_text_with_the_heading_as_title() -> None:
    # Given a Word document written by python-docx
    # When it is parsed
    document = parse(_docx(), "runbooks/rotation.docx")
    # Then its heading is the title and its paragraphs and table cells are the text
    assert document.title == "Rotation runbook"
    assert "Rotate the API key with pulumi up" in document.text
    assert "Stack: prod; Owner: platform team" in document.text
    assert document.content_type == CONTENT_TYPES[".docx"]


def test_pptx_slides_become_text_in_slide_order() -> None:
    # Given a deck of two slides
    document = parse(_pptx(), "decks/q3.pptx")
    # Then both slides' text is there, in order, under the deck's title
    assert document.title == "Quarterly review"
    assert document.text.index("Revenue grew") < document.text.index("Two engineers")


def test_xlsx_rows_keep_their_column_names() -> None:
    document = parse(_xlsx(), "prices.xlsx")
    assert "Prices" in document.text
    assert "Region: eu-west-1; Price per GB: 0.023" in document.text


def test_csv_and_tsv_rows_keep_their_column_names() -> None:
    assert "name: Ada; role: admin" in parse(b"name,role\nAda,admin\n", "people.csv").text
    assert "name: Ada; role: admin" in parse(b"name\trole\nAda\tadmin\n", "people.tsv").text


def test_json_becomes_path_value_lines_with_its_title() -> None:
    payload = {"title": "Runbook", "steps": [{"run": "pulumi up"}, {"run": "make smoke"}]}
    document = parse(json.dumps(payload).encode(), "runbook.json")
    assert document.title == "Runbook"
    assert "steps[0].run: pulumi up" in document.text
    assert "steps[1].run: make smoke" in document.text


def test_code_files_are_indexed_verbatim_under_their_file_name() -> None:
    source = b"RETRY_BUDGET_SECONDS = 20\n"
    document = parse(source, "service/ingest/retry.py")
    assert document.title == "retry.py"
    assert document.text == source.decode()


@pytest.mark.parametrize("stream_filter", ["JBIG2Decode", "NoSuchFilter"])
def test_a_pdf_pypdf_cannot_decode_fails_permanently_with_the_reason(stream_filter: str) -> None:
    # Given a PDF whose content stream uses a filter pypdf cannot decode here
    # (JBIG2 needs an external binary: DependencyError; an unknown one: NotImplementedError)
    data = make_pdf("hello", stream_filter=stream_filter)
    # When it is parsed, then it fails permanently, and the reason names the file and the cause
    with pytest.raises(PermanentIngestError) as caught:
        parse(data, "scans/page.pdf")
    assert "scans/page.pdf" in caught.value.reason
    assert "unreadable PDF" in caught.value.reason


def test_a_text_file_of_nul_bytes_is_refused_as_binary() -> None:
    # Given a .txt that is really binary (NUL bytes are valid UTF-8, so decoding alone passes it)
    with pytest.raises(PermanentIngestError, match="binary content"):
        parse(b"\x00" * 6000, "dump.txt")


def test_text_mostly_of_control_characters_is_refused_but_ordinary_whitespace_is_not() -> None:
    with pytest.raises(PermanentIngestError, match="control characters"):
        parse(("ok " + "\x01\x02\x03\x1b" * 50).encode(), "noise.txt")
    assert parse(b"tabs\tand\nnew lines\r\nand a form feed\f", "fine.txt").text.startswith("tabs")


def test_control_characters_are_dropped_from_a_title() -> None:
    document = parse(b"# Deploy\x07ing\n\nRun pulumi up.", "deploying.md")
    assert document.title == "Deploying"


def test_any_exception_a_parser_raises_becomes_a_permanent_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a parser library that raises something nobody anticipated
    import service.ingest.parse as parse_module

    def explode(data: bytes, name: str) -> tuple[str, str]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(parse_module._PARSERS, "text/html", explode)
    # When a document of that type is parsed, then it is a permanent failure naming the cause
    with pytest.raises(PermanentIngestError, match=r"page\.html: could not parse \(RecursionError"):
        parse(b"<p>x</p>", "page.html")


@pytest.mark.parametrize("name", ["a.docx", "a.pptx", "a.xlsx"])
def test_an_office_file_that_is_not_a_zip_is_refused_by_name(name: str) -> None:
    with pytest.raises(PermanentIngestError, match="not a zip archive"):
        parse(b"plain text pretending", name)


def test_an_office_zip_bomb_is_refused_before_it_is_inflated() -> None:
    # Given a .docx whose one member inflates to far more than MAX_INFLATION times the file
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (8 << 20))
    data = buffer.getvalue()
    assert len(data) * office.MAX_INFLATION < 8 << 20
    with pytest.raises(PermanentIngestError, match="zip bomb"):
        parse(data, "bomb.docx")


def test_deeply_nested_json_is_refused_not_crashed_on() -> None:
    with pytest.raises(PermanentIngestError, match="nested deeper"):
        parse(b"[" * 100 + b"]" * 100, "deep.json")
