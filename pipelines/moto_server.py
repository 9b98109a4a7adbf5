"""The local S3/SQS endpoint: moto's server, made durable, plus the one S3 notification moto does not send.

Durability. moto keeps S3 objects (with their versions) and SQS queues (with their
messages) in memory. No S3+SQS server that keeps data on disk *and* sends S3 event
notifications to SQS installs from the registries this project uses (MinIO, ElasticMQ
and LocalStack's persistence all come as downloads or containers), so the platform
keeps moto and persists its state: after every request that changed something, and
before its response is sent, the S3 and SQS backends are pickled to one file in the
data directory, written atomically (temporary file, fsync, rename). A request that
was answered is therefore on disk; a crash at any point leaves the previous or the
new snapshot, never half of one. On start the snapshot is loaded back, and messages
that were in flight are made visible at once: no consumer survives a restart, so
waiting out their visibility timeout would only delay them.

Real S3 sends `s3:ObjectRemoved:DeleteMarkerCreated` when an object in a
versioned bucket is deleted without a version id
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html).
moto 5 creates the delete marker silently, so a local delete would never reach
the ingester. This launcher adds that event.
"""

from __future__ import annotations

import argparse
import copyreg
import io
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipelines.files import write_atomically

log = logging.getLogger("pipelines.moto_server")

PERSISTED_SERVICES = ("s3", "sqs")
# SQS actions that never change state (X-Amz-Target `AmazonSQS.<Action>`): no snapshot after them.
_SQS_READS = {
    "GetQueueUrl",
    "GetQueueAttributes",
    "ListQueues",
    "ListQueueTags",
    "ListDeadLetterSourceQueues",
}
_WRITE_ATTEMPTS = 5


def send_delete_marker_events() -> None:
    from moto.s3 import models, notifications

    original = models.S3Backend._set_delete_marker

    def _set_delete_marker(self: Any, bucket_name: str, key_name: str) -> Any:
        bucket = self.get_bucket(bucket_name)
        removed = bucket.keys.get(key_name)
        marker = original(self, bucket_name, key_name)
        if isinstance(removed, models.FakeKey):
            notifications.send_event(
                self.account_id,
                notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                bucket,
                removed,
            )
        return marker

    models.S3Backend._set_delete_marker = _set_delete_marker  # type: ignore[method-assign]


def _fresh(kind: Callable[[], Any]) -> Callable[[Any], tuple[Callable[[], Any], tuple[()]]]:
    return lambda _: (kind, ())


def _versioned_store(lists: dict[str, list[Any]]) -> Any:
    from moto.s3.utils import _VersionedKeyStore

    store = _VersionedKeyStore()
    for key, versions in lists.items():
        store.setlist(key, versions)
    return store


def _dispatch_table() -> dict[type, Any]:
    """How to pickle what plain pickling gets wrong in moto's models."""
    from moto.s3.utils import _VersionedKeyStore

    return {
        **copyreg.dispatch_table,
        # Locks and conditions are recreated empty on load.
        type(threading.Lock()): _fresh(threading.Lock),
        type(threading.RLock()): _fresh(threading.RLock),
        threading.Condition: _fresh(threading.Condition),
        # A bucket's key store maps a key to *all* its versions, but as a dict it yields only
        # the newest: pickled as a dict, every older version would be lost.
        _VersionedKeyStore: lambda store: (
            _versioned_store,
            ({key: list(dict.__getitem__(store, key)) for key in dict.keys(store)},),
        ),
    }


class StateFile:
    """moto's S3 and SQS backends, pickled to one file after each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tickets = threading.Lock()
        self._writer = threading.Lock()
        self._requested = 0
        self._written = 0

    @staticmethod
    def _backends() -> dict[str, dict[str, dict[str, Any]]]:
        from moto.backends import get_backend

        return {
            name: {account: dict(regions.items()) for account, regions in get_backend(name).items()}  # type: ignore[call-overload]
            for name in PERSISTED_SERVICES
        }

    def _dump(self) -> bytes:
        # Another request thread may change a dict while it is pickled; the next attempt sees it settled.
        for attempt in range(_WRITE_ATTEMPTS):
            buffer = io.BytesIO()
            pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = _dispatch_table()
            try:
                pickler.dump(self._backends())
            except RuntimeError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                continue
            return buffer.getvalue()
        raise AssertionError("unreachable")

    def save(self) -> None:
        """Durable on return: a snapshot taken after the caller's change is on disk."""
        with self._tickets:
            self._requested += 1
            ticket = self._requested
        with self._writer:
            if self._written >= ticket:
                return  # a snapshot that began after our change has been written meanwhile
            with self._tickets:
                covered = self._requested
            write_atomically(self.path, self._dump())
            self._written = covered

    def restore(self) -> bool:
        """Load the snapshot, if any, into moto's backends; messages in flight become visible."""
        if not self.path.exists():
            return False
        from moto.backends import get_backend

        # Only this server writes the file, 0600 in a 0700 directory: no one else can plant a pickle.
        state = pickle.loads(self.path.read_bytes())  # noqa: S301
        for name, accounts in state.items():
            for account, regions in accounts.items():
                for region, backend in regions.items():
                    get_backend(name)[account][region] = backend
                    if name == "sqs":
                        release_in_flight(backend)
        return True


def release_in_flight(sqs_backend: Any) -> int:
    """Make every received-but-not-deleted message visible again; how many there were."""
    released = 0
    for queue in sqs_backend.queues.values():
        for message in queue._messages:
            if not message.visible:
                message.visible_at = 0.0
                released += 1
        queue.pending_messages.clear()
    return released


def changes_state(environ: dict[str, Any], body: bytes) -> bool:
    """Whether a request may have changed S3 or SQS state (reads never do)."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method in ("GET", "HEAD", "OPTIONS") or environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    action = target.rsplit(".", 1)[-1] if target.startswith("AmazonSQS.") else ""
    if action in _SQS_READS:
        return False
    # A receive changes state only when it hands out messages (receive count, visibility).
    return not (action == "ReceiveMessage" and b"ReceiptHandle" not in body)


class PersistingApp:
    """WSGI middleware: after a request that changed state, save the snapshot, then answer."""

    def __init__(self, app: Any, state: StateFile) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers, exc_info]
            return lambda _data: None

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if captured and changes_state(environ, body):
            self.state.save()
        start_response(*captured)
        return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's S3/SQS server, persisted to a state file")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--state", type=Path, help="Snapshot file; without it, state is in memory only.")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s moto %(levelname)s %(message)s")
    os.environ.setdefault("MOTO_PORT", str(args.port))
    send_delete_marker_events()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    app: Any = DomainDispatcherApplication(create_backend_app)
    if args.state is not None:
        state = StateFile(args.state)
        if state.restore():
            log.info("restored S3 and SQS state from %s", args.state)
        app = PersistingApp(app, state)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
