"""What an ingest-queue message asks for: S3 event notifications and direct enqueues.

Two shapes arrive on the queue:
- S3 event notifications (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html),
  whose object keys are URL-encoded, and the `s3:TestEvent` S3 sends when notifications are configured;
- direct messages for backfills: `{"action": "upsert", "s3_uri": "s3://b/k"}`,
  `{"action": "upsert", "document": {...Document fields...}}` or `{"action": "delete", "document_id": "..."}`.
  Optional fields: `sequencer` (an order key, as S3 events carry; continuations keep the
  original event's), `version` (an inline document's version, compared like a sequencer)
  and `continuation` (how many messages this document's indexing has been split across).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import ValidationError

from service.ingest.errors import PermanentIngestError
from service.models import Document


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class IngestAction:
    kind: Literal["upsert", "delete"]
    document_id: str
    object: ObjectRef | None = None
    document: Document | None = None
    event_time: str | None = None
    version: str | None = None
    continuation: int = 0

    @property
    def sequencer(self) -> str | None:
        """What orders this action against others on the same document."""
        if self.object is not None and self.object.sequencer:
            return self.object.sequencer
        return self.version

    def continued(self) -> str:
        """A direct message that resumes this action in a later invocation."""
        body: dict[str, Any] = {"action": self.kind, "continuation": self.continuation + 1}
        if self.sequencer:
            body["sequencer" if self.object is not None else "version"] = self.sequencer
        if self.object is not None:
            body["s3_uri"] = self.object.uri
        elif self.document is not None:
            body["document"] = self.document.model_dump(mode="json")
        else:
            body["document_id"] = self.document_id
        return json.dumps(body)


def parse_s3_uri(uri: str) -> ObjectRef:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise PermanentIngestError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise PermanentIngestError(f"not an s3://bucket/key URI: {uri!r}")
    return ObjectRef(bucket=bucket, key=key)


def _s3_record(record: dict[str, Any]) -> IngestAction:
    name = str(record.get("eventName", ""))
    s3 = record["s3"]
    obj = s3["object"]
    ref = ObjectRef(
        bucket=s3["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        version_id=obj.get("versionId"),
        etag=obj.get("eTag"),
        sequencer=obj.get("sequencer"),
        size=obj.get("size"),
    )
    kind: Literal["upsert", "delete"] = "delete" if name.startswith("ObjectRemoved") else "upsert"
    return IngestAction(kind=kind, document_id=ref.key, object=ref, event_time=record.get("eventTime"))


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def _direct(body: dict[str, Any]) -> IngestAction:
    action = body.get("action")
    extra: dict[str, Any] = {"continuation": int(body.get("continuation") or 0)}
    if action == "delete" and isinstance(body.get("document_id"), str):
        return IngestAction(kind="delete", document_id=body["document_id"], **extra)
    if action == "upsert" and isinstance(body.get("s3_uri"), str):
        ref = replace(parse_s3_uri(body["s3_uri"]), sequencer=_optional_str(body, "sequencer"))
        return IngestAction(kind="upsert", document_id=ref.key, object=ref, **extra)
    if action == "upsert" and isinstance(body.get("document"), dict):
        try:
            document = Document.model_validate(body["document"])
        except ValidationError as error:
            raise PermanentIngestError(f"invalid inline document: {error.errors()[0]['msg']}") from None
        return IngestAction(
            kind="upsert",
            document_id=document.document_id,
            document=document,
            version=_optional_str(body, "version"),
            **extra,
        )
    raise PermanentIngestError(
        "unrecognised message: expected an S3 event or {action: upsert|delete, s3_uri|document|document_id}"
    )


def parse_message(body: str) -> list[IngestAction]:
    """The actions in one queue message; an S3 test event yields none."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as error:
        raise PermanentIngestError(f"message body is not JSON: {error.msg}") from None
    if not isinstance(payload, dict):
        raise PermanentIngestError("message body must be a JSON object")
    if payload.get("Event") == "s3:TestEvent":
        return []
    if "Records" in payload:
        try:
            return [_s3_record(r) for r in payload["Records"] if r.get("eventSource") == "aws:s3"]
        except (KeyError, TypeError) as error:
            raise PermanentIngestError(f"malformed S3 event record: missing {error}") from None
    return [_direct(payload)]
