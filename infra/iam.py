"""IAM grants as data, so `infra/__main__.py` can show every permission in one place.

A `Grant` is one policy statement: explicit actions (never `*`) on resources that are
ARNs of this stack. The few AWS actions that support no resource-level permissions are
listed in `UNSCOPED_ACTIONS` with their source; only those may use `"*"`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from service.contract import PROJECT

# Actions whose only valid resource is "*": ENI describe calls
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html) and the
# X-Ray segment upload (https://docs.aws.amazon.com/xray/latest/devguide/security_iam_id-based-policy-examples.html)
# and Bedrock's Rerank, which has no resource type; the rerank model is scoped by the
# InvokeModel grant beside it (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonbedrock.html,
# https://docs.aws.amazon.com/bedrock/latest/userguide/rerank-prereq.html).
UNSCOPED_ACTIONS = frozenset(
    {"bedrock:Rerank", "ec2:DescribeNetworkInterfaces", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
)


# The managed policy bootstrap/ creates and every role of the program carries as its
# permissions boundary: the pattern of AWS CDK's bootstrap (`cdk-hnb659fds-permissions-boundary`,
# https://docs.aws.amazon.com/cdk/v2/guide/customizing-synthesis.html#bootstrapping-env-permissions-boundary).
# The deploy roles may create, change or pass only roles that carry it (bootstrap/policies.py).
PERMISSIONS_BOUNDARY_NAME = f"{PROJECT}-permissions-boundary"


def boundary_arn(account: str) -> str:
    """The ARN of the permissions boundary in `account` (an IAM policy ARN has no region)."""
    return f"arn:aws:iam::{account}:policy/{PERMISSIONS_BOUNDARY_NAME}"


def permissions_boundary() -> pulumi.Output[str]:
    """`permissions_boundary=` for every `aws.iam.Role` of the program, in the deploying account.

    A function rather than an argument so each role needs one line; the policy pack
    (`permissions-boundary-on-every-role`) refuses a role without it.
    """
    return aws.get_caller_identity_output().account_id.apply(boundary_arn)


@dataclass(frozen=True)
class Grant:
    sid: str
    actions: tuple[str, ...]
    # Strings or outputs; an output may resolve to a list of ARNs (e.g. Bedrock models).
    resources: Sequence[pulumi.Input[str] | pulumi.Output[list[str]]]
    conditions: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wild = [a for a in self.actions if "*" in a]
        if wild:
            raise ValueError(f"grant {self.sid}: wildcard actions are not allowed: {wild}")
        if "*" in self.resources and not set(self.actions) <= UNSCOPED_ACTIONS:
            raise ValueError(f"grant {self.sid}: '*' resource only for {sorted(UNSCOPED_ACTIONS)}")


def _flatten(values: list[Any]) -> list[str]:
    flat: list[str] = []
    for value in values:
        flat += value if isinstance(value, list) else [value]
    return flat


def _statement(grant: Grant, resources: list[str]) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": grant.sid,
        "Effect": "Allow",
        "Action": sorted(grant.actions),
        "Resource": sorted(resources),
    }
    if grant.conditions:
        statement["Condition"] = grant.conditions
    return statement


def policy_document(grants: Sequence[Grant]) -> pulumi.Output[str]:
    """An IAM policy JSON document with one statement per grant."""
    resolved = [pulumi.Output.all(*g.resources) for g in grants]

    def render(all_resources: list[list[str]]) -> str:
        statements = [_statement(g, _flatten(list(r))) for g, r in zip(grants, all_resources, strict=True)]
        return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)

    return pulumi.Output.all(*resolved).apply(render)


def service_trust(service: str) -> str:
    """A trust policy letting one AWS service principal assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"},
            ],
        }
    )
