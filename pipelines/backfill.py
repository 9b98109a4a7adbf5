"""Backfill: enqueue direct messages for every object under `s3://bucket/prefix`.

Each message asks the ingester to sync one object (`{"action": "upsert", "s3_uri": ...}`);
objects already indexed with the same content cost one read and no embedding.
"""

from __future__ import annotations

import json
from typing import Any

from service.ingest.parse import CONTENT_TYPES


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` (a shell may hand it over as `s3:/bucket/prefix`)."""
    rest = uri.split(":/", 1)[1].lstrip("/")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/prefix URI: {uri!r}")
    return bucket, prefix


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    return keys


def enqueue(sqs: Any, queue_url: str, bucket: str, keys: list[str]) -> int:
    """Ten messages per `SendMessageBatch`; unsupported types are enqueued too (they fail with a reason)."""
    for start in range(0, len(keys), 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"action": "upsert", "s3_uri": f"s3://{bucket}/{key}"})}
            for i, key in enumerate(keys[start : start + 10])
        ]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"could not enqueue: {response['Failed']}")
    return len(keys)


def supported(key: str) -> bool:
    return any(key.lower().endswith(ext) for ext in CONTENT_TYPES)


def backfill_platform(info: Any, uris: list[str]) -> list[str]:
    """Enqueue every object under each `s3://bucket/prefix` on the running local platform; the keys."""
    import boto3

    env = info.child_env()
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=info.region,
    )
    s3 = session.client("s3", endpoint_url=info.aws_endpoint_url)
    sqs = session.client("sqs", endpoint_url=info.aws_endpoint_url)
    keys: list[str] = []
    for uri in uris:
        bucket, prefix = split_uri(uri)
        found = list_keys(s3, bucket, prefix)
        enqueue(sqs, info.ingest_queue_url, bucket, found)
        keys.extend(found)
    return keys
