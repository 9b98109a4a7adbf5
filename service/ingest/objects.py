"""Reading source objects: a small protocol with an S3 implementation (moto locally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.messages import ObjectRef


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str
    version_id: str | None
    tags: tuple[str, ...] = ()


class ObjectStore(Protocol):
    def head_size(self, ref: ObjectRef) -> int | None:
        """Size in bytes, or None if the object no longer exists."""
        ...

    def get(self, ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        """The object's current version, or None if it no longer exists.

        Raises `PermanentIngestError` for an object over `max_bytes`, without reading its body.
        """
        ...


_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "503",
    "500",
}


class S3ObjectStore:
    """`tags` come from the object's `x-amz-meta-tags` metadata (comma-separated)."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._s3, operation)(**kwargs)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                return None
            if code in _THROTTLED:
                raise TransientIngestError(f"S3 {operation}: {code}") from error
            raise PermanentIngestError(f"S3 {operation} failed: {code}") from error
        except BotoCoreError as error:
            raise TransientIngestError(f"S3 {operation}: {error}") from error

    def head_size(self, ref: ObjectRef) -> int | None:
        response = self._call("head_object", Bucket=ref.bucket, Key=ref.key)
        return None if response is None else int(response["ContentLength"])

    def get(self, ref: ObjectRef, max_bytes: int | None = None) -> StoredObject | None:
        response = self._call("get_object", Bucket=ref.bucket, Key=ref.key)
        if response is None:
            return None
        size = int(response.get("ContentLength", 0))
        if max_bytes is not None and size > max_bytes:
            response["Body"].close()
            raise PermanentIngestError(f"{ref.key}: {size} bytes is over the {max_bytes}-byte limit")
        raw_tags = response.get("Metadata", {}).get("tags", "")
        return StoredObject(
            data=response["Body"].read(),
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=response.get("VersionId"),
            tags=tuple(t.strip() for t in raw_tags.split(",") if t.strip()),
        )
