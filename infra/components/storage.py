"""The document bucket: versioned, KMS-encrypted, private, TLS-only, notifying the ingest queue."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class DocumentBucketArgs:
    bucket_name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    queue_arn: pulumi.Input[str]
    noncurrent_version_expiration_days: int
    force_destroy: bool
    tags: dict[str, str]


def _tls_only_policy(bucket_arn: str) -> str:
    # Deny plain HTTP and TLS below 1.2
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html#transit).
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Sid": "DenyOldTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                },
            ],
        }
    )


class DocumentBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: DocumentBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ragplatform:storage:DocumentBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=args.tags,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
                    ),
                    # S3 Bucket Keys cut KMS requests by up to 99%
                    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html).
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(_tls_only_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self._lifecycle(name, args)
        aws.s3.BucketNotification(
            f"{name}-notification",
            bucket=self.bucket.id,
            queues=[
                aws.s3.BucketNotificationQueueArgs(
                    queue_arn=args.queue_arn, events=["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
                )
            ],
            opts=child,
        )
        self.register_outputs({"bucketName": self.bucket.bucket})

    def _lifecycle(self, name: str, args: DocumentBucketArgs) -> None:
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-old-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_expiration_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        expired_object_delete_marker=True
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
