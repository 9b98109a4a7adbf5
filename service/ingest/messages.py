"""What an ingest-queue message asks for: S3 event notifications and direct enqueues.

Two shapes arrive on the queue:
- S3 event notifications (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html),
  whose object keys are URL-encoded, and the `s3:TestEvent` S3 sends when notifications are configured;
- direct messages for backfills: `{"action": "upsert", "s3_uri": "s3://b/k"}`,
  `{"action": "upsert", "document": {...Document fields...}}` or `{"action": "delete", "document_id": "..."}`.
  An inline document's `workspace` (default `default`) qualifies its `document_id` the way the
  bucket does (`workspaces/<id>/<document_id>`, `service.workspaces`); its `allowed_users` and
  `allowed_groups` say who may read it. A delete's `document_id` is the full id, or, with a
  `workspace`, relative to it.
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
from service.workspaces import document_key


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
            body["qualified"] = True
        else:
            body["document_id"] = self.document_id
            body["qualified"] = True
        return json.dumps(body)


def parse_s3_uri(uri: str) -> ObjectRef:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise PermanentIngestError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise PermanentIngestError(f"not an s3://bucket/key URI: {uri!r}")
    return ObjectRef(bucket=bucket, key=key)


class _Malformed(PermanentIngestError):
    """A message whose shape is wrong; the reason says which field."""


_EXPECTED: dict[type, str] = {str: "a non-empty string", dict: "an object"}


def _field(mapping: Any, name: str, kind: type, where: str) -> Any:
    value = mapping.get(name) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or (kind is str and not value):
        expected = _EXPECTED.get(kind, kind.__name__)
        raise _Malformed(f"malformed message: {where}{name} must be {expected}")
    return value


def _s3_record(record: Any, index: int) -> IngestAction:
    where = f"Records[{index}]."
    if not isinstance(record, dict):
        raise _Malformed(f"malformed message: Records[{index}] must be an object")
    s3 = _field(record, "s3", dict, where)
    obj = _field(s3, "object", dict, f"{where}s3.")
    bucket = _field(_field(s3, "bucket", dict, f"{where}s3."), "name", str, f"{where}s3.bucket.")
    size = obj.get("size")
    ref = ObjectRef(
        bucket=bucket,
        key=unquote_plus(_field(obj, "key", str, f"{where}s3.object.")),
        version_id=_optional_str(obj, "versionId"),
        etag=_optional_str(obj, "eTag"),
        sequencer=_optional_str(obj, "sequencer"),
        size=size if isinstance(size, int) else None,
    )
    name = str(record.get("eventName", ""))
    kind: Literal["upsert", "delete"] = "delete" if name.startswith("ObjectRemoved") else "upsert"
    return IngestAction(
        kind=kind, document_id=ref.key, object=ref, event_time=_optional_str(record, "eventTime")
    )


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def _continuation(body: dict[str, Any]) -> int:
    value = body.get("continuation", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed("malformed message: continuation must be a non-negative integer")
    return value


def _direct(body: dict[str, Any]) -> IngestAction:
    action = body.get("action")
    extra: dict[str, Any] = {"continuation": _continuation(body)}
    if action == "delete" and isinstance(body.get("document_id"), str) and body["document_id"]:
        # Without a workspace the id is the full one (the object key), as `ragctl docs delete`
        # sends it; with one, it is relative to that workspace, as in an inline document.
        workspace = body.get("workspace")
        if workspace is not None and not isinstance(workspace, str):
            raise _Malformed("malformed message: workspace must be a string")
        name = body["document_id"]
        if workspace is not None and not body.get("qualified"):
            name = _qualified(workspace, name)
        return IngestAction(kind="delete", document_id=name, **extra)
    if action == "upsert" and isinstance(body.get("s3_uri"), str):
        ref = replace(parse_s3_uri(body["s3_uri"]), sequencer=_optional_str(body, "sequencer"))
        return IngestAction(kind="upsert", document_id=ref.key, object=ref, **extra)
    if action == "upsert" and isinstance(body.get("document"), dict):
        try:
            document = Document.model_validate(body["document"])
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PermanentIngestError(f"invalid inline document: {where}: {first['msg']}") from None
        # A continuation carries the document already qualified: it is not prefixed twice.
        if not body.get("qualified"):
            name = _qualified(document.workspace, document.document_id)
            document = document.model_copy(update={"document_id": name})
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


def _qualified(workspace: str, name: str) -> str:
    try:
        return document_key(workspace, name)
    except ValueError as error:  # a malformed workspace id, or a name in another workspace
        raise PermanentIngestError(f"invalid workspace for document {name!r}: {error}") from None


def _check_bucket(actions: list[IngestAction], bucket: str | None) -> list[IngestAction]:
    """A key in another bucket is not a document of this platform: mapping it onto a local id
    would mark (or delete) the wrong document."""
    if bucket is None:
        return actions
    for action in actions:
        if action.object is not None and action.object.bucket != bucket:
            raise PermanentIngestError(
                f"message names {action.object.uri}, outside this platform's bucket {bucket!r}"
            )
    return actions


def parse_message(body: str, *, bucket: str | None = None) -> list[IngestAction]:
    """The actions in one queue message; an S3 test event yields none.

    `bucket` is the platform's document bucket: actions on objects elsewhere are refused.
    Every malformed shape raises `PermanentIngestError` naming the field.
    """
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as error:
        raise PermanentIngestError(f"message body is not JSON: {getattr(error, 'msg', error)}") from None
    if not isinstance(payload, dict):
        raise PermanentIngestError("message body must be a JSON object")
    if payload.get("Event") == "s3:TestEvent":
        return []
    if "Records" in payload:
        records = payload["Records"]
        if not isinstance(records, list):
            raise _Malformed("malformed message: Records must be a list")
        return _check_bucket(
            [
                _s3_record(record, index)
                for index, record in enumerate(records)
                if not isinstance(record, dict) or record.get("eventSource") == "aws:s3"
            ],
            bucket,
        )
    return _check_bucket([_direct(payload)], bucket)
