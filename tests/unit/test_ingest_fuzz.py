"""Fuzz: random bytes through every parser, random and half-valid messages through the ingest
service. Every input ends indexed, or failed with a non-empty reason; nothing raises, nothing
is left queued."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.ingest.chunking import Chunker
from service.ingest.errors import PermanentIngestError
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger, Status
from service.ingest.messages import ObjectRef
from service.ingest.objects import StoredObject
from service.ingest.parse import CONTENT_TYPES, parse_document
from service.ingest.queue import DOCUMENT_ATTRIBUTE, REASON_ATTRIBUTE, ListSink
from service.ingest.service import IngestService
from tests.factories import HashingEmbedder, make_pdf
from tests.ingest_fakes import MemoryBackend

BUCKET = "fuzz-bucket"
EXTENSIONS = sorted(CONTENT_TYPES)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_samples() -> list[tuple[str, bytes]]:
    import docx
    import openpyxl

    word = docx.Document()
    word.add_paragraph("A paragraph about deploys.")
    word_bytes = io.BytesIO()
    word.save(word_bytes)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["a", "b"])
    sheet.append([1, 2])
    book_bytes = io.BytesIO()
    book.save(book_bytes)
    return [
        (".pdf", make_pdf("Some text in a PDF.")),
        (".docx", word_bytes.getvalue()),
        (".xlsx", book_bytes.getvalue()),
        (".json", b'{"a": [1, {"b": "c"}]}'),
        (".html", b"<html><title>t</title><body><p>Body text</p></body></html>"),
    ]


SAMPLES = _valid_samples()


@st.composite
def mutated_sample(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid file of a rich format with a few bytes flipped, cut or spliced."""
    extension, data = draw(st.sampled_from(SAMPLES))
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(buffer) - 1))
        buffer[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(len(buffer) // 2, len(buffer)))
    return extension, bytes(buffer[:cut])


documents = st.one_of(
    st.tuples(st.sampled_from(EXTENSIONS), st.binary(max_size=2048)),
    st.tuples(st.sampled_from(EXTENSIONS), st.text(max_size=1024).map(str.encode)),
    mutated_sample(),
)


@FUZZ
@given(documents)
def test_every_parser_either_parses_or_fails_permanently_with_a_reason(case: tuple[str, bytes]) -> None:
    extension, data = case
    try:
        document = parse_document(data, document_id=f"f{extension}", source="s3://b/f", max_bytes=1 << 20)
    except PermanentIngestError as error:
        reason = error.reason
    else:
        assert "\x00" not in document.text
        reason = "parsed"
        assert document.text.strip()
    assert reason.strip()


class DictObjects:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def head_size(self, ref: ObjectRef) -> int | None:
        data = self.objects.get((ref.bucket, ref.key))
        return None if data is None else len(data)

    def get(self, ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        data = self.objects.get((ref.bucket, ref.key))
        if data is None:
            return None
        if max_bytes is not None and len(data) > max_bytes:
            raise PermanentIngestError(f"{ref.key}: too large")
        return StoredObject(data=data, etag=str(hash(data)), version_id=None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.builds(
    lambda stem, ext: stem + ext,
    st.sampled_from(["a", "dir/b", "c d", "%41", ""]),
    st.sampled_from([*EXTENSIONS, ".png", ""]),
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The valid value, or any JSON value in its place."""
    return st.one_of(strategy, json_values)


@st.composite
def s3_events(draw: st.DrawFn) -> dict[str, Any]:
    record = {
        "eventSource": draw(maybe(st.just("aws:s3"))),
        "eventName": draw(maybe(st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"]))),
        "s3": draw(
            maybe(
                st.fixed_dictionaries(
                    {
                        "bucket": maybe(
                            st.fixed_dictionaries({"name": maybe(st.sampled_from([BUCKET, "other"]))})
                        ),
                        "object": maybe(
                            st.fixed_dictionaries(
                                {
                                    "key": maybe(keys),
                                    "sequencer": maybe(st.text("0123456789ABCDEF", max_size=8)),
                                }
                            )
                        ),
                    }
                )
            )
        ),
    }
    return {"Records": draw(maybe(st.lists(st.just(record) | json_values, max_size=2)))}


@st.composite
def direct_messages(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {"action": maybe(st.sampled_from(["upsert", "delete"]))}
    return draw(
        st.fixed_dictionaries(
            fields,
            optional={
                "s3_uri": maybe(keys.map(lambda k: f"s3://{BUCKET}/{k}")),
                "document_id": maybe(keys),
                "continuation": json_values,
                "sequencer": json_values,
                "document": maybe(
                    st.fixed_dictionaries(
                        {
                            "document_id": maybe(keys),
                            "title": json_values,
                            "text": json_values,
                            "source": json_values,
                        }
                    )
                ),
            },
        )
    )


bodies = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    s3_events().map(json.dumps),
    direct_messages().map(json.dumps),
)


@contextmanager
def service() -> Iterator[tuple[IngestService, DictObjects, ListSink, SqliteLedger]]:
    with tempfile.TemporaryDirectory() as folder:
        ledger = SqliteLedger(Path(folder) / "ledger.sqlite")
        objects, dead = DictObjects(), ListSink()
        indexer = Indexer(MemoryBackend(), HashingEmbedder(), Chunker(200, 20), batch_size=8)
        try:
            yield (
                IngestService(indexer, objects, ledger, 1 << 20, dead_letters=dead, bucket=BUCKET),
                objects,
                dead,
                ledger,
            )
        finally:
            ledger.close()


@FUZZ
@given(body=bodies, files=st.lists(st.tuples(keys, documents), max_size=3))
def test_every_message_ends_indexed_or_failed_with_a_reason_and_never_stuck(
    body: str, files: list[tuple[str, tuple[str, bytes]]]
) -> None:
    with service() as (ingest, objects, dead, ledger):
        # Given objects in the bucket (random content under random names)
        for key, (_, data) in files:
            objects.objects[(BUCKET, key)] = data
        # When a random or half-valid message is handled, then nothing raises
        ingest.handle_message(body, remaining_ms=60_000)
        # Then every dead letter names its document (or the message) and a reason
        for _, attributes in dead.messages:
            assert attributes[REASON_ATTRIBUTE].strip()
            assert attributes[DOCUMENT_ATTRIBUTE].strip()
        # And no document is left queued; a failed one says why
        for record in ledger.list():
            assert record.status is not Status.QUEUED
            if record.status is Status.FAILED:
                assert (record.last_error or "").strip()
