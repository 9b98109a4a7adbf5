"""`python -m pipelines.postdeploy gate` end to end on an in-process platform: it seeds the
evaluation corpus, passes on a sound index, goes red (exit 1) on a shuffled one with each failing
question and what it retrieved, and removes the corpus either way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.postdeploy.cli import DEFAULT_GOLDEN, main
from pipelines.postdeploy.client import ApiClient, Reply
from pipelines.postdeploy.config import Target
from pipelines.postdeploy.corpus import PREFIX
from pipelines.postdeploy.inprocess import api_client, index_documents, platform, shuffled
from pipelines.postdeploy.store import DocumentStore
from service.ingest.chunking import Chunker
from service.ingest.parse import parse_document
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

# The hashing embedder stands in for MiniLM; the baseline's vector figures are MiniLM's, so
# this gate judges the hybrid and BM25 modes only.
MODES = ["hybrid", "bm25"]
FAST = ["--timeout", "5", "--poll-interval", "0.01"]
ENVIRON = {"POSTDEPLOY_API_URL": "http://inprocess", "POSTDEPLOY_API_KEY": "k", "DOCUMENT_BUCKET": "b"}


class IngestingStore:
    """A bucket whose uploads are ingested at once (optionally into a scrambled index)."""

    def __init__(self, container: Container, scramble: float) -> None:
        self.container = container
        self.scramble = scramble
        self.keys: set[str] = set()
        self.pending: list[tuple[str, bytes]] = []

    def put(self, key: str, body: bytes) -> None:
        self.keys.add(key)
        self.pending.append((key, body))

    def delete(self, key: str) -> None:
        self.keys.discard(key)

    def flush(self) -> None:
        if not self.pending:
            return
        documents = [
            parse_document(body, document_id=key, source=key, max_bytes=1 << 24) for key, body in self.pending
        ]
        self.pending.clear()
        # Scramble the first `scramble` share of the corpus documents among themselves.
        corpus = [d for d in documents if d.document_id.startswith(PREFIX)]
        others = [d for d in documents if not d.document_id.startswith(PREFIX)]
        cut = round(len(corpus) * self.scramble)
        index_documents(self.container, shuffled(corpus[:cut]) + corpus[cut:] + others)


@pytest.fixture
def golden_file(tmp_path: Path) -> Path:
    data = json.loads(DEFAULT_GOLDEN.read_text())
    data["modes"] = MODES
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    settings = Settings(data_dir=tmp_path / "data", api_keys="k", rate_limit_per_minute=1_000_000)
    embedder = HashingEmbedder()
    with platform(tmp_path, settings, embedder=embedder) as created:
        created.__dict__["indexer"] = created.indexer.__class__(
            created.backend, embedder, Chunker(settings.chunk_size, settings.chunk_overlap)
        )
        yield created


def _connector(container: Container, store: IngestingStore) -> object:
    client = api_client(container, key="k")
    statuses, search = client.document_statuses, client.search

    # The "worker" ingests what was uploaded before the gate next polls or searches.
    def flushing_statuses(limit: int = 1000) -> dict[str, str]:
        store.flush()
        return statuses(limit)

    def flushing_search(query: str, top_k: int = 5, mode: str | None = None) -> Reply:
        store.flush()
        return search(query, top_k, mode)

    client.document_statuses = flushing_statuses  # type: ignore[method-assign]
    client.search = flushing_search  # type: ignore[method-assign]

    def connect(_: Target) -> tuple[ApiClient, DocumentStore]:
        return client, store

    return connect


@pytest.mark.parametrize(("scramble", "status"), [(0.0, 0), (1.0, 1)])
def test_the_gate_passes_a_sound_index_and_fails_a_shuffled_one(
    container: Container,
    golden_file: Path,
    *,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scramble: float,
    status: int,
) -> None:
    # Given a platform whose uploads are indexed soundly, or each under another document's id
    store = IngestingStore(container, scramble)
    record = tmp_path / "figures.json"

    # When the gate runs, seeding the repository docs and the evaluation corpus
    code = main(
        ["gate", "--golden", str(golden_file), "--seed", *FAST, "--record", str(record)],
        environ=ENVIRON,
        connector=_connector(container, store),  # type: ignore[arg-type]
    )

    # Then it exits 0 on the sound index and 1 on the shuffled one
    out = capsys.readouterr().out
    assert code == status, out
    assert "[PASS] seed evaluation corpus" in out
    if scramble:
        # And the report names each failing question with what was retrieved instead
        assert "FAIL] platform-docs hybrid hit_rate" in out
        assert "Which port does the" in out
        assert f"retrieved ['{PREFIX}runbook-" in out
    figures = json.loads(record.read_text())["figures"]
    assert set(figures) == set(MODES)
    # And the corpus is gone from the bucket afterwards, the repository docs stay
    assert "[PASS] remove evaluation corpus" in out
    assert not any(key.startswith(PREFIX) for key in store.keys)
    assert "docs/cicd.md" in store.keys


def test_a_drop_against_the_previous_deploy_turns_the_gate_red(
    container: Container, golden_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a first deploy: the workflow asks for the previous record, and there is none yet
    record = tmp_path / "previous.json"
    first = main(
        [
            "gate",
            "--golden",
            str(golden_file),
            "--seed",
            *FAST,
            "--previous",
            str(record),
            "--record",
            str(record),
        ],
        environ=ENVIRON,
        connector=_connector(container, IngestingStore(container, scramble=0.0)),  # type: ignore[arg-type]
    )

    # Then it passes against the recorded baseline alone, says so, and records its figures
    out = capsys.readouterr().out
    assert first == 0, out
    assert f"[PASS] previous deploy's figures (0.0s): none at {record}: first deploy" in out
    assert "[PASS] platform-docs hybrid hit_rate" in out
    assert "vs previous deploy" not in out
    assert json.loads(record.read_text())["figures"]["hybrid"]["hit_rate"] == 1.0

    # When the next deploy scrambles a third of the documents and its gate compares
    latest = tmp_path / "latest.json"
    code = main(
        ["gate", "--golden", str(golden_file), "--previous", str(record), "--record", str(latest), *FAST],
        environ=ENVIRON,
        connector=_connector(container, IngestingStore(container, scramble=0.35)),  # type: ignore[arg-type]
    )

    # Then it exits 1 on the drop, naming the metric and the figures before and after
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[FAIL] platform-docs hybrid vs previous deploy" in out
    assert "hit_rate 1.000 -> 0." in out
    assert "largest drop 0." in out
    verdict = out.split("FAILED: ")[-1]
    assert "platform-docs hybrid vs previous deploy" in verdict
    # And this run's figures are recorded for the deploy after it
    assert json.loads(latest.read_text())["figures"]["hybrid"]["hit_rate"] < 1.0


class RefusingStore(IngestingStore):
    """A bucket that refuses the `refuse_at`-th upload of the evaluation corpus."""

    def __init__(self, container: Container, refuse_at: int) -> None:
        super().__init__(container, scramble=0.0)
        self.refuse_at = refuse_at
        self.corpus_puts = 0

    def put(self, key: str, body: bytes) -> None:
        if key.startswith(PREFIX):
            self.corpus_puts += 1
            if self.corpus_puts == self.refuse_at:
                raise OSError("AccessDenied: the bucket policy refused the upload")
        super().put(key, body)


def _gate(golden_file: Path, connector: object) -> int:
    return main(
        ["gate", "--golden", str(golden_file), *FAST],
        environ=ENVIRON,
        connector=connector,  # type: ignore[arg-type]
    )


def test_an_upload_refused_midway_fails_the_gate_and_removes_what_went_in(
    container: Container, golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a bucket that refuses the 100th document of the evaluation corpus
    store = RefusingStore(container, refuse_at=100)
    # When the gate runs
    code = _gate(golden_file, _connector(container, store))
    # Then it is red, names the upload, asks nothing, and the 99 uploaded documents are gone
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[FAIL] seed evaluation corpus" in out
    assert "upload 100 of 300 (postdeploy-eval/runbook-" in out
    assert "hit_rate" not in out
    assert "[PASS] remove evaluation corpus" in out
    assert store.corpus_puts == 100
    assert not any(key.startswith(PREFIX) for key in store.keys)


def test_the_api_going_away_midway_fails_the_gate_and_removes_the_corpus(
    container: Container, golden_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an API that stops answering after 20 searches (a deploy replaced it, a network cut)
    store = IngestingStore(container, scramble=0.0)
    connect = _connector(container, store)
    client, _ = connect(None)  # type: ignore[operator]
    search = client.search
    calls = 0

    def failing_search(query: str, top_k: int = 5, mode: str | None = None) -> Reply:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise httpx.ConnectError("connection refused")
        result: Reply = search(query, top_k, mode)
        return result

    client.search = failing_search
    # When the gate runs
    code = _gate(golden_file, connect)
    # Then it is red naming the error, not a traceback, and the corpus is removed
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[FAIL] platform-docs hybrid search" in out
    assert "/v1/search -> ConnectError: connection refused" in out
    assert "[PASS] remove evaluation corpus" in out
    assert not any(key.startswith(PREFIX) for key in store.keys)
