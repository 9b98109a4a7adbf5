"""`ragctl docs` and `ragctl dlq`: the document ledger and the dead-letter queue, for operators.

Both work against the running local platform (`.data/platform.json`) or, when it is
absent, a deployed stack named by the environment (`LEDGER_TABLE`, `DEAD_LETTER_QUEUE_URL`, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from service.access import check_workspace_id
from service.ingest.dead_letters import diagnose
from service.ingest.ledger import Ledger, LedgerRecord, Status
from service.ingest.queue import DOCUMENT_ATTRIBUTE, FAILED_AT_ATTRIBUTE, REASON_ATTRIBUTE
from service.settings import Settings, SettingsError, load_settings
from service.workspaces import workspace_of

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, however narrow the terminal
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The local platform's data directory. Default: $DATA_DIR, else ./.data if a platform "
        "runs there, else the checkout's .data.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
InWorkspace = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Only this workspace's documents (default: all).")
]


def _in_workspace(document_id: str | None, workspace: str | None) -> bool:
    """Whether a document id is in `workspace` (None: any). Ids whose workspace part is malformed,
    as some dead-lettered ones are, belong to no workspace."""
    if workspace is None:
        return True
    try:
        return document_id is not None and workspace_of(document_id) == workspace
    except ValueError:
        return False


def checked_workspace(workspace: str) -> str:
    """A workspace id from the command line; a malformed one exits 2 naming the option."""
    try:
        return check_workspace_id(workspace)
    except ValueError as error:
        err.print(f"[red]workspace {escape(workspace)!r}: {error}[/]")
        raise typer.Exit(2) from None


def _checked(workspace: str | None) -> str | None:
    return None if workspace is None else checked_workspace(workspace)


docs_app = typer.Typer(help="The document ledger: what was indexed, from which version, and how it went.")
dlq_app = typer.Typer(help="The dead-letter queue: poison messages with their reason, and redrive.")


def ops_settings(data_dir: Path | None) -> Settings:
    """Settings for the running local platform if there is one, else from the environment.

    A platform file left by a platform that is no longer running is an error, in one line.
    """
    from pipelines.platform_file import PlatformInfo, PlatformNotRunning, find_data_dir, platform_file

    directory = find_data_dir(data_dir)
    try:
        info = PlatformInfo.running(directory)
    except PlatformNotRunning as error:
        if platform_file(directory).exists():
            err.print(f"[red]{escape(str(error))}[/]")
            raise typer.Exit(1) from None
        overrides: dict[str, object] = {"data_dir": directory} if data_dir is not None else {}
    else:
        env = info.child_env()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, env[name])
        overrides = {
            "data_dir": Path(info.data_dir),
            "aws_endpoint_url": info.aws_endpoint_url,
            "aws_region": info.region,
            "document_bucket": info.document_bucket,
            "ingest_queue_url": info.ingest_queue_url,
            "dead_letter_queue_url": info.dead_letter_queue_url,
        }
    try:
        return load_settings(**overrides)
    except SettingsError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


def _ledger(settings: Settings) -> Ledger:
    from service.wiring import build_ledger

    return build_ledger(settings)


def _sqs(settings: Settings) -> Any:
    from service.wiring import aws_client

    return aws_client(settings, "sqs")


# -- docs -------------------------------------------------------------------------------------------


def record_row(record: LedgerRecord) -> dict[str, object]:
    return {
        "document_id": record.document_id,
        "status": record.status.value,
        "chunks": len(record.chunk_ids),
        "version": record.version,
        "updated_at": record.updated_at.isoformat(),
        "last_error": record.last_error,
    }


@docs_app.command("list")
def docs_list(
    status: Annotated[Status | None, typer.Option(help="Only documents in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    data_dir: DataDir = None,
    as_json: AsJson = False,
    workspace: InWorkspace = None,
) -> None:
    """List documents with their status."""
    workspace = _checked(workspace)
    ledger = _ledger(ops_settings(data_dir))
    records = ledger.list(status, limit, workspace=workspace)
    counts = ledger.counts(workspace)
    if as_json:
        print(json.dumps({"counts": counts, "documents": [record_row(r) for r in records]}))
        return
    table = Table("document", "status", "chunks", "updated", "last error")
    for record in records:
        row = record_row(record)
        table.add_row(
            str(row["document_id"]),
            str(row["status"]),
            str(row["chunks"]),
            str(row["updated_at"])[:19],
            str(row["last_error"] or "")[:80],
        )
    console.print(table)
    console.print(" ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


@docs_app.command("show")
def docs_show(document_id: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Everything the ledger knows about one document."""
    record = _ledger(ops_settings(data_dir)).get(document_id)
    if record is None:
        err.print(f"[red]no document {document_id!r} in the ledger[/]")
        raise typer.Exit(1)
    if as_json:
        print(record.model_dump_json())
        return
    for name, value in record.model_dump(mode="json", exclude={"chunk_ids"}).items():
        console.print(f"[bold]{name:>16}[/] {value}")
    console.print(f"[bold]{'chunk_ids':>16}[/] {len(record.chunk_ids)}: {', '.join(record.chunk_ids[:5])}…")


def delete_document(settings: Settings, ledger: Ledger, s3: Any, sqs: Any, document_id: str) -> str:
    """Delete the source object (if in S3) and enqueue a direct delete; return what was done."""
    record = ledger.get(document_id)
    source = record.source if record else None
    done = []
    if source and source.startswith("s3://"):
        bucket, key = source[5:].split("/", 1)
        s3.delete_object(Bucket=bucket, Key=key)
        done.append(f"deleted {source}")
    if not settings.ingest_queue_url:
        raise RuntimeError("INGEST_QUEUE_URL is not set: cannot enqueue the delete")
    # S3 sends ObjectRemoved in the cloud, moto does not for versioned buckets: the direct
    # message covers both, and applying a delete twice is harmless.
    sqs.send_message(
        QueueUrl=settings.ingest_queue_url,
        MessageBody=json.dumps({"action": "delete", "document_id": document_id}),
    )
    done.append("enqueued the removal of its chunks")
    return "; ".join(done)


@docs_app.command("delete")
def docs_delete(document_id: str, data_dir: DataDir = None) -> None:
    """Delete a document: its source object, then (through the queue) its chunks."""
    from service.wiring import aws_client

    settings = ops_settings(data_dir)
    console.print(
        delete_document(settings, _ledger(settings), aws_client(settings, "s3"), _sqs(settings), document_id)
    )


# -- dlq --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    document_id: str | None
    reason: str | None
    failed_at: str | None
    sent_at: str | None

    def row(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "receipt_handle"}


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {}).get("StringValue")
    return str(value) if value else None


def peek(sqs: Any, queue_url: str, ledger: Ledger | None = None, limit: int = 1000) -> list[DeadLetter]:
    """Read up to `limit` messages without consuming them (they are made visible again)."""
    seen: dict[str, DeadLetter] = {}
    while len(seen) < limit:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            diagnosis = diagnose(
                message["Body"],
                _attribute(message, DOCUMENT_ATTRIBUTE),
                _attribute(message, REASON_ATTRIBUTE),
                ledger,
                message.get("Attributes", {}).get("ApproximateReceiveCount"),
            )
            document_id, reason = diagnosis.document_id, diagnosis.reason
            sent = message.get("Attributes", {}).get("SentTimestamp")
            seen[message["MessageId"]] = DeadLetter(
                message["MessageId"],
                message["ReceiptHandle"],
                message["Body"],
                document_id,
                reason,
                _attribute(message, FAILED_AT_ATTRIBUTE),
                sent,
            )
    for letter in seen.values():
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
        )
    return list(seen.values())


def redrive(sqs: Any, ledger: Ledger, dlq_url: str, queue_url: str, letters: list[DeadLetter]) -> int:
    """Send each message back to the ingest queue, then delete it from the DLQ."""
    for letter in letters:
        if letter.document_id and (record := ledger.get(letter.document_id)):
            # Forget the dead-letter mark, so a message that fails again is dead-lettered again.
            ledger.put(record.model_copy(update={"dead_letter_key": None}))
        sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
    return len(letters)


def _queues(settings: Settings) -> tuple[str, str]:
    if not settings.dead_letter_queue_url or not settings.ingest_queue_url:
        err.print("[red]DEAD_LETTER_QUEUE_URL and INGEST_QUEUE_URL are needed: start `ragctl dev` first[/]")
        raise typer.Exit(2)
    return settings.dead_letter_queue_url, settings.ingest_queue_url


@dlq_app.command("list")
def dlq_list(data_dir: DataDir = None, as_json: AsJson = False, workspace: InWorkspace = None) -> None:
    """Poison messages in the DLQ, with their reason."""
    workspace = _checked(workspace)
    settings = ops_settings(data_dir)
    dlq_url, _ = _queues(settings)
    letters = [
        letter
        for letter in peek(_sqs(settings), dlq_url, _ledger(settings))
        if _in_workspace(letter.document_id, workspace)
    ]
    if as_json:
        print(json.dumps([letter.row() | {"body": None} for letter in letters]))
        return
    if not letters:
        console.print("the dead-letter queue is empty: no document has failed permanently")
        return
    table = Table("message id", "document", "reason")
    for letter in letters:
        table.add_row(letter.message_id, letter.document_id or "-", (letter.reason or "-")[:100])
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    message: Annotated[str, typer.Argument(help="A message id or a document id.")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """One dead-lettered message, body included."""
    settings = ops_settings(data_dir)
    dlq_url, _ = _queues(settings)
    matches = [
        m
        for m in peek(_sqs(settings), dlq_url, _ledger(settings))
        if message in (m.message_id, m.document_id)
    ]
    if not matches:
        err.print(f"[red]no message {message!r} in the DLQ[/]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps([m.row() for m in matches]))
        return
    for letter in matches:
        console.print_json(json.dumps(letter.row()))


@dlq_app.command("redrive")
def dlq_redrive(
    message: Annotated[str | None, typer.Argument(help="A message id or document id; or use --all.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Redrive every message.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Send dead-lettered messages back to the ingest queue (after fixing their cause)."""
    if not all_ and message is None:
        err.print("[red]name a message or document id, or pass --all[/]")
        raise typer.Exit(2)
    settings = ops_settings(data_dir)
    dlq_url, queue_url = _queues(settings)
    sqs, ledger = _sqs(settings), _ledger(settings)
    letters = [m for m in peek(sqs, dlq_url, ledger) if all_ or message in (m.message_id, m.document_id)]
    console.print(f"redrove {redrive(sqs, ledger, dlq_url, queue_url, letters)} message(s)")
