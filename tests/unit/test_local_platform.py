"""The local platform's operator side: ids, finding the platform, private files, supervision, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines import platform_file as platform_module
from pipelines.cli import app
from pipelines.dev import ChildSpec, KeyCollision, Supervisor, api_key_for, document_keys, follow
from pipelines.files import private_dir
from pipelines.platform_file import PlatformInfo, PlatformNotRunning, find_data_dir, platform_file
from pipelines.terminal import HIGHLIGHT_STYLE, snippet_text
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status, local_ledger_path

runner = CliRunner()


def info_for(data_dir: Path, pid: int | None) -> PlatformInfo:
    return PlatformInfo(
        api_url="http://127.0.0.1:9",
        api_key="key",
        aws_endpoint_url="http://127.0.0.1:9",
        document_bucket="rag-platform-local-documents",
        ingest_queue_url="http://127.0.0.1:9/123456789012/rag-platform-local-ingest",
        dead_letter_queue_url="http://127.0.0.1:9/123456789012/rag-platform-local-dlq",
        data_dir=str(data_dir),
        pid=pid,
    )


def dead_pid() -> int:
    """A process id that existed and has exited."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- document ids ---------------------------------------------------------------------------------


def test_files_with_the_same_name_in_different_folders_get_distinct_ids(tmp_path: Path) -> None:
    # Given a/index.md and b/index.md outside the folder ragctl runs in
    for folder in ("a", "b"):
        (tmp_path / "corpus" / folder).mkdir(parents=True)
        (tmp_path / "corpus" / folder / "index.md").write_text(f"# {folder}")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    files = [tmp_path / "corpus" / "a" / "index.md", tmp_path / "corpus" / "b" / "index.md"]
    # When their keys are derived
    keys = document_keys(files, elsewhere)
    # Then each keeps its relative path, and a prefix is part of the id
    assert list(keys) == ["a/index.md", "b/index.md"]
    assert list(document_keys(files, tmp_path, prefix="team/")) == [
        "team/corpus/a/index.md",
        "team/corpus/b/index.md",
    ]


def test_two_files_that_would_share_an_id_are_refused_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.md").write_text("one")
    (tmp_path / "notes.md").write_text("two")
    # Given x/notes.md under the folder ragctl runs in, and a notes.md outside it
    with pytest.raises(KeyCollision, match=r"notes\.md"):
        document_keys([tmp_path / "x" / "notes.md", tmp_path / "notes.md"], tmp_path / "x")


# -- finding the platform -------------------------------------------------------------------------


def test_the_platform_is_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_DIR", raising=False)
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    # Then without options, from a folder with no .data, the checkout's .data is used
    assert find_data_dir(None, cwd=elsewhere) == platform_module.PROJECT_ROOT / ".data"
    # and ./.data is used when a platform runs there
    private_dir(elsewhere / ".data")
    platform_file(elsewhere / ".data").write_text("{}")
    assert find_data_dir(None, cwd=elsewhere) == elsewhere / ".data"
    # and DATA_DIR, then --data-dir, take precedence
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    assert find_data_dir(None, cwd=elsewhere) == tmp_path / "env"
    assert find_data_dir(tmp_path / "flag", cwd=elsewhere) == tmp_path / "flag"


def test_a_platform_file_left_by_a_stopped_platform_is_reported_in_one_line(tmp_path: Path) -> None:
    # Given the platform file of a platform whose process is gone
    info_for(tmp_path, dead_pid()).save(tmp_path)
    # Then reading it as running says so
    with pytest.raises(PlatformNotRunning, match="not running"):
        PlatformInfo.running(tmp_path)
    # And each command that needs the platform says it in one line, with no traceback
    for command in (["ingest", str(tmp_path)], ["docs", "list"], ["dlq", "list"], ["worker"]):
        result = runner.invoke(app, [*command, "--data-dir", str(tmp_path)])
        output = result.output.strip()
        assert result.exit_code != 0, command
        assert "Traceback" not in output, (command, output)
        assert "Error" not in output, (command, output)
        assert "not running" in output, (command, output)
        assert len(output.splitlines()) == 1, (command, output)


def test_ragctl_worker_alone_attaches_to_the_running_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.worker import attach

    # Given a running platform (this process stands in for it) and no INGEST_QUEUE_URL
    monkeypatch.setattr(platform_module, "_answers", lambda endpoint: True)
    info = info_for(tmp_path, os.getpid())
    info.save(tmp_path)
    for name in info.child_env():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    # When the worker attaches
    attach()
    # Then it has the platform's queue, bucket and data directory
    assert os.environ["INGEST_QUEUE_URL"] == info.ingest_queue_url
    assert os.environ["DOCUMENT_BUCKET"] == info.document_bucket
    assert os.environ["DATA_DIR"] == str(tmp_path)


# -- private files --------------------------------------------------------------------------------


def test_platform_files_are_private_from_their_creation(tmp_path: Path) -> None:
    previous = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        data_dir = private_dir(tmp_path / "data")
        key = api_key_for(data_dir)
        info_for(data_dir, os.getpid()).save(data_dir)
    finally:
        os.umask(previous)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (data_dir / "api-key").stat().st_mode & 0o777 == 0o600
    assert platform_file(data_dir).stat().st_mode & 0o777 == 0o600
    assert api_key_for(data_dir) == key  # created once, then reused


# -- supervision ----------------------------------------------------------------------------------


def test_the_supervisor_restarts_a_crashed_child_with_backoff_and_says_so(tmp_path: Path) -> None:
    now = [0.0]
    crashes: list[tuple[str, int]] = []
    supervisor = Supervisor(
        tmp_path, on_crash=lambda name, pid: crashes.append((name, pid)), clock=lambda: now[0]
    )
    # Given a child that crashes at once
    first = supervisor.start(ChildSpec("worker", [sys.executable, "-c", "raise SystemExit(3)"], {}))
    first.wait()
    try:
        # When the supervisor looks
        supervisor.supervise()
        # Then it logs the crash, runs the crash hook, and waits out the backoff before restarting
        assert crashes == [("worker", first.pid)]
        assert supervisor.children[0].process is first
        now[0] = 1.0
        supervisor.supervise()
        second = supervisor.children[0].process
        assert second is not first
        second.wait()
        # And a second crash in a row waits twice as long
        now[0] = 2.0
        supervisor.supervise()
        now[0] = 3.5
        supervisor.supervise()
        assert supervisor.children[0].process is second
        now[0] = 4.0
        supervisor.supervise()
        assert supervisor.children[0].process is not second
        log = (tmp_path / "logs" / "supervisor.log").read_text()
        assert "worker (pid" in log
        assert "exited with code 3; restarting it in 1 s" in log
        assert "restarting it in 2 s (crash 2 in a row)" in log
        assert json.loads((tmp_path / "run" / "pids.json").read_text())["worker"] == (
            supervisor.children[0].process.pid
        )
    finally:
        supervisor.stop()


def test_ingest_names_stuck_documents_with_their_ledger_state(tmp_path: Path) -> None:
    # Given one document indexed, one held by a worker's lease, and one no event reached
    ledger = SqliteLedger(local_ledger_path(tmp_path))
    stamp = datetime.now(UTC)
    ledger.put(
        LedgerRecord(
            document_id="done.md",
            status=Status.INDEXED,
            chunk_ids=("c1",),
            created_at=stamp,
            updated_at=stamp,
        )
    )
    ledger.claim("busy.md", key=None, owner="host:77:abc", at=0, lease_until=4e9)
    ledger.close()
    # When ingestion is followed until a short timeout
    result = follow(
        info_for(tmp_path, None), ["done.md", "busy.md", "never.md"], 0, timeout=1, quiet_seconds=0.2
    )
    # Then the finished one is done and the others are named with their state
    assert result.done == {"done.md": "indexed"}
    assert "queued" in result.stuck["busy.md"]
    assert "being applied by host:77:abc" in result.stuck["busy.md"]
    assert "not in the ledger" in result.stuck["never.md"]


# -- terminal output ------------------------------------------------------------------------------


def test_highlights_render_as_highlights_with_entities_unescaped_and_never_cut_mid_tag() -> None:
    snippet = "Use <mark>zero</mark> &amp; <mark>downtime</mark> &lt;reindex&gt; " + "x" * 50
    text = snippet_text(snippet)
    assert text.plain.startswith("Use zero & downtime <reindex> ")
    marked = [text.plain[span.start : span.end] for span in text.spans if span.style == HIGHLIGHT_STYLE]
    assert marked == ["zero", "downtime"]
    for limit in range(1, 40):
        cut = snippet_text(snippet, limit)
        assert len(cut.plain) <= limit
        assert "<mark" not in cut.plain
        assert "</" not in cut.plain


def test_an_empty_dead_letter_queue_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ingest_fakes import moto_cloud

    with moto_cloud() as cloud:
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", cloud.dlq_url)
        monkeypatch.setenv("INGEST_QUEUE_URL", cloud.queue_url)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        result = runner.invoke(app, ["dlq", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "the dead-letter queue is empty" in result.output
    assert "┏" not in result.output  # no empty table


def test_help_has_no_issue_numbers_or_placeholders() -> None:
    import click
    import typer

    def helps(command: Any, path: list[str]) -> Iterator[tuple[list[str], str]]:
        yield path, runner.invoke(app, [*path, "--help"]).output
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from helps(sub, [*path, name])

    for path, text in helps(typer.main.get_command(app), []):
        assert "(issue" not in text.lower(), path
        for placeholder in ("<bool>", "<str>", "list[", "<path>"):
            assert placeholder not in text, (path, placeholder)


def test_search_uses_the_running_api_and_renders_its_snippets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    import service.wiring
    from pipelines import cli

    # Given a running platform whose API answers searches
    monkeypatch.setattr(cli, "_running_or_none", lambda data_dir: info_for(tmp_path, os.getpid()))
    calls: list[str] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        calls.append(url)
        hit = {"score": 0.9, "document_id": "docs/a.md", "snippet": "a <mark>warm</mark> &amp; fast model"}
        return httpx.Response(200, json={"mode": "hybrid", "hits": [hit], "timings_ms": {}})

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("ragctl search loaded its own model")

    monkeypatch.setattr(httpx, "post", post)
    monkeypatch.setattr(service.wiring, "Container", no_model)
    # When a search runs
    result = runner.invoke(app, ["search", "warm model"])
    # Then it went through the API, and the snippet shows text, not tags or entities
    assert result.exit_code == 0, result.output
    assert calls == ["http://127.0.0.1:9/v1/search"]
    assert "a warm & fast model" in result.output
    assert "<mark>" not in result.output
    assert "&amp;" not in result.output


def test_the_readme_says_how_to_run_ragctl() -> None:
    readme = (platform_module.PROJECT_ROOT / "README.md").read_text()
    assert ".venv/bin/ragctl" in readme
    assert "source .venv/bin/activate" in readme


def test_a_restart_stops_the_children_a_crashed_platform_left_running(tmp_path: Path) -> None:
    import subprocess

    from pipelines.dev import reap_leftovers

    # Given a "worker" left running by a `ragctl dev` that was killed, and an unrelated process
    # whose id the crashed platform also recorded (a reused id must never be killed)
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "pipelines.worker"])
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        private_dir(tmp_path / "run")
        pids = {"dev": dead_pid(), "worker": leftover.pid, "api": unrelated.pid}
        (tmp_path / "run" / "pids.json").write_text(json.dumps(pids))
        # When a new platform starts on the same data directory
        stopped = reap_leftovers(tmp_path, stop_after=5)
        # Then the leftover worker is stopped, and nothing else
        assert stopped == [f"worker (pid {leftover.pid})"]
        assert leftover.wait(timeout=10) is not None
        assert unrelated.poll() is None
    finally:
        for process in (leftover, unrelated):
            process.kill()
            process.wait()
