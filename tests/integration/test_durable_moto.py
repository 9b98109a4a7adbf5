"""The local S3/SQS endpoint keeps objects, their versions and queued messages across a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from pipelines.local_aws import QueueSettings, create_resources
from service.contract import ResourceNames
from tests.e2e.conftest import free_port


class MotoProcess:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.moto_server", "-p", str(self.port), "--state", str(self.state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail("moto server did not start")

    def crash(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def client(self, service: str) -> Any:
        make: Any = boto3.client
        return make(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoProcess]:
    server = MotoProcess(tmp_path / "state.pickle")
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.terminate()
        server.process.wait()


def drain(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while got := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in got]
        for message in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_objects_versions_and_messages_survive_a_crash_of_the_local_endpoint(moto: MotoProcess) -> None:
    # Given the platform's bucket and queues, two versions of a document, and a second document
    s3, sqs = moto.client("s3"), moto.client("sqs")
    resources = create_resources(s3, sqs, ResourceNames.for_stack("local"), QueueSettings())
    bucket, queue = resources.document_bucket, resources.ingest_queue_url
    drain(sqs, queue)  # the s3:TestEvent
    s3.put_object(Bucket=bucket, Key="guide.md", Body=b"# v1")
    s3.put_object(Bucket=bucket, Key="guide.md", Body=b"# v2")
    s3.put_object(Bucket=bucket, Key="notes/a.md", Body=b"# a")
    # and a message a consumer received and never deleted (it crashed too)
    in_flight = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert len(in_flight) == 1
    # When the endpoint is killed with no chance to clean up, and started again
    moto.crash()
    moto.start()
    s3, sqs = moto.client("s3"), moto.client("sqs")
    # Then every object is there, with every version
    versions = s3.list_object_versions(Bucket=bucket, Prefix="guide.md")["Versions"]
    assert len(versions) == 2
    assert s3.get_object(Bucket=bucket, Key="guide.md")["Body"].read() == b"# v2"
    assert s3.get_object(Bucket=bucket, Key="notes/a.md")["Body"].read() == b"# a"
    # and all three events are on the queue, the one in flight visible again at once
    assert len(drain(sqs, queue)) == 3
    # and the bucket still notifies the queue
    s3.put_object(Bucket=bucket, Key="after.md", Body=b"# after")
    assert len(drain(sqs, queue)) == 1
    # and the state file is private
    assert moto.state.stat().st_mode & 0o777 == 0o600


def test_a_file_already_indexed_with_the_same_content_is_not_uploaded_or_waited_for_again(
    moto: MotoProcess, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from pipelines.dev import upload
    from pipelines.platform_file import PlatformInfo
    from service.ingest.ids import content_hash
    from service.ingest.ledger import LedgerRecord, SqliteLedger, Status, local_ledger_path

    s3, sqs = moto.client("s3"), moto.client("sqs")
    resources = create_resources(s3, sqs, ResourceNames.for_stack("local"), QueueSettings())
    info = PlatformInfo(
        api_url="http://127.0.0.1:9",
        api_key="k",
        aws_endpoint_url=moto.endpoint,
        document_bucket=resources.document_bucket,
        ingest_queue_url=resources.ingest_queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        data_dir=str(tmp_path),
    )
    (tmp_path / "docs").mkdir()
    for name in ("a.md", "b.md"):
        (tmp_path / "docs" / name).write_text(f"# {name}")
    files = sorted((tmp_path / "docs").glob("*.md"))
    # Given both files uploaded, and a.md indexed from that content (b.md not yet)
    assert upload(info, files, root=tmp_path).changed == ["docs/a.md", "docs/b.md"]
    ledger = SqliteLedger(local_ledger_path(tmp_path))
    stamp = datetime.now(UTC)
    ledger.put(
        LedgerRecord(
            document_id="docs/a.md",
            status=Status.INDEXED,
            content_hash=content_hash(b"# a.md"),
            chunk_ids=("c",),
            created_at=stamp,
            updated_at=stamp,
        )
    )
    ledger.close()
    # When the same files are uploaded again (as `make dev` does with its sample corpus on each start)
    again = upload(info, files, root=tmp_path)
    # Then only the one not yet indexed is uploaded and to be waited for; a.md gets no new version
    assert again.unchanged == ["docs/a.md"]
    assert again.changed == ["docs/b.md"]
    versions = s3.list_object_versions(Bucket=resources.document_bucket, Prefix="docs/a.md")["Versions"]
    assert len(versions) == 1
