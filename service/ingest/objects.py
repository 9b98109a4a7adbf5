"""Reading source objects: a small protocol with an S3 implementation (moto locally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from service.contract import ALLOWED_GROUPS_METADATA, ALLOWED_USERS_METADATA
from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.messages import ObjectRef
from service.models import principal_names


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str
    version_id: str | None
    tags: tuple[str, ...] = ()
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()


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
    """`tags` come from the object's `x-amz-meta-tags` metadata, who may read it from
    `x-amz-meta-allowed-users` and `x-amz-meta-allowed-groups` (all comma-separated)."""

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
        metadata = response.get("Metadata", {})
        users = _names(ref, metadata, ALLOWED_USERS_METADATA)
        groups = _names(ref, metadata, ALLOWED_GROUPS_METADATA)
        return StoredObject(
            data=response["Body"].read(),
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=response.get("VersionId"),
            tags=_split(metadata.get("tags", "")),
            allowed_users=users,
            allowed_groups=groups,
        )


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _names(ref: ObjectRef, metadata: dict[str, str], key: str) -> tuple[str, ...]:
    """A permissions list from object metadata; a malformed one is refused (DLQ), never read as
    'open to everyone'."""
    raw = metadata.get(key)
    if raw is None:
        return ()
    names = _split(raw)
    if raw.strip() and not names:
        raise PermanentIngestError(f"{ref.key}: x-amz-meta-{key} lists no names: {raw!r}")
    try:
        return principal_names(names)
    except ValueError as error:
        raise PermanentIngestError(f"{ref.key}: x-amz-meta-{key}: {error}") from None
