"""One IAM role per function, holding exactly the grants `infra/__main__.py` lists for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import Grant, permissions_boundary, policy_document, service_trust


@dataclass(frozen=True)
class FunctionRoleArgs:
    role_name: str
    grants: Sequence[Grant]
    tags: dict[str, str]


class FunctionRole(pulumi.ComponentResource):
    role: aws.iam.Role

    def __init__(self, name: str, args: FunctionRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:iam:FunctionRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            assume_role_policy=service_trust("lambda.amazonaws.com"),
            permissions_boundary=permissions_boundary(),
            tags=args.tags,
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy", role=self.role.id, policy=policy_document(args.grants), opts=child
        )
        self.register_outputs({"roleArn": self.role.arn})
