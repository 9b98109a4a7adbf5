"""`ragctl workspaces create|list|delete`: named collections of documents (issue 15).

A workspace lives where its documents do: under `workspaces/<id>/` in the bucket. Creating
one writes the folder marker `workspaces/<id>/` (what the S3 console's "Create folder" writes;
the ingester acknowledges such markers without indexing anything), so an empty workspace is
listed too. The ledger gives each workspace's per-status document counts.

Deleting a workspace removes, in order, its objects, then (through the ingester) each
document's chunks, then the ledger rows. Every step is idempotent and reads what is left, so a
run interrupted at any point is finished by running it again. Object deletions also reach the
ingester as events; one that arrives after this job removed the document's row is recorded as
`deleted` there, and the next run removes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.ops import AsJson, DataDir, checked_workspace, ops_settings
from service.access import DEFAULT_WORKSPACE, check_workspace_id, operator_scope
from service.contract import WORKSPACE_PREFIX
from service.ingest.ledger import Ledger, Status
from service.ingest.queue import MessageSink, SqsSink
from service.search.protocol import SearchBackend
from service.settings import Settings
from service.workspaces import workspace_prefix

# S3 DeleteObjects takes at most 1,000 keys a request
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html).
DELETE_BATCH = 1000
_ALL = 1_000_000

console = Console()
err = Console(stderr=True, soft_wrap=True)
workspaces_app = typer.Typer(help="Workspaces: named collections of documents, each with its own readers.")
Progress = Callable[[str, int, int], None]


def create_workspace(s3: Any, bucket: str, workspace: str) -> bool:
    """Write the workspace's folder marker; False if it already existed (idempotent)."""
    key = workspace_prefix(check_workspace_id(workspace))
    if not key:
        return False  # the default workspace always exists
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) not in {"404", "NoSuchKey", "NotFound"}:
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    return True


def list_workspaces(s3: Any, bucket: str, ledger: Ledger) -> dict[str, dict[str, int]]:
    """Every workspace with its documents per status: the default one, those with a folder in
    the bucket, and those the ledger still has rows for (e.g. mid-deletion)."""
    found: dict[str, dict[str, int]] = {DEFAULT_WORKSPACE: {}}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=WORKSPACE_PREFIX, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            prefix = str(common["Prefix"])
            # A folder counts only while it holds a current object: moto also reports prefixes
            # whose keys carry only delete markers, so an emulated deleted workspace would linger.
            if s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
                found.setdefault(prefix[len(WORKSPACE_PREFIX) :].rstrip("/"), {})
    for name, counts in ledger.workspace_counts().items():
        found[name] = counts
    return dict(sorted(found.items()))


@dataclass
class DeleteReport:
    workspace: str
    objects: int = 0
    documents: int = 0
    remaining_chunks: int = 0
    notes: list[str] = field(default_factory=list)


class WorkspaceDeleteTimeout(RuntimeError):
    """The ingester did not remove every document in time; running the delete again continues."""


def delete_workspace(
    workspace: str,
    *,
    s3: Any,
    bucket: str,
    ledger: Ledger,
    backend: SearchBackend,
    queue: MessageSink,
    wait: Callable[[], None],
    timeout_polls: int = 600,
    progress: Progress | None = None,
) -> DeleteReport:
    """Remove the workspace's objects, chunks and ledger rows. Safe to run again after a crash.

    Chunks are removed by the ingester, through direct delete messages on the ingest queue: it
    is the index's one writer locally (tantivy's lock), and its per-document lease orders each
    delete after any ingest of the same document still in flight. `wait` runs between polls of
    the ledger (a sleep; in tests, the ingester's turn).
    """
    if check_workspace_id(workspace) == DEFAULT_WORKSPACE:
        raise ValueError("the default workspace cannot be deleted (it holds every key outside workspaces/)")
    report = DeleteReport(workspace)
    tell = progress or (lambda step, done, total: None)
    prefix = workspace_prefix(workspace)
    # 1. Objects first: nothing can re-ingest a document after its chunks are gone.
    keys = [
        str(item["Key"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}; run the delete again"
            )
        report.objects += len(batch)
        tell("objects", report.objects, len(keys))
    # 2. Ask the ingester to remove each document's chunks (a delete applied twice is harmless).
    pending = [
        r.document_id for r in ledger.list(None, _ALL, workspace=workspace) if r.status is not Status.DELETED
    ]
    for done, document_id in enumerate(pending, 1):
        queue.send(json.dumps({"action": "delete", "document_id": document_id, "qualified": True}))
        tell("deletes enqueued", done, len(pending))
    # 3. Wait until the ledger says each is deleted, then forget the rows.
    for _ in range(timeout_polls):
        left = [r for r in ledger.list(None, _ALL, workspace=workspace) if r.status is not Status.DELETED]
        tell("documents deleted", len(pending) - len(left), len(pending))
        if not left:
            break
        wait()
    else:
        raise WorkspaceDeleteTimeout(
            f"{len(left)} document(s) of {workspace} are not deleted yet (is the ingester running?); "
            "run the delete again to continue"
        )
    rows = ledger.list(None, _ALL, workspace=workspace)
    for done, record in enumerate(rows, 1):
        ledger.delete(record.document_id)
        report.documents += 1
        tell("ledger rows removed", done, len(rows))
    # 4. What the index still holds of the workspace (documents it has and the ledger never had).
    report.remaining_chunks = backend.count(operator_scope(workspace))
    if report.remaining_chunks:
        report.notes.append(
            f"{report.remaining_chunks} chunk(s) of {workspace} are in the index without a ledger row; "
            "`ragctl reindex` rebuilds the index from the ledger without them"
        )
    return report


# -- commands ---------------------------------------------------------------------------------------


def _bucket(settings: Settings) -> str:
    if not settings.document_bucket:
        err.print("[red]DOCUMENT_BUCKET is not set (start `ragctl dev`, or export the stack's outputs)[/]")
        raise typer.Exit(2)
    return settings.document_bucket


@workspaces_app.command("create")
def create_command(workspace: str, data_dir: DataDir = None) -> None:
    """Create a workspace (its folder in the bucket). Upload into it with `ragctl ingest -w ID`."""
    from service.wiring import aws_client

    name = checked_workspace(workspace)
    settings = ops_settings(data_dir)
    created = create_workspace(aws_client(settings, "s3"), _bucket(settings), name)
    console.print(f"workspace {workspace} {'created' if created else 'already exists'}")


@workspaces_app.command("list")
def list_command(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Every workspace with its documents per status."""
    from service.wiring import aws_client, build_ledger

    settings = ops_settings(data_dir)
    found = list_workspaces(aws_client(settings, "s3"), _bucket(settings), build_ledger(settings))
    if as_json:
        print(json.dumps({"workspaces": found}))
        return
    table = Table("workspace", "documents", "by status")
    for name, counts in found.items():
        by_status = " ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        table.add_row(escape(name), str(sum(counts.values())), by_status)
    console.print(table)


@workspaces_app.command("delete")
def delete_command(
    workspace: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Delete a workspace: its objects, chunks and ledger rows. Run again to finish an interrupted one."""
    from service.wiring import Container, aws_client

    name = checked_workspace(workspace)
    if name == DEFAULT_WORKSPACE:
        err.print("[red]the default workspace cannot be deleted[/]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Delete workspace {name} with all its documents?"):
        raise typer.Exit(1)
    settings = ops_settings(data_dir)
    if not settings.ingest_queue_url:
        err.print("[red]INGEST_QUEUE_URL is not set: the ingester removes the chunks (start `ragctl dev`)[/]")
        raise typer.Exit(2)
    container = Container(settings)

    def progress(step: str, done: int, total: int) -> None:
        if not as_json:
            err.print(f"{step}: {done}/{total}", highlight=False)

    try:
        report = delete_workspace(
            name,
            s3=aws_client(settings, "s3"),
            bucket=_bucket(settings),
            ledger=container.ledger,
            backend=container.backend,
            queue=SqsSink(aws_client(settings, "sqs"), settings.ingest_queue_url),
            wait=lambda: time.sleep(1),
            progress=progress,
        )
    except WorkspaceDeleteTimeout as error:
        err.print(f"[yellow]{escape(str(error))}[/]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report.__dict__))
        return
    console.print(
        f"workspace {name}: deleted {report.objects} object(s) and {report.documents} document(s) "
        "with their chunks and ledger rows"
    )
    for note in report.notes:
        err.print(f"[yellow]{escape(note)}[/]")
