"""Sending messages: continuations to the ingest queue, poison messages to the dead-letter queue."""

from __future__ import annotations

from typing import Any, Protocol

# Message attributes the ingester sets on what it dead-letters (read by `ragctl dlq`).
REASON_ATTRIBUTE = "ingest_error_reason"
DOCUMENT_ATTRIBUTE = "ingest_document_id"
FAILED_AT_ATTRIBUTE = "ingest_failed_at"
# What DOCUMENT_ATTRIBUTE holds for a message that names no document (malformed, foreign bucket).
MESSAGE_SCOPE = "(message)"
_MAX_ATTRIBUTE_CHARS = 2000


class MessageSink(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> None: ...


class SqsSink:
    """A queue to send to; needs `sqs:SendMessage` on it."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self.queue_url = queue_url

    def send(self, body: str, attributes: dict[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {
                name: {"DataType": "String", "StringValue": value[:_MAX_ATTRIBUTE_CHARS] or "-"}
                for name, value in attributes.items()
            }
        self._sqs.send_message(**kwargs)


class ListSink:
    """In-memory sink for tests and benchmarks."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str]]] = []

    def send(self, body: str, attributes: dict[str, str] | None = None) -> None:
        self.messages.append((body, dict(attributes or {})))
