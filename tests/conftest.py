"""Shared fixtures: settings, a temporary local backend, and a container of fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.contract import Env
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import SqliteLedger
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no contract variable leaks in from the developer's shell.
    for name in Env:
        monkeypatch.delenv(name.value, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_keys="test-key", chunk_size=200, chunk_overlap=20)


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def backend(tmp_path: Path, embedder: HashingEmbedder) -> Iterator[LocalSearchBackend]:
    created = LocalSearchBackend(tmp_path / "index", embedder.dimension)
    created.ensure_index()
    yield created
    created.close()


@pytest.fixture
def indexer(backend: LocalSearchBackend, embedder: HashingEmbedder) -> Indexer:
    return Indexer(backend, embedder, Chunker(200, 20))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    created = SqliteLedger(tmp_path / "ledger.sqlite")
    yield created
    created.close()


@pytest.fixture
def container(
    settings: Settings, backend: LocalSearchBackend, embedder: HashingEmbedder, ledger: SqliteLedger
) -> Container:
    return Container(settings, backend=backend, embedder=embedder, ledger=ledger)
