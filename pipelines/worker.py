"""The local ingester: emulates Lambda's SQS event source mapping and calls the Lambda handler.

What it emulates (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html):
- batch size and maximum batching window: receive until the batch is full or the window closes;
- the visibility timeout: messages stay invisible while the handler runs;
- partial batch responses: only the records the handler reports as failed stay on the queue,
  to be redelivered after the visibility timeout;
- `maxReceiveCount`: SQS itself (moto locally) moves a message to the DLQ after that many receives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("pipelines.worker")

# The Lambda handler: (event, context) -> {"batchItemFailures": [...]}.
Handler = Callable[[dict[str, Any], Any], Any]
SQS_MAX_PER_RECEIVE = 10  # ReceiveMessage returns at most 10 messages per call.


@dataclass(frozen=True)
class EventSourceMapping:
    queue_url: str
    batch_size: int = 10
    batching_window_seconds: float = 1.0
    visibility_timeout_seconds: int = 60
    function_timeout_seconds: int = 50


@dataclass
class LocalLambdaContext:
    """The attributes Powertools reads from a Lambda context object."""

    deadline: float
    function_name: str = "rag-platform-ingester-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:rag-platform-ingester-local"
    aws_request_id: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping delivers it."""
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class LocalWorker:
    def __init__(
        self,
        sqs: Any,
        mapping: EventSourceMapping,
        handler: Handler,
        region: str = "us-east-1",
        inflight: Path | None = None,
    ) -> None:
        self.sqs = sqs
        self.mapping = mapping
        self.handler = handler
        self.region = region
        # Where the receipt handles of the batch being applied are kept, so that whoever finds this
        # worker dead (the `ragctl dev` supervisor) can release them without waiting out their timeout.
        self.inflight = inflight
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def receive_batch(self, stop: threading.Event) -> list[dict[str, Any]]:
        """Fill a batch up to `batch_size`, waiting at most the batching window once a message arrived."""
        messages: list[dict[str, Any]] = []
        window_closes: float | None = None
        while len(messages) < self.mapping.batch_size and not stop.is_set():
            wait = 1 if window_closes is None else max(0, min(1, int(window_closes - time.monotonic())))
            response = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_PER_RECEIVE, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.mapping.visibility_timeout_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if not received and not messages:
                break  # one empty long poll: let the caller check for a stop request
            messages.extend(received)
            if messages and window_closes is None:
                window_closes = time.monotonic() + self.mapping.batching_window_seconds
            if window_closes is not None and (time.monotonic() >= window_closes or not received):
                break
        return messages

    def _note_inflight(self, messages: list[dict[str, Any]]) -> None:
        if self.inflight is not None:
            from pipelines.files import write_atomically

            write_atomically(self.inflight, json.dumps([m["ReceiptHandle"] for m in messages]).encode())

    def invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        """Run the handler on one batch; delete what succeeded; return the failed message ids."""
        self._note_inflight(messages)
        try:
            return self._invoke(messages)
        finally:
            self._note_inflight([])

    def _invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        event = {"Records": [to_lambda_record(m, self.queue_arn, self.region) for m in messages]}
        context = LocalLambdaContext(
            deadline=time.monotonic() + self.mapping.function_timeout_seconds,
            aws_request_id=str(uuid.uuid4()),
        )
        try:
            result = self.handler(event, context)
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception:
            # A crashed invocation fails the whole batch, as in Lambda: every message is redelivered.
            log.exception("handler raised; the whole batch will be redelivered")
            return {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_PER_RECEIVE):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + SQS_MAX_PER_RECEIVE])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
        return failed

    def run(self, stop: threading.Event) -> None:
        log.info("worker polling %s", self.mapping.queue_url)
        while not stop.is_set():
            messages = self.receive_batch(stop)
            if messages:
                failed = self.invoke(messages)
                log.info("batch of %d: %d failed", len(messages), len(failed))


def attach(data_dir: Path | None = None) -> None:
    """Without INGEST_QUEUE_URL, take the running local platform's settings from its platform file."""
    from pipelines.platform_file import PlatformInfo, PlatformNotRunning, find_data_dir
    from service.contract import Env

    if os.environ.get(Env.INGEST_QUEUE_URL) and data_dir is None:
        return
    try:
        info = PlatformInfo.running(find_data_dir(data_dir))
    except PlatformNotRunning as error:
        raise SystemExit(str(error)) from None
    os.environ.update(info.child_env())


def main(data_dir: Path | None = None) -> None:
    """`ragctl worker`: the Lambda handler against the local queue, until SIGINT/SIGTERM."""
    import signal

    attach(data_dir)
    from service.handlers.ingest import handler
    from service.settings import get_settings
    from service.wiring import aws_client

    settings = get_settings()
    if not settings.ingest_queue_url:
        raise SystemExit("INGEST_QUEUE_URL is not set: start the platform with `ragctl dev` first")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s worker %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Load the model before taking messages, so the first batch does not eat its visibility timeout.
    from service.runtime import container

    container().indexer.embedder.embed_query("warm up")
    from pipelines.dev import inflight_file
    from pipelines.files import private_dir

    private_dir(settings.data_dir / "run")
    worker = LocalWorker(
        aws_client(settings, "sqs"),
        EventSourceMapping(settings.ingest_queue_url),
        handler,
        inflight=inflight_file(settings.data_dir, os.getpid()),
    )
    worker.run(stop)
    if worker.inflight is not None:
        worker.inflight.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
