"""Test factories: a deterministic embedder, documents, PDFs, and backends that clean up after themselves."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from service.access import DEFAULT_WORKSPACE, Principal, Role, authorize
from service.models import Document

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag-of-words hashed into `dimension` buckets: texts that share words are similar.

    Deterministic and instant, so tests exercise real vector search without the model.
    `calls` records every batch, so tests can assert that nothing was re-embedded.
    """

    def __init__(self, dimension: int = 64) -> None:
        self._dimension = dimension
        self.calls: list[list[str]] = []

    @property
    def model_id(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self._dimension] += 1.0 if digest[4] % 2 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    @property
    def embedded_texts(self) -> int:
        return sum(len(batch) for batch in self.calls)


def make_document(
    document_id: str = "doc-1", text: str = "The quick brown fox.", **fields: object
) -> Document:
    values: dict[str, object] = {
        "document_id": document_id,
        "title": fields.pop("title", document_id),
        "text": text,
        "source": fields.pop("source", f"s3://bucket/{document_id}"),
    }
    values.update(fields)
    return Document.model_validate(values)


def make_pdf(text: str, stream_filter: str | None = None) -> bytes:
    """A minimal one-page PDF with `text` in Helvetica (PDF 1.4, hand-built so tests need no writer).

    `stream_filter` declares a /Filter on the content stream (e.g. JBIG2Decode), as hostile or
    exotic PDFs do, without encoding the stream: the reader must fail on it."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + (f" /Filter /{stream_filter}".encode() if stream_filter else b"")
        + b" >>\nstream\n"
        + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# A reader of the default workspace with no user or group: it reads every chunk indexed without
# permissions, which is what every document was before workspaces (issue 15).
DEFAULT_READER = authorize(
    Principal(subject="test-reader", role=Role.READER, workspaces=frozenset({DEFAULT_WORKSPACE})),
    DEFAULT_WORKSPACE,
    Role.READER,
)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) in a thread; yields its `/v1` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
