"""Create the local platform's bucket and queues on the moto server, as the cloud stack does.

Names come from `ResourceNames.for_stack` and the queue and bucket settings
from the staging stack's values, so local behaves like staging: versioned bucket, event
notifications for created and removed objects, and a DLQ after `maxReceiveCount`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.contract import ResourceNames


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout_seconds: int = 120
    max_receive_count: int = 3
    retention_seconds: int = 4 * 24 * 3600
    dlq_retention_seconds: int = 14 * 24 * 3600


@dataclass(frozen=True)
class LocalResources:
    document_bucket: str
    ingest_queue_url: str
    dead_letter_queue_url: str


def create_resources(s3: Any, sqs: Any, names: ResourceNames, queues: QueueSettings) -> LocalResources:
    """Idempotent: safe on every start."""
    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue,
        Attributes={"MessageRetentionPeriod": str(queues.dlq_retention_seconds)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=names.ingest_queue,
        Attributes={
            "VisibilityTimeout": str(queues.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(queues.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queues.max_receive_count}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if names.document_bucket not in existing:
        s3.create_bucket(Bucket=names.document_bucket)
    s3.put_bucket_versioning(Bucket=names.document_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=names.document_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    return LocalResources(names.document_bucket, queue_url, dlq_url)
