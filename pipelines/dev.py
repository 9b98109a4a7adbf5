"""`ragctl dev`: the whole platform on a laptop, no cloud account.

Starts, as child processes: the moto server (S3 and SQS on 127.0.0.1), the
ingestion worker (the Lambda handler on the local queue) and the API (uvicorn).
Creates the bucket and queues, syncs the bundled sample corpus (this project's
own documentation) through the real pipeline with a progress bar, prints the
URL and the API key, and stops every child cleanly on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.files import create_private, private_dir, write_atomically
from pipelines.local_aws import QueueSettings, create_resources
from pipelines.platform_file import (
    LOCAL_CREDENTIALS,
    PROJECT_ROOT,
    REGION,
    STACK,
    PlatformInfo,
    pid_alive,
    platform_file,
)
from service.api.tokens_dev import ensure_dev_key
from service.contract import PROJECT, ResourceNames
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status, local_ledger_path

console = Console(stderr=True)
# A crashed child is restarted after 1, 2, 4 ... seconds, at most this long; a child that ran
# longer than STABLE_SECONDS before crashing starts the sequence again.
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0
# `ragctl ingest` says what it is waiting for after this long without progress.
QUIET_SECONDS = 15.0


def sample_corpus(root: Path = PROJECT_ROOT) -> list[Path]:
    """The project's own documentation: the platform can answer questions about deploying itself."""
    docs = sorted((root / "docs").glob("*.md"))
    readme = root / "README.md"
    return ([readme] if readme.exists() else []) + docs


def api_key_for(data_dir: Path) -> str:
    """The local API key, created 0600 (never world-readable, not even between write and chmod)."""
    path = data_dir / "api-key"
    create_private(path, secrets.token_urlsafe(24).encode())
    return path.read_text().strip()


def run_dir(data_dir: Path) -> Path:
    """Process ids and in-flight receipts of the running platform."""
    return data_dir / "run"


def inflight_file(data_dir: Path, pid: int) -> Path:
    """Receipt handles of the batch a worker process is applying now (`pipelines.worker`)."""
    return run_dir(data_dir) / f"inflight-{pid}.json"


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


@dataclass
class ChildSpec:
    name: str
    args: list[str]
    env: dict[str, str]
    quiet: bool = False


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    started: float
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Child processes: restarted with backoff when they crash, stopped in reverse order of start.

    `on_crash(name, pid)` runs before a crashed child is restarted (the worker's hook
    expires its leases and releases its in-flight messages).
    """

    data_dir: Path
    on_crash: Callable[[str, int], None] | None = None
    clock: Callable[[], float] = time.monotonic
    children: list[_Child] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return private_dir(self.data_dir / "logs")

    def start(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        process = self._spawn(spec)
        self.children.append(_Child(spec, process, self.clock()))
        self._write_pids()
        return process

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        """Start a child in its own session, so a terminal Ctrl-C reaches only us and we stop it in order."""
        output = (self.log_dir / f"{spec.name}.log").open("ab") if spec.quiet else None
        return subprocess.Popen(
            spec.args,
            env={**os.environ, **spec.env},
            cwd=PROJECT_ROOT,
            start_new_session=True,
            stdout=output,
            stderr=output,
        )

    def pids(self) -> dict[str, int]:
        return {child.spec.name: child.process.pid for child in self.children}

    def _write_pids(self) -> None:
        pids = {"dev": os.getpid(), **self.pids()}
        write_atomically(private_dir(run_dir(self.data_dir)) / "pids.json", json.dumps(pids).encode())

    def _log(self, message: str) -> None:
        console.print(f"[yellow]{escape(message)}[/]")
        with (self.log_dir / "supervisor.log").open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    def supervise(self) -> None:
        """Notice crashed children and restart each when its backoff has passed."""
        at = self.clock()
        for child in self.children:
            code = child.process.poll()
            if code is not None and child.restart_at is None:
                if at - child.started >= STABLE_SECONDS:
                    child.failures = 0
                child.failures += 1
                delay = min(BACKOFF_MAX_SECONDS, 2.0 ** (child.failures - 1))
                child.restart_at = at + delay
                self._log(
                    f"{child.spec.name} (pid {child.process.pid}) exited with code {code}; "
                    f"restarting it in {delay:.0f} s (crash {child.failures} in a row)"
                )
                if self.on_crash is not None:
                    self.on_crash(child.spec.name, child.process.pid)
            if child.restart_at is not None and at >= child.restart_at:
                child.process = self._spawn(child.spec)
                child.started, child.restart_at = at, None
                self._log(f"{child.spec.name} restarted (pid {child.process.pid})")
                self._write_pids()

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
        for child in reversed(self.children):
            process = child.process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    console.print(f"[yellow]{child.spec.name} did not stop in 15 s; killing it[/]")
                    process.kill()
                    process.wait()
        self.children.clear()


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# What each child of `ragctl dev` runs: a leftover process is only ever ended if its command says so.
CHILD_COMMANDS = {"moto": "pipelines.moto_server", "worker": "pipelines.worker", "api": "uvicorn"}


def reap_leftovers(data_dir: Path, stop_after: float = 10.0) -> list[str]:
    """Stop the children a crashed `ragctl dev` left running on this data directory; what was stopped.

    Children run in their own sessions (so a terminal's Ctrl-C reaches only `ragctl dev`), so a
    `kill -9` of `ragctl dev` leaves them running, holding the ports and the index. Refuses to
    start over a `ragctl dev` that is still alive.
    """
    path = run_dir(data_dir) / "pids.json"
    try:
        pids: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    dev = pids.pop("dev", None)
    if dev is not None and dev != os.getpid() and pid_alive(dev):
        command = _command_line(dev)
        if ("ragctl" in command or "pipelines.cli" in command) and " dev" in command:
            raise SystemExit(f"a platform is already running on {data_dir} (ragctl dev, pid {dev})")
    stopped = []
    for name, pid in pids.items():
        if pid_alive(pid) and CHILD_COMMANDS.get(name, "\0") in _command_line(pid):
            os.kill(pid, signal.SIGTERM)
            stopped.append(f"{name} (pid {pid})")
            deadline = time.monotonic() + stop_after
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return stopped


@contextmanager
def running_platform(
    data_dir: Path, host: str, api_port: int, aws_port: int, seed: bool = True
) -> Iterator[tuple[PlatformInfo, Supervisor]]:
    """Start everything; on exit (normal, error or Ctrl-C) stop every child."""
    data_dir = private_dir(data_dir.resolve())
    leftovers = reap_leftovers(data_dir)
    if leftovers:
        console.print(f"[yellow]stopped what a crashed platform left running: {', '.join(leftovers)}[/]")
    holder: list[PlatformInfo] = []
    supervisor = Supervisor(data_dir, on_crash=lambda name, pid: _after_crash(holder, name, pid))
    try:
        endpoint = f"http://{host}:{aws_port}"
        state = private_dir(data_dir / "aws") / "state.pickle"
        moto = supervisor.start(
            ChildSpec(
                "moto",
                [
                    *(sys.executable, "-m", "pipelines.moto_server"),
                    *("-H", host, "-p", str(aws_port), "--state", str(state)),
                ],
                {},
                quiet=True,
            )
        )
        _wait_http(f"{endpoint}/moto-api/", 60, moto, "moto server")
        info = _provision(data_dir, host, api_port, endpoint)
        holder.append(info)
        startup_reconcile(info)
        env = info.child_env()
        supervisor.start(ChildSpec("worker", [sys.executable, "-m", "pipelines.worker"], env))
        api = supervisor.start(
            ChildSpec(
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
        )
        _wait_http(f"{info.api_url}/ready", 180, api, "API")
        if seed:
            # Ready means uploads and queries are served; the bundled documentation is indexed
            # behind it, each document printed as it lands (it took most of a cold start: issue 17).
            console.print("indexing this project's documentation in the background (`ragctl docs list`)")
            threading.Thread(
                target=_seed, args=(info, sample_corpus()), name="sample-corpus", daemon=True
            ).start()
        yield info, supervisor
    finally:
        supervisor.stop()
        _forget(data_dir)


def _forget(data_dir: Path) -> None:
    """A stopped platform leaves no platform file behind (a crashed one does; readers check its pid)."""
    path = platform_file(data_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _after_crash(holder: list[PlatformInfo], name: str, pid: int) -> None:
    if name == "worker" and holder:
        release_worker(holder[0], pid)


def release_worker(info: PlatformInfo, pid: int) -> None:
    """A worker died: expire its ledger leases and make its in-flight messages visible again.

    Lambda would wait out the visibility timeout; locally the supervisor knows the worker is
    gone, so its documents are retried at once instead of minutes later.
    """
    from pipelines.reconcile import owned_by, release_leases

    ledger = SqliteLedger(local_ledger_path(Path(info.data_dir)))
    try:
        released = release_leases(ledger, owned_by([pid]))
    finally:
        ledger.close()
    path = inflight_file(Path(info.data_dir), pid)
    handles: list[str] = json.loads(path.read_text()) if path.exists() else []
    from botocore.exceptions import ClientError

    sqs = local_client(info, "sqs")
    for handle in handles:
        with suppress(ClientError):  # already deleted or received again: nothing to release
            sqs.change_message_visibility(
                QueueUrl=info.ingest_queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
    path.unlink(missing_ok=True)
    if released or handles:
        console.print(
            f"[yellow]released {len(released)} lease(s) and {len(handles)} in-flight message(s) "
            f"of worker {pid}: {escape(', '.join(released)) or '-'}[/]"
        )


def _owner_gone(owner: str) -> bool:
    """A lease owner (`host:pid:nonce`) that is a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def startup_reconcile(info: PlatformInfo) -> None:
    """Before the worker starts: expire dead workers' leases, then requeue what is missing or stale."""
    from pipelines.ops import ops_settings
    from pipelines.reconcile import S3Listing, reconcile, release_leases
    from service.ingest.queue import SqsSink
    from service.wiring import build_backend

    data_dir = Path(info.data_dir)
    ledger = SqliteLedger(local_ledger_path(data_dir))
    settings = ops_settings(data_dir)
    backend = build_backend(settings, settings.embedding_dimension)
    try:
        released = release_leases(ledger, _owner_gone)
        report = reconcile(
            S3Listing(local_client(info, "s3"), info.document_bucket),
            ledger,
            backend,
            SqsSink(local_client(info, "sqs"), info.ingest_queue_url),
            stuck_after_seconds=0,
        )
    finally:
        ledger.close()
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts().items()))
    console.print(
        f"reconciled bucket ({report.objects} objects), ledger ({report.ledger} documents) and index: "
        + (f"requeued {counts}" if counts else "in step")
        + (f"; expired {len(released)} orphaned lease(s)" if released else "")
    )


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
    # The local issuer's signing key exists before the API starts, so its JWKS is never empty.
    ensure_dev_key(data_dir)
    info = PlatformInfo(
        api_url=f"http://{host}:{api_port}",
        api_key=api_key_for(data_dir),
        aws_endpoint_url=endpoint,
        document_bucket=resources.document_bucket,
        ingest_queue_url=resources.ingest_queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        data_dir=str(data_dir),
        pid=os.getpid(),
    )
    info.save(data_dir)
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


class KeyCollision(ValueError):
    """Two different files would be uploaded under one key (one document id)."""


def document_keys(files: list[Path], root: Path, prefix: str = "") -> dict[str, Path]:
    """Each file's object key, which is its document id: `prefix` + its path relative to `root`.

    A file outside `root` is keyed by its path relative to the deepest folder all such
    files share, so `/tmp/x/a/index.md` and `/tmp/x/b/index.md` stay `a/index.md` and
    `b/index.md`. Two files that would still share a key are refused, never overwritten.
    """
    resolved = [path.resolve() for path in files]
    outside = [path for path in resolved if not path.is_relative_to(root)]
    base = Path(os.path.commonpath([p.parent for p in outside])) if outside else root
    keys: dict[str, Path] = {}
    for path in resolved:
        relative = path.relative_to(root if path.is_relative_to(root) else base)
        key = f"{prefix.strip('/')}/{relative.as_posix()}" if prefix.strip("/") else relative.as_posix()
        if key in keys and keys[key] != path:
            raise KeyCollision(f"{keys[key]} and {path} would both be document {key!r}")
        keys[key] = path
    return keys


@dataclass
class Uploaded:
    keys: list[str]
    """Every file's key (document id), in order."""
    unchanged: list[str]
    """Keys whose content the bucket holds and the ledger shows indexed: not uploaded again."""

    @property
    def changed(self) -> list[str]:
        return [key for key in self.keys if key not in set(self.unchanged)]


def upload(info: PlatformInfo, files: list[Path], root: Path = PROJECT_ROOT, prefix: str = "") -> Uploaded:
    """Put files in the document bucket under their keys (see `document_keys`).

    A file the bucket already holds and the ledger shows indexed with the same content is not
    uploaded again: no new version, no event, and nothing to wait for.
    """
    from service.ingest.ids import content_hash

    s3 = local_client(info, "s3")
    keys = document_keys(files, root.resolve(), prefix)
    unchanged: list[str] = []
    ledger = SqliteLedger(local_ledger_path(Path(info.data_dir)))
    try:
        for key, path in keys.items():
            body = path.read_bytes()
            record = ledger.get(key)
            if (
                record is not None
                and record.status is Status.INDEXED
                and record.content_hash == content_hash(body)
                and _stored_etag(s3, info.document_bucket, key)
                == hashlib.md5(body, usedforsecurity=False).hexdigest()
            ):
                unchanged.append(key)
                continue
            s3.put_object(Bucket=info.document_bucket, Key=key, Body=body)
    finally:
        ledger.close()
    return Uploaded(list(keys), unchanged)


def _stored_etag(s3: Any, bucket: str, key: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    except ClientError:
        return None


def describe(record: LedgerRecord | None, at: float | None = None) -> str:
    """A document's ledger state in words, for an operator waiting on it."""
    if record is None:
        return "not in the ledger: no event for it has reached the worker yet"
    parts = [record.status.value, f"attempts {record.attempts}"]
    if record.lease_owner and (record.lease_until or 0) > (at or time.time()):
        parts.append(f"being applied by {record.lease_owner}")
    elif record.lease_owner:
        parts.append(f"lease of {record.lease_owner} expired")
    if record.last_error:
        parts.append(f"last error: {record.last_error}")
    return ", ".join(parts)


@dataclass
class FollowResult:
    done: dict[str, str]
    stuck: dict[str, str]


def follow(
    info: PlatformInfo,
    keys: list[str],
    since: float,
    timeout: float,
    *,
    supervisor: Supervisor | None = None,
    quiet_seconds: float = QUIET_SECONDS,
) -> FollowResult:
    """Follow each document until it is indexed or failed after `since`, printing each as it lands.

    Never silent: after `quiet_seconds` without progress it names what it waits for and the
    ledger state of each; at the deadline the rest are returned as stuck, with that state.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return FollowResult({}, {})
    ledger = SqliteLedger(local_ledger_path(Path(info.data_dir)))
    done: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    last_progress, quiet = time.monotonic(), quiet_seconds
    columns = (TextColumn("[bold]ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("ingest", total=len(wanted))
            while len(done) < len(wanted) and time.monotonic() < deadline:
                if supervisor is not None:
                    supervisor.supervise()
                for key in wanted:
                    record = ledger.get(key)
                    if (
                        key not in done
                        and record is not None
                        and record.updated_at.timestamp() >= since
                        and record.status in (Status.INDEXED, Status.FAILED)
                    ):
                        done[key] = record.status.value
                        last_progress, quiet = time.monotonic(), quiet_seconds
                        progress.console.print(_landed(record))
                progress.update(task, completed=len(done))
                if time.monotonic() - last_progress >= quiet and len(done) < len(wanted):
                    last_progress, quiet = time.monotonic(), min(4 * quiet_seconds, 2 * quiet)
                    waiting = [k for k in wanted if k not in done]
                    progress.console.print(f"[dim]waiting for {len(waiting)} document(s):[/]")
                    for key in waiting[:10]:
                        progress.console.print(
                            f"[dim]  {escape(key)}: {escape(describe(ledger.get(key)))}[/]"
                        )
                time.sleep(0.25)
        stuck = {k: describe(ledger.get(k)) for k in wanted if k not in done}
    finally:
        ledger.close()
    return FollowResult(done, stuck)


def _landed(record: LedgerRecord) -> str:
    if record.status is Status.INDEXED:
        return f"  [green]indexed[/] {escape(record.document_id)} ({len(record.chunk_ids)} chunks)"
    return (
        f"  [red]failed[/]  {escape(record.document_id)}: {escape(record.last_error or 'no reason recorded')}"
    )


def _seed(info: PlatformInfo, files: list[Path]) -> None:
    try:
        sync_sample_corpus(info, files)
    except Exception as error:  # the platform stopping mid-way ends the thread, never the platform
        console.print(f"[yellow]sample corpus sync stopped: {escape(str(error))}[/]")


def sync_sample_corpus(info: PlatformInfo, files: list[Path], supervisor: Supervisor | None = None) -> None:
    if not files:
        return
    since = time.time() - 1
    uploaded = upload(info, files)
    if uploaded.unchanged:
        console.print(f"{len(uploaded.unchanged)} sample document(s) unchanged since they were indexed")
    result = follow(info, uploaded.changed, since, timeout=600, supervisor=supervisor)
    failed = [k for k, s in result.done.items() if s == Status.FAILED.value]
    if failed:
        console.print(f"[yellow]sample documents that failed: {escape(', '.join(failed))}[/]")
    for key, state in result.stuck.items():
        console.print(f"[yellow]sample document still pending: {escape(key)} ({escape(state)})[/]")


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
    # Everything the platform and its children create (ledger, index, logs) is private to the user.
    os.umask(0o077)
    ensure_free(host, api_port, "--port")
    ensure_free(host, aws_port, "--aws-port")
    stop_on_signals()
    with running_platform(data_dir, host, api_port, aws_port, seed) as (info, supervisor):
        console.print(f"\n[bold green]{PROJECT} is ready[/] in {time.monotonic() - started:.1f} s")
        console.print(f"  web page : {info.api_url}/#key={info.api_key}")
        console.print(f"  API      : {info.api_url}  (docs at {info.api_url}/docs)")
        console.print(f"  API key  : {info.api_key}   (header x-api-key; an admin of every workspace)")
        console.print(f"  sign in  : Sign in on {info.api_url}/ (the development issuer asks who to be),")
        console.print("             or ragctl token issue --user you --groups admins (Authorization: Bearer)")
        console.print(f"  S3/SQS   : {info.aws_endpoint_url}  bucket {info.document_bucket}")
        console.print(f"  data dir : {info.data_dir}")
        console.print("Press Ctrl-C to stop.")
        try:
            while True:
                supervisor.supervise()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        console.print("stopping…")
