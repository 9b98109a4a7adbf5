"""The stack's customer-managed KMS key: buckets, queues, logs, search, table, secrets, topic."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Administrative actions for the account root; listed rather than `kms:*` so no policy
# in the stack carries a wildcard action. The account root must keep PutKeyPolicy or
# the key becomes unmanageable
# (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
_USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"]


@dataclass(frozen=True)
class StackKeyArgs:
    alias: str
    region: str
    account_id: pulumi.Input[str]
    tags: dict[str, str]


def _key_policy(region: str, account: str) -> str:
    # Services that encrypt on the stack's behalf: CloudWatch Logs (scoped to this
    # account's log groups, https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html),
    # S3 sending notifications to the encrypted queue and CloudWatch alarms publishing to
    # the encrypted topic (https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html).
    statements = [
        {
            "Sid": "AccountAdmin",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": _ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": _USE_ACTIONS,
            "Resource": "*",
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:*"}
            },
        },
        {
            "Sid": "EventSources",
            "Effect": "Allow",
            "Principal": {"Service": ["s3.amazonaws.com", "cloudwatch.amazonaws.com"]},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class StackKey(pulumi.ComponentResource):
    key: aws.kms.Key

    def __init__(self, name: str, args: StackKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:encryption:StackKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = pulumi.Output.from_input(args.account_id).apply(lambda a: _key_policy(args.region, a))
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.alias}: data at rest for the RAG platform stack",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-alias", name=f"alias/{args.alias}", target_key_id=self.key.key_id, opts=child)
        self.register_outputs({"keyArn": self.key.arn})
