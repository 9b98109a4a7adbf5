"""`python -m pipelines.postdeploy` end to end over real sockets on 127.0.0.1.

A moto server stands in for the local platform's S3 and a small HTTP server for its API, and
the suite reads them from a `.data/platform.json`-shaped file, exactly as `make smoke` does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pipelines.postdeploy.cli import main
from service.contract import API_KEY_HEADER

BUCKET = "rag-platform-local-documents"
KEY = "local-key"
WORD = re.compile(r"[a-z0-9]{12,}")


def _api(s3: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(200, {"status": "ok"})

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if self.headers.get(API_KEY_HEADER) != KEY:
                self._reply(401, {"detail": "unauthorized"})
                return
            tokens = set(WORD.findall(payload["question"].lower()))
            cited: list[dict[str, Any]] = []
            for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
                text = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode().lower()
                if tokens & set(WORD.findall(text)):
                    cited.append({"number": len(cited) + 1, "document_id": obj["Key"]})
            self._reply(200, {"answer": "…", "citations": cited})

    return Handler


@pytest.fixture
def platform_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The suite must bring its own dummy credentials for the local endpoint.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    s3.create_bucket(Bucket=BUCKET)
    api = ThreadingHTTPServer(("127.0.0.1", 0), _api(s3))
    threading.Thread(target=api.serve_forever, daemon=True).start()
    path = tmp_path / "platform.json"
    path.write_text(
        json.dumps(
            {
                "api_url": f"http://127.0.0.1:{api.server_address[1]}",
                "api_key": KEY,
                "aws_endpoint_url": endpoint,
                "document_bucket": BUCKET,
                "ingest_queue_url": f"{endpoint}/123456789012/rag-platform-local-ingest",
                "dead_letter_queue_url": f"{endpoint}/123456789012/rag-platform-local-ingest-dlq",
            }
        )
    )
    try:
        yield path
    finally:
        api.shutdown()
        api.server_close()
        moto.stop()


def test_smoke_from_the_local_platform_file_passes_and_reports(
    platform_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running platform described by its platform.json
    report = tmp_path / "reports" / "smoke.json"

    # When `python -m pipelines.postdeploy smoke --from-local ...` runs
    status = main(
        [
            "smoke",
            "--from-local",
            str(platform_file),
            "--timeout",
            "5",
            "--poll-interval",
            "0.1",
            "--json-report",
            str(report),
        ],
        environ={},
    )

    # Then it exits 0, prints one line per check and writes the JSON report
    out = capsys.readouterr().out
    assert status == 0, out
    assert "postdeploy smoke passed (4 checks)" in out
    assert [c["name"] for c in json.loads(report.read_text())] == [
        "health",
        "auth required",
        "canary cited",
        "canary forgotten",
    ]


def test_a_wrong_api_key_makes_the_run_exit_non_zero(
    platform_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the environment overrides the key with a wrong one
    # When the smoke suite runs / Then the canary is never cited and the exit status is 1
    status = main(
        ["smoke", "--from-local", str(platform_file), "--timeout", "0.3", "--poll-interval", "0.1"],
        environ={"POSTDEPLOY_API_KEY": "wrong"},
    )
    assert status == 1
    assert "FAIL] canary cited" in capsys.readouterr().out


def test_an_unresolvable_target_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no platform file / Then exit status 2 and a message saying how to start the platform
    assert main(["gate", "--from-local", str(tmp_path / "absent.json")], environ={}) == 2
    assert "make dev" in capsys.readouterr().err
