"""Workspaces end to end on moto S3/SQS, the local engine and the SQLite ledger (issue 15):
create, list with per-workspace counts, metadata readers enforced in search, and a delete that
a crash interrupts and a second run finishes, leaving other workspaces untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.workspaces import WorkspaceDeleteTimeout, create_workspace, delete_workspace, list_workspaces
from service.access import Principal, Role, authorize, operator_scope
from service.ingest.ledger import SqliteLedger
from service.ingest.queue import SqsSink
from service.search.local import LocalSearchBackend
from tests.factories import HashingEmbedder
from tests.ingest_fakes import Cloud, make_service, moto_cloud, open_local


def _ingest(cloud: Cloud, backend: LocalSearchBackend, ledger: SqliteLedger) -> None:
    service = make_service(cloud, backend, ledger, HashingEmbedder())
    for message in cloud.drain():
        service.handle_message(message["Body"])


def _reader(workspace: str, user: str | None = None) -> Any:
    principal = Principal("t", Role.READER, frozenset({workspace}), user=user)
    return authorize(principal, workspace, Role.READER)


def _put(cloud: Cloud, key: str, text: str, **metadata: str) -> None:
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=text.encode(), Metadata=metadata)


def test_workspaces_are_created_listed_counted_and_isolated(tmp_path: Path) -> None:
    backend, ledger = open_local(tmp_path, HashingEmbedder().dimension)
    with moto_cloud() as cloud:
        # Given an empty workspace, one with two documents (one for ann only), and the default one
        assert create_workspace(cloud.s3, cloud.bucket, "empty")
        assert not create_workspace(cloud.s3, cloud.bucket, "empty")  # idempotent
        _put(cloud, "workspaces/acme/open.md", "The acme roadmap covers rockets.")
        _put(
            cloud,
            "workspaces/acme/ann.md",
            "The acme salary list covers rockets.",
            **{"allowed-users": "ann"},
        )
        _put(cloud, "guide.md", "The default guide covers rockets.")
        _ingest(cloud, backend, ledger)

        # When they are listed, then each has its own counts (the marker is no document)
        assert list_workspaces(cloud.s3, cloud.bucket, ledger) == {
            "acme": {"indexed": 2},
            "default": {"indexed": 1},
            "empty": {},
        }
        # And a reader of acme sees acme's open document; ann sees hers too; default sees its own
        assert {h.document_id for h in backend.bm25("rockets", 10, scope=_reader("acme"))} == {
            "workspaces/acme/open.md"
        }
        assert len(backend.bm25("rockets", 10, scope=_reader("acme", "ann"))) == 2
        assert {h.document_id for h in backend.bm25("rockets", 10, scope=_reader("default"))} == {"guide.md"}
        assert not backend.bm25("rockets", 10, scope=_reader("empty"))


class Crash(BaseException):
    """Stands in for the process dying mid-way (no `except Exception` catches it)."""


def test_deleting_a_workspace_resumes_after_a_crash_and_spares_the_others(tmp_path: Path) -> None:
    backend, ledger = open_local(tmp_path, HashingEmbedder().dimension)
    with moto_cloud() as cloud:
        # Given a workspace of three documents beside a default-workspace one
        create_workspace(cloud.s3, cloud.bucket, "acme")
        for n in range(3):
            _put(cloud, f"workspaces/acme/doc-{n}.md", f"Acme document {n} about comets.")
        _put(cloud, "keep.md", "A default document about comets.")
        _ingest(cloud, backend, ledger)
        assert backend.count(operator_scope("acme")) == 3
        queue = SqsSink(cloud.sqs, cloud.queue_url)
        steps: list[tuple[str, int, int]] = []

        # When the delete dies while it waits for the ingester (objects gone, deletes enqueued)
        def crash() -> None:
            raise Crash

        with pytest.raises(Crash):
            delete_workspace(
                "acme",
                s3=cloud.s3,
                bucket=cloud.bucket,
                ledger=ledger,
                backend=backend,
                queue=queue,
                wait=crash,
                progress=lambda step, done, total: steps.append((step, done, total)),
            )
        # Then it had reported its progress, and the documents are still there
        assert steps[0] == ("objects", 4, 4)  # three documents and the folder marker
        assert ("deletes enqueued", 3, 3) in steps
        assert ledger.counts("acme") == {"indexed": 3}

        # When it runs again with the ingester working
        report = delete_workspace(
            "acme",
            s3=cloud.s3,
            bucket=cloud.bucket,
            ledger=ledger,
            backend=backend,
            queue=queue,
            wait=lambda: _ingest(cloud, backend, ledger),
        )
        # Then it finishes: no object, row or chunk of acme is left
        assert (report.objects, report.documents, report.remaining_chunks) == (0, 3, 0)
        assert "Contents" not in cloud.s3.list_objects_v2(Bucket=cloud.bucket, Prefix="workspaces/acme/")
        assert ledger.counts("acme") == {}
        assert backend.count(operator_scope("acme")) == 0
        # And the default workspace kept its document
        assert ledger.counts("default") == {"indexed": 1}
        assert backend.count(operator_scope()) == 1
        assert "acme" not in list_workspaces(cloud.s3, cloud.bucket, ledger)


def test_a_delete_without_a_running_ingester_stops_and_says_to_run_it_again(tmp_path: Path) -> None:
    backend, ledger = open_local(tmp_path, HashingEmbedder().dimension)
    with moto_cloud() as cloud:
        _put(cloud, "workspaces/acme/a.md", "Acme document about comets.")
        _ingest(cloud, backend, ledger)
        with pytest.raises(WorkspaceDeleteTimeout, match="run the delete again"):
            delete_workspace(
                "acme",
                s3=cloud.s3,
                bucket=cloud.bucket,
                ledger=ledger,
                backend=backend,
                queue=SqsSink(cloud.sqs, cloud.queue_url),
                wait=lambda: None,
                timeout_polls=2,
            )
        assert ledger.counts("acme") == {"indexed": 1}  # nothing forgotten that is still indexed


def test_the_default_workspace_cannot_be_deleted(tmp_path: Path) -> None:
    backend, ledger = open_local(tmp_path, HashingEmbedder().dimension)
    with moto_cloud() as cloud, pytest.raises(ValueError, match="default workspace cannot be deleted"):
        delete_workspace(
            "default",
            s3=cloud.s3,
            bucket=cloud.bucket,
            ledger=ledger,
            backend=backend,
            queue=SqsSink(cloud.sqs, cloud.queue_url),
            wait=lambda: None,
        )
