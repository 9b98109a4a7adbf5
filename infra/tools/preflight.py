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
* Issue 13: every secret the operator must create before the first deploy (an external search
  cluster's credentials, an OpenAI-compatible endpoint's key) exists, holds a current value and
  uses the AWS managed key the functions may decrypt with. The names come from the functions'
  `*_SECRET_ID` variables in the program, so the check follows the stack file's providers.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from infra.iam import boundary_arn
from infra.stacks import first_stack
from infra.tools.offline import StackRun
from service.contract import Env

LAMBDA_MIN_UNRESERVED = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
VPC_QUOTA = ("vpc", "L-F678F1CE")
VPC_DEFAULT = 5
LOG_RESOURCE_POLICY_LIMIT = 10
# Function variables naming a secret the operator creates (infra/__main__.py operator_secret).
OPERATOR_SECRET_VARIABLES = (Env.SEARCH_CREDENTIALS_SECRET_ID.value, Env.OPENAI_API_KEY_SECRET_ID.value)
# A secret without a KmsKeyId is encrypted with this key, which any principal of the account may
# use through Secrets Manager; a customer key would need a kms:Decrypt grant the functions lack
# (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html).
AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"


def iam_requests(
    account: str, secrets: tuple[str, ...] = (), region: str = "us-east-1"
) -> list[tuple[str, str]]:
    """(action, resource) of every call below: the deploy role running preflight needs them all
    (tests/infra/test_deploy_roles.py evaluates them against each deploy role)."""
    # DescribeSecret reads metadata only, never the value.
    described = [
        ("secretsmanager:DescribeSecret", f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf")
        for name in secrets
    ]
    return [
        *described,
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
    # Names of the secrets the operator creates before the first deploy (issue 13).
    operator_secrets: tuple[str, ...] = ()


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
    secretsmanager: Any = None


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
        operator_secrets=tuple(
            sorted(
                {
                    str(value)
                    for f in functions
                    for name, value in ((f.inputs.get("environment") or {}).get("variables") or {}).items()
                    if name in OPERATOR_SECRET_VARIABLES and value
                }
            )
        ),
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


def _secret_problem(secretsmanager: Any, name: str) -> str | None:
    command = f"aws secretsmanager create-secret --name {name} --secret-string <value>"
    try:
        secret = secretsmanager.describe_secret(SecretId=name)
    except secretsmanager.exceptions.ResourceNotFoundException:
        return f"{name} does not exist; create it: {command}"
    if secret.get("DeletedDate"):
        restore = f"aws secretsmanager restore-secret --secret-id {name}"
        return f"{name} is scheduled for deletion; restore it: {restore}"
    stages = [stage for stages in (secret.get("VersionIdsToStages") or {}).values() for stage in stages]
    if "AWSCURRENT" not in stages:
        put = f"aws secretsmanager put-secret-value --secret-id {name} --secret-string <value>"
        return f"{name} has no value; put one: {put}"
    key = secret.get("KmsKeyId")
    if key and key != AWS_MANAGED_SECRETS_KEY:
        return (
            f"{name} is encrypted with {key}, which the functions may not decrypt; recreate it "
            f"without --kms-key-id (the AWS managed key {AWS_MANAGED_SECRETS_KEY})"
        )
    return None


def check_operator_secrets(secretsmanager: Any, needs: StackNeeds) -> Finding:
    problems = [p for name in needs.operator_secrets if (p := _secret_problem(secretsmanager, name))]
    if problems:
        return Finding("operator-secrets", False, "; ".join(problems))
    return Finding(
        "operator-secrets", True, f"{', '.join(needs.operator_secrets)} exist with a current value"
    )


def preflight(clients: Clients, needs: StackNeeds) -> list[Finding]:
    findings = [
        check_lambda_concurrency(clients.lambda_, needs),
        check_vpcs(clients.ec2, clients.service_quotas, needs),
        check_log_resource_policies(clients.logs, needs),
        check_boundary(clients.iam, clients.sts),
    ]
    # Only stacks whose providers read an operator's secret have this check (issue 13).
    if needs.operator_secrets:
        findings.append(check_operator_secrets(clients.secretsmanager, needs))
    return findings


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
        secretsmanager=session.client("secretsmanager"),
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
    parser.add_argument("--stack", help="default: the first stack of the deploy order (infra/stacks.py)")
    args = parser.parse_args(argv)
    args.stack = args.stack or first_stack()
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
