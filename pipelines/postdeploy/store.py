"""The document bucket, where uploading ingests and deleting forgets (the document id is the key)."""

from __future__ import annotations

import os
from typing import Any, Protocol

import boto3

from pipelines.postdeploy.config import Target


class DocumentStore(Protocol):
    def put(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class S3Store:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def put(self, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="text/markdown")

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)


def s3_client(target: Target) -> Any:
    """An S3 client for the target; the local platform's moto accepts any credentials."""
    kwargs: dict[str, Any] = {"region_name": target.region}
    if target.aws_endpoint_url:
        kwargs["endpoint_url"] = target.aws_endpoint_url
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            # moto ignores credentials but boto3 refuses to sign without some.
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    return boto3.client("s3", **kwargs)


def secret_string(arn: str, region: str) -> str:
    """A Secrets Manager secret's string value (the stack's API keys)."""
    client: Any = boto3.client("secretsmanager", region_name=region)
    return str(client.get_secret_value(SecretId=arn)["SecretString"])
