"""`ragctl dev`: the whole platform on a laptop, no cloud account.

Starts, as child processes: the moto server (S3 and SQS on 127.0.0.1), the
ingestion worker (the Lambda handler on the local queue) and the API (uvicorn).
Creates the bucket and queues, syncs the bundled sample corpus (this project's
own documentation) through the real pipeline with a progress bar, prints the
URL and the API key, and stops every child cleanly on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.local_aws import QueueSettings, create_resources
from pipelines.platform_file import (
    LOCAL_CREDENTIALS,
    REGION,
    STACK,
    PlatformInfo,
    platform_file,
)
from service.contract import ResourceNames
from service.ingest.ledger import SqliteLedger, Status, local_ledger_path

console = Console(stderr=True)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def sample_corpus(root: Path = PROJECT_ROOT) -> list[Path]:
    """The project's own documentation: the platform can answer questions about deploying itself."""
    docs = sorted((root / "docs").glob("*.md"))
    readme = root / "README.md"
    return ([readme] if readme.exists() else []) + docs


def api_key_for(data_dir: Path) -> str:
    path = data_dir / "api-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _wait_http(url: str, timeout: float, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} during start-up")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{name} did not answer at {url} within {timeout:.0f}s")


class Children:
    """Child processes, stopped in reverse order of start."""

    def __init__(self, log_dir: Path) -> None:
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, args: list[str], env: dict[str, str], quiet: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start a child in its own session, so a terminal Ctrl-C reaches only us and we stop it in order."""
        output = (self.log_dir / f"{name}.log").open("ab") if quiet else None
        process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            start_new_session=True,
            stdout=output,
            stderr=output,
        )
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        # A second Ctrl-C must not cut the shutdown short and orphan a child.
        previous = {
            n: signal.signal(n, signal.SIG_IGN) for n in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            self._stop_all()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _stop_all(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    console.print(f"[yellow]{name} did not stop in 15 s; killing it[/]")
                    process.kill()
                    process.wait()
        self.processes.clear()

    def check(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited unexpectedly with code {process.returncode}")


@contextmanager
def running_platform(
    data_dir: Path, host: str, api_port: int, aws_port: int, seed: bool = True
) -> Iterator[tuple[PlatformInfo, Children]]:
    """Start everything; on exit (normal, error or Ctrl-C) stop every child."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    children = Children(data_dir / "logs")
    try:
        endpoint = f"http://{host}:{aws_port}"
        moto = children.start(
            "moto",
            [sys.executable, "-m", "pipelines.moto_server", "-H", host, "-p", str(aws_port)],
            {},
            quiet=True,
        )
        _wait_http(f"{endpoint}/moto-api/", 60, moto, "moto server")
        info = _provision(data_dir, host, api_port, endpoint)
        env = info.child_env()
        children.start("worker", [sys.executable, "-m", "pipelines.worker"], env)
        api = children.start(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "service.api.asgi:app_from_env",
                "--host",
                host,
                "--port",
                str(api_port),
                "--log-level",
                "warning",
            ],
            env,
        )
        _wait_http(f"{info.api_url}/health", 180, api, "API")
        if seed:
            sync_sample_corpus(info, sample_corpus(), children)
        _wait_http(f"{info.api_url}/ready", 180, api, "API")
        yield info, children
    finally:
        children.stop()


def _provision(data_dir: Path, host: str, api_port: int, endpoint: str) -> PlatformInfo:
    import boto3

    session = boto3.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    names = ResourceNames.for_stack(STACK)
    resources = create_resources(
        session.client("s3", endpoint_url=endpoint),
        session.client("sqs", endpoint_url=endpoint),
        names,
        QueueSettings(),
    )
    info = PlatformInfo(
        api_url=f"http://{host}:{api_port}",
        api_key=api_key_for(data_dir),
        aws_endpoint_url=endpoint,
        document_bucket=resources.document_bucket,
        ingest_queue_url=resources.ingest_queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        data_dir=str(data_dir),
    )
    platform_file(data_dir).write_text(json.dumps(asdict(info), indent=2))
    return info


def local_client(info: PlatformInfo, service: str) -> Any:
    """A boto3 client for the local platform's moto endpoint."""
    import boto3

    make_client: Any = boto3.client  # boto3-stubs overloads on a literal service name
    return make_client(
        service,
        endpoint_url=info.aws_endpoint_url,
        region_name=info.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def upload(info: PlatformInfo, files: list[Path], root: Path = PROJECT_ROOT) -> list[str]:
    """Put files in the document bucket; the key (the document id) is the path relative to `root`."""
    s3 = local_client(info, "s3")
    keys = []
    for path in files:
        resolved = path.resolve()
        key = str(resolved.relative_to(root)) if resolved.is_relative_to(root) else path.name
        s3.put_object(Bucket=info.document_bucket, Key=key, Body=resolved.read_bytes())
        keys.append(key)
    return keys


def follow(
    info: PlatformInfo, keys: list[str], since: float, timeout: float, children: Children | None = None
) -> dict[str, str]:
    """Show a progress bar until every document is indexed or failed after `since`."""
    ledger = SqliteLedger(local_ledger_path(Path(info.data_dir)))
    done: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    columns = (TextColumn("[bold]ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("ingest", total=len(keys))
        while len(done) < len(keys) and time.monotonic() < deadline:
            if children is not None:
                children.check()
            for key in keys:
                record = ledger.get(key)
                if (
                    key not in done
                    and record is not None
                    and record.updated_at.timestamp() >= since
                    and record.status in (Status.INDEXED, Status.FAILED)
                ):
                    done[key] = record.status.value
            progress.update(task, completed=len(done))
            time.sleep(0.25)
    ledger.close()
    return done


def sync_sample_corpus(info: PlatformInfo, files: list[Path], children: Children) -> None:
    if not files:
        return
    since = time.time() - 1
    keys = upload(info, files)
    done = follow(info, keys, since, timeout=600, children=children)
    failed = [k for k, s in done.items() if s == Status.FAILED.value]
    if failed:
        console.print(f"[yellow]sample documents that failed: {', '.join(failed)}[/]")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C, `kill` and a closed terminal all stop the platform cleanly.

    Installing the SIGINT handler explicitly matters: a shell starts background jobs with
    SIGINT ignored, and Python keeps an ignored SIGINT ignored.
    """
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)


def ensure_free(host: str, port: int, option: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise SystemExit(
                f"port {port} on {host} is in use (is another `make dev` running?); "
                f"choose another with {option}"
            ) from None


def run(data_dir: Path, host: str, api_port: int, aws_port: int, seed: bool) -> None:
    started = time.monotonic()
    ensure_free(host, api_port, "--port")
    ensure_free(host, aws_port, "--aws-port")
    stop_on_signals()
    with running_platform(data_dir, host, api_port, aws_port, seed) as (info, children):
        console.print(f"\n[bold green]rag-platform is ready[/] in {time.monotonic() - started:.1f} s")
        console.print(f"  web page : {info.api_url}/#key={info.api_key}")
        console.print(f"  API      : {info.api_url}  (docs at {info.api_url}/docs)")
        console.print(f"  API key  : {info.api_key}   (header x-api-key)")
        console.print(f"  S3/SQS   : {info.aws_endpoint_url}  bucket {info.document_bucket}")
        console.print(f"  data dir : {info.data_dir}")
        console.print("Press Ctrl-C to stop.")
        try:
            while True:
                children.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        console.print("stopping…")
