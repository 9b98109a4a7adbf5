"""`make preflight STACK=...`: the account quotas that break a first `pulumi up`, checked before it.

Needs AWS credentials for the target account (CI runs it with the stack's deploy role).
What the stack needs is read from the program itself under mocks (`infra.tools.offline`),
so a new function's reserved concurrency or a second VPC is counted without editing this file.

Checks, each failing with the number, the limit and what to do:
* Lambda keeps at least 100 unreserved concurrent executions per account and region; a
  reservation that would leave fewer is refused
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). New accounts
  often start at a total of 10, so any reservation fails.
* VPCs per region (Service Quotas `vpc` / `L-F678F1CE`, default 5,
  https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html).
* CloudWatch Logs resource policies: at most 10 per account and region, a hard limit
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html).
* The permissions boundary that bootstrap/ creates exists (every role needs it).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from infra.iam import boundary_arn
from infra.tools.offline import StackRun

LAMBDA_MIN_UNRESERVED = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
VPC_QUOTA = ("vpc", "L-F678F1CE")
VPC_DEFAULT = 5
LOG_RESOURCE_POLICY_LIMIT = 10


def iam_requests(account: str) -> list[tuple[str, str]]:
    """(action, resource) of every call below: the deploy role running preflight needs them all
    (tests/infra/test_deploy_roles.py evaluates them against each deploy role)."""
    return [
        ("lambda:GetAccountSettings", "*"),
        ("ec2:DescribeVpcs", "*"),
        ("servicequotas:GetServiceQuota", f"arn:aws:servicequotas:*:{account}:{VPC_QUOTA[0]}/{VPC_QUOTA[1]}"),
        ("servicequotas:GetAWSDefaultServiceQuota", "*"),
        ("logs:DescribeResourcePolicies", "*"),
        ("iam:GetPolicy", boundary_arn(account)),
        ("sts:GetCallerIdentity", "*"),
    ]


@dataclass(frozen=True)
class StackNeeds:
    """What one stack adds to the account."""

    reserved_concurrency: int
    vpcs: int
    log_resource_policies: int


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"  {'PASS' if self.ok else 'FAIL'} {self.check}: {self.message}"


@dataclass(frozen=True)
class Clients:
    """The AWS clients preflight calls (constructor seam: the tests pass stubbed ones)."""

    lambda_: Any
    ec2: Any
    service_quotas: Any
    logs: Any
    iam: Any
    sts: Any


def stack_needs(stack: str) -> StackNeeds:
    from infra.tools.offline import run_stack

    return needs_of(run_stack(stack))


def needs_of(run: StackRun) -> StackNeeds:
    """What the mocked stack declares: reserved concurrency, VPCs, Logs resource policies."""
    functions = run.of_type("aws:lambda/function:Function")
    return StackNeeds(
        reserved_concurrency=sum(
            max(0, int(f.inputs.get("reservedConcurrentExecutions", 0))) for f in functions
        ),
        vpcs=len(run.of_type("aws:ec2/vpc:Vpc")),
        log_resource_policies=len(run.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")),
    )


def check_lambda_concurrency(lambda_: Any, needs: StackNeeds) -> Finding:
    limit = lambda_.get_account_settings()["AccountLimit"]
    unreserved = int(limit["UnreservedConcurrentExecutions"])
    left = unreserved - needs.reserved_concurrency
    if left >= LAMBDA_MIN_UNRESERVED:
        return Finding("lambda-concurrency", True, f"{unreserved} unreserved, {left} left after reserving")
    return Finding(
        "lambda-concurrency",
        False,
        f"the stack reserves {needs.reserved_concurrency} concurrent executions but the account has "
        f"{unreserved} unreserved (total {limit['ConcurrentExecutions']}); Lambda keeps at least "
        f"{LAMBDA_MIN_UNRESERVED} unreserved, so the deploy would fail. Request a higher "
        f"'Concurrent executions' quota (Service Quotas lambda {LAMBDA_CONCURRENCY_QUOTA}) or lower "
        "the stack's reservedConcurrency",
    )


def _vpc_quota(service_quotas: Any) -> int:
    service, code = VPC_QUOTA
    try:
        return int(service_quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"])
    except service_quotas.exceptions.NoSuchResourceException:
        # An account that never changed the quota has no applied value; the default holds.
        return int(
            service_quotas.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)["Quota"][
                "Value"
            ]
        )


def check_vpcs(ec2: Any, service_quotas: Any, needs: StackNeeds) -> Finding:
    existing = sum(len(page["Vpcs"]) for page in ec2.get_paginator("describe_vpcs").paginate())
    quota = _vpc_quota(service_quotas)
    if existing + needs.vpcs <= quota:
        return Finding("vpc-quota", True, f"{existing} VPCs + {needs.vpcs} new <= quota {quota}")
    return Finding(
        "vpc-quota",
        False,
        f"{existing} VPCs exist and the stack adds {needs.vpcs}, above the quota of {quota}; "
        f"delete an unused VPC or request more (Service Quotas {VPC_QUOTA[0]} {VPC_QUOTA[1]})",
    )


def check_log_resource_policies(logs: Any, needs: StackNeeds) -> Finding:
    existing = len(logs.describe_resource_policies(limit=50).get("resourcePolicies", []))
    if existing + needs.log_resource_policies <= LOG_RESOURCE_POLICY_LIMIT:
        return Finding(
            "logs-resource-policies",
            True,
            f"{existing} + {needs.log_resource_policies} new <= {LOG_RESOURCE_POLICY_LIMIT}",
        )
    return Finding(
        "logs-resource-policies",
        False,
        f"{existing} CloudWatch Logs resource policies exist and the stack adds "
        f"{needs.log_resource_policies}; the hard limit is {LOG_RESOURCE_POLICY_LIMIT} per region. "
        "Delete unused ones (aws logs describe-resource-policies / delete-resource-policy)",
    )


def check_boundary(iam: Any, sts: Any) -> Finding:
    arn = boundary_arn(sts.get_caller_identity()["Account"])
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        return Finding(
            "permissions-boundary",
            False,
            f"{arn} does not exist; run the bootstrap program first (bootstrap/README.md)",
        )
    return Finding("permissions-boundary", True, arn)


def preflight(clients: Clients, needs: StackNeeds) -> list[Finding]:
    return [
        check_lambda_concurrency(clients.lambda_, needs),
        check_vpcs(clients.ec2, clients.service_quotas, needs),
        check_log_resource_policies(clients.logs, needs),
        check_boundary(clients.iam, clients.sts),
    ]


def _clients(region: str) -> Clients:
    import boto3

    session = boto3.Session(region_name=region)
    return Clients(
        lambda_=session.client("lambda"),
        ec2=session.client("ec2"),
        service_quotas=session.client("service-quotas"),
        logs=session.client("logs"),
        iam=session.client("iam"),
        sts=session.client("sts"),
    )


def _region(stack: str) -> str:
    from infra.tools.offline import config_map

    return config_map(stack)[0].get("aws:region", "us-east-1")


def main(
    argv: list[str] | None = None, *, clients: Clients | None = None, needs: StackNeeds | None = None
) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="staging")
    args = parser.parse_args(argv)
    findings = preflight(
        clients or _clients(_region(args.stack)),
        needs or stack_needs(args.stack),
    )
    failed = [f for f in findings if not f.ok]
    print(f"preflight {args.stack}: {'FAIL' if failed else 'PASS'}")
    print("\n".join(f.line() for f in findings))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
