"""The local platform loses nothing: worker crashes and a whole-platform crash mid-ingest, then reindex.

One scenario, run once per module (each platform start loads the model twice):
the worker is killed twice while documents are being ingested, a document is changed
and another deleted, and then every process of the platform is killed at once (a crash,
not a clean stop) and `ragctl dev` is started again on the same data directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipelines.dev import local_client
from pipelines.platform_file import PlatformInfo
from service.contract import PROJECT
from service.ingest.ids import content_hash
from service.ingest.ledger import SqliteLedger, Status, local_ledger_path
from service.search.admin import AliasFollowingBackend
from service.search.local_catalog import LocalCatalog
from service.settings import load_settings
from tests.e2e.conftest import free_port
from tests.factories import DEFAULT_READER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STARTUP_SECONDS = 300
WAVE = 5


def document(i: int, version: int = 1) -> bytes:
    words = f"quokka{i}v{version}"
    return (
        f"# Field note {i}\n\n"
        + " ".join(f"Observation {p} about the {words} colony near station {i}." for p in range(30))
    ).encode()


@dataclass
class Run:
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    info: PlatformInfo | None = None
    starts: int = 0
    expected: dict[str, bytes] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    killed_mid_ingest: list[int] = field(default_factory=list)

    def start(self) -> PlatformInfo:
        self.starts += 1
        log = self.data_dir.parent / f"dev-{self.starts}.log"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pipelines.cli", "dev", "--no-seed"),
                *("--data-dir", str(self.data_dir)),
                *("--port", str(free_port()), "--aws-port", str(free_port())),
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while f"{PROJECT} is ready".encode() not in log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ragctl dev did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        self.info = PlatformInfo.load(self.data_dir)
        return self.info

    def pids(self) -> dict[str, int]:
        pids: dict[str, int] = json.loads((self.data_dir / "run" / "pids.json").read_text())
        return pids

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.data_dir.parent.glob("dev-*.log")))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def crash(self) -> None:
        """Kill -9 every process of the platform at once: no clean-up runs anywhere."""
        pids = self.pids()
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait()
        for pid in pids.values():
            _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def ledger_of(run: Run) -> SqliteLedger:
    return SqliteLedger(local_ledger_path(run.data_dir))


def indexed(run: Run, keys: set[str]) -> set[str]:
    ledger = ledger_of(run)
    try:
        return {k for k in keys if (r := ledger.get(k)) is not None and r.status is Status.INDEXED}
    finally:
        ledger.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, run: Run) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}:\n{run.log()[-4000:]}")
        time.sleep(0.1)


def put(run: Run, keys: dict[str, bytes]) -> None:
    assert run.info is not None
    s3 = local_client(run.info, "s3")
    for key, body in keys.items():
        s3.put_object(Bucket=run.info.document_bucket, Key=key, Body=body)
    run.expected.update(keys)


def kill_worker_mid_ingest(run: Run, wave: set[str]) -> None:
    """Once the worker has indexed part of `wave`, and only part, kill -9 it."""
    wait_until(lambda: bool(indexed(run, wave)), 120, "the worker indexed a first document", run)
    done = indexed(run, wave)
    os.kill(run.pids()["worker"], signal.SIGKILL)
    run.killed_mid_ingest.append(len(done))
    assert len(done) < len(wave), "the worker finished the wave before it could be killed"


def all_settled(run: Run) -> bool:
    ledger = ledger_of(run)
    try:
        for key, body in run.expected.items():
            record = ledger.get(key)
            if (
                record is None
                or record.status is not Status.INDEXED
                or record.content_hash != content_hash(body)
            ):
                return False
        return all((r := ledger.get(k)) is not None and r.status is Status.DELETED for k in run.deleted)
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def crashed_and_restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    run = Run(tmp_path_factory.mktemp("durable") / "data")
    try:
        # Given a running platform
        run.start()
        # When the worker is killed while a first wave of documents is being ingested
        first = {f"notes/a/note-{i}.md": document(i) for i in range(WAVE)}
        put(run, first)
        kill_worker_mid_ingest(run, set(first))
        # and again during a second wave, uploaded while it is down
        second = {f"notes/b/note-{i}.md": document(100 + i) for i in range(WAVE)}
        put(run, second)
        kill_worker_mid_ingest(run, set(second))
        # and, while a third wave, a change and a delete are pending, the whole platform crashes
        wait_until(lambda: set(first) | set(second) <= indexed(run, set(run.expected)), 120, "waves 1-2", run)
        assert run.info is not None
        put(run, {f"notes/c/note-{i}.md": document(200 + i) for i in range(3)})
        put(run, {"notes/a/note-0.md": document(0, version=2)})
        local_client(run.info, "s3").delete_object(Bucket=run.info.document_bucket, Key="notes/a/note-1.md")
        run.expected.pop("notes/a/note-1.md")
        run.deleted.add("notes/a/note-1.md")
        run.crash()
        # and `ragctl dev` is started again on the same data directory
        run.start()
        wait_until(lambda: all_settled(run), 180, "every document settled after the restart", run)
        yield run
    finally:
        run.stop()


def test_worker_crashes_and_a_platform_crash_lose_nothing_and_duplicate_nothing(
    crashed_and_restarted: Run,
) -> None:
    run = crashed_and_restarted
    assert run.info is not None
    # Then the worker was really killed mid-ingest, twice, and restarted by the supervisor each time
    assert len(run.killed_mid_ingest) == 2
    assert run.log().count("worker restarted") >= 2
    # and every document is indexed exactly once, with the chunks of its latest version only
    assert_index_matches_ledger(run)
    # and nothing was dead-lettered
    sqs = local_client(run.info, "sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=run.info.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_after_the_restart_reindex_and_reconcile_lose_nothing(crashed_and_restarted: Run) -> None:
    run = crashed_and_restarted
    # When the restarted platform is reindexed
    reindex = ragctl(run, "reindex", "--json")
    # Then the switch happened with every document
    assert reindex.returncode == 0, reindex.stderr
    report = json.loads(reindex.stdout)
    assert report["switched"] is True
    assert report["documents"] == len(run.expected)
    # And reconcile finds nothing to repair: bucket, ledger and index agree
    reconciled = ragctl(run, "reconcile", "--dry-run", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert json.loads(reconciled.stdout)["counts"] == {}
    assert_index_matches_ledger(run)


def ragctl(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--data-dir", str(run.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_index_matches_ledger(run: Run) -> None:
    settings = load_settings(data_dir=run.data_dir)
    index: Any = AliasFollowingBackend(LocalCatalog(run.data_dir), settings.index_alias, 384)
    ledger = ledger_of(run)
    try:
        total = 0
        for key, body in run.expected.items():
            record = ledger.get(key)
            assert record is not None, key
            assert record.status is Status.INDEXED, key
            assert record.content_hash == content_hash(body), key
            held = index.chunk_ids_for_document(key)
            assert held, key
            assert held == set(record.chunk_ids), key
            total += len(held)
        for key in run.deleted:
            assert not index.chunk_ids_for_document(key), key
        # No chunk the ledger does not list: no duplicate, stale or orphaned chunk anywhere.
        assert index.count() == total
        # The changed document answers with its new words only.
        hits = {h.document_id for h in index.bm25("quokka0v2", 5, scope=DEFAULT_READER)}
        assert "notes/a/note-0.md" in hits
        assert not index.bm25("quokka0v1", 5, scope=DEFAULT_READER)
    finally:
        ledger.close()
        index.close()
