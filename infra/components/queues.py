"""The ingest queue and its dead-letter queue, both encrypted, fed only by the document bucket."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class IngestQueuesArgs:
    queue_name: str
    dlq_name: str
    kms_key_arn: pulumi.Input[str]
    source_bucket_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    visibility_timeout_seconds: int
    max_receive_count: int
    retention_seconds: int
    dlq_retention_seconds: int
    tags: dict[str, str]


def _queue_policy(queue_arn: str, bucket_arn: str, account: str) -> str:
    # Only this bucket, in this account, may send (confused-deputy guard,
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/ways-to-add-notification-config-to-bucket.html),
    # and nobody may talk to the queue without TLS.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DocumentBucketEvents",
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {
                        "ArnEquals": {"aws:SourceArn": bucket_arn},
                        "StringEquals": {"aws:SourceAccount": account},
                    },
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


class IngestQueues(pulumi.ComponentResource):
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue
    policy: aws.sqs.QueuePolicy

    def __init__(self, name: str, args: IngestQueuesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:queues:IngestQueues", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            name=args.dlq_name,
            kms_master_key_id=args.kms_key_arn,
            message_retention_seconds=args.dlq_retention_seconds,
            tags=args.tags,
            opts=child,
        )
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.queue_name,
            kms_master_key_id=args.kms_key_arn,
            # Reusing a data key for 5 minutes keeps KMS calls (and cost) per message low.
            kms_data_key_reuse_period_seconds=300,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.retention_seconds,
            # Long polling: fewer empty receives (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html).
            receive_wait_time_seconds=20,
            redrive_policy=self.dead_letter_queue.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count}
                )
            ),
            tags=args.tags,
            opts=child,
        )
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-allow",
            queue_url=self.dead_letter_queue.url,
            redrive_allow_policy=self.queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=child,
        )
        self.policy = aws.sqs.QueuePolicy(
            f"{name}-policy",
            queue_url=self.queue.url,
            policy=pulumi.Output.all(self.queue.arn, args.source_bucket_arn, args.account_id).apply(
                lambda v: _queue_policy(v[0], v[1], v[2])
            ),
            opts=child,
        )
        self.register_outputs({"queueUrl": self.queue.url, "deadLetterQueueUrl": self.dead_letter_queue.url})
