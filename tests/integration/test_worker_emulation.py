"""The local worker emulates Lambda's SQS event source mapping against moto."""

from __future__ import annotations

import threading
import time
from typing import Any

from pipelines.worker import EventSourceMapping, LocalWorker
from tests.ingest_fakes import moto_cloud


def test_batches_partial_failures_visibility_and_max_receive_count() -> None:
    with moto_cloud(visibility_timeout=1, max_receive_count=2) as cloud:
        # Given 13 messages, one of which the handler always reports as failed
        for i in range(13):
            cloud.send(f"message {i}")
        batches: list[int] = []

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            batches.append(len(event["Records"]))
            assert context.get_remaining_time_in_millis() > 0
            return {
                "batchItemFailures": [
                    {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "message 7"
                ]
            }

        mapping = EventSourceMapping(
            cloud.queue_url,
            batch_size=5,
            batching_window_seconds=0.2,
            visibility_timeout_seconds=1,
            function_timeout_seconds=1,
        )
        worker = LocalWorker(cloud.sqs, mapping, handler)
        stop = threading.Event()
        # When the worker polls until the queue is empty
        deadline = time.monotonic() + 20
        while cloud.depth() and time.monotonic() < deadline:
            messages = worker.receive_batch(stop)
            if messages:
                worker.invoke(messages)
        # Then batches never exceeded the batch size, and every record was handed over
        assert max(batches) <= 5
        assert sum(batches) >= 13 + 1
        # And only the failed message was redelivered, then moved to the DLQ after maxReceiveCount
        assert [m["Body"] for m in cloud.drain(cloud.dlq_url)] == ["message 7"]
