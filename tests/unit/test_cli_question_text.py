"""`ragctl search` and `ragctl query` take any question text (issue 14 item 1): text the API would
refuse exits 2 naming the field, without a traceback; stop words, punctuation and emoji answer
or come back empty in every mode, in-process as through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines import cli
from pipelines.cli import app
from service.contract import SearchMode
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.search.local import LocalSearchBackend
from tests.factories import HashingEmbedder, make_document

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["query", ""], "question"),
        (["query", "  \t "], "question"),
        (["query", "lone \udc80 surrogate"], "question"),
        (["search", ""], "query"),
        (["search", "   "], "query"),
    ],
)
def test_text_the_api_refuses_exits_2_naming_the_field(
    args: list[str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no platform is even looked for before the text is checked
    def no_platform(data_dir: Path | None) -> None:
        raise AssertionError("the text was not checked first")

    monkeypatch.setattr(cli, "_running_or_none", no_platform)
    # When the command runs with text that is empty, blank or not encodable
    result = runner.invoke(app, args)
    # Then it exits 2 with one line naming the field, not a traceback
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{field}: "), result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, AssertionError)


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No running platform: the commands build a container over a small index of their own."""
    import service.wiring

    embedder = HashingEmbedder()
    backend = LocalSearchBackend(tmp_path / "index", embedder.dimension)
    backend.ensure_index()
    Indexer(backend, embedder, Chunker(200, 20)).index(
        make_document("deploy", "Deploy to staging with make deploy STACK=staging. It is done.")
    )
    real = service.wiring.Container

    def container(settings: Any, **overrides: Any) -> Any:
        return real(settings, backend=backend, embedder=embedder, **overrides)

    monkeypatch.setattr(cli, "_running_or_none", lambda data_dir: None)
    monkeypatch.setattr(service.wiring, "Container", container)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("text", ["to be or not to be?", "is it", "?!…;:()", "🙂", "AND OR NOT", "\x01"])
@pytest.mark.parametrize("mode", list(SearchMode))
def test_awkward_questions_answer_or_come_back_empty_in_every_mode(text: str, mode: SearchMode) -> None:
    for command in ("search", "query"):
        # When the question is searched or asked in-process
        result = runner.invoke(app, [command, text, "--mode", mode.value, "--json"])
        # Then it succeeds (an answer, the no-answer sentence, or no hits)
        assert result.exit_code == 0, (command, mode, text, result.output, result.exception)
        assert result.output.strip().startswith("{"), result.output
