"""`make preflight`: each account quota that breaks a first deploy, against stubbed AWS answers.

botocore's Stubber checks every request against the service model and returns the given
response, so each check runs exactly the calls it would make against a real account.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.tools import preflight
from service.contract import PROJECT

NEEDS = preflight.StackNeeds(reserved_concurrency=8, vpcs=1, log_resource_policies=1)
ACCOUNT = "123456789012"


def client(service: Any) -> Any:
    # Any: boto3-stubs types client() per literal service name.
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


NAMES = {
    "lambda_": "lambda",
    "ec2": "ec2",
    "service_quotas": "service-quotas",
    "logs": "logs",
    "iam": "iam",
    "sts": "sts",
}


@pytest.fixture(scope="module")
def aws_clients() -> dict[str, Any]:
    # Built once: a botocore client takes a while to load its service model.
    return {field: client(service) for field, service in NAMES.items()}


@pytest.fixture
def stubs(aws_clients: dict[str, Any]) -> Iterator[dict[str, Stubber]]:
    stubbers = {field: Stubber(c) for field, c in aws_clients.items()}
    with ExitStack() as stack:
        for stubber in stubbers.values():
            stack.enter_context(stubber)
        yield stubbers


def clients(stubs: dict[str, Stubber]) -> preflight.Clients:
    return preflight.Clients(**{field: stubber.client for field, stubber in stubs.items()})


def lambda_limits(stub: Stubber, total: int, unreserved: int) -> None:
    stub.add_response(
        "get_account_settings",
        {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}},
    )


def test_a_new_account_with_ten_concurrent_executions_fails_naming_the_quota(
    stubs: dict[str, Stubber],
) -> None:
    # Given a fresh account whose Lambda concurrency total is 10
    lambda_limits(stubs["lambda_"], 10, 10)
    # When the stack wants to reserve 8, Then preflight fails and says what to request
    finding = preflight.check_lambda_concurrency(stubs["lambda_"].client, NEEDS)
    assert not finding.ok
    assert "reserves 8" in finding.message
    assert "10 unreserved" in finding.message
    assert preflight.LAMBDA_CONCURRENCY_QUOTA in finding.message


@pytest.mark.parametrize(("unreserved", "ok"), [(108, True), (107, False)])
def test_lambda_keeps_one_hundred_unreserved(stubs: dict[str, Stubber], unreserved: int, ok: bool) -> None:
    # Given an account with `unreserved` free executions, When 8 are reserved, Then 100 must remain
    lambda_limits(stubs["lambda_"], 1000, unreserved)
    assert preflight.check_lambda_concurrency(stubs["lambda_"].client, NEEDS).ok is ok


def vpcs(stub: Stubber, count: int) -> None:
    stub.add_response("describe_vpcs", {"Vpcs": [{"VpcId": f"vpc-{i}"} for i in range(count)]})


@pytest.mark.parametrize(("existing", "ok"), [(4, True), (5, False)])
def test_vpc_quota_counts_the_new_vpc(stubs: dict[str, Stubber], existing: int, ok: bool) -> None:
    # Given `existing` VPCs and an applied quota of 5
    vpcs(stubs["ec2"], existing)
    stubs["service_quotas"].add_response(
        "get_service_quota", {"Quota": {"Value": 5.0}}, {"ServiceCode": "vpc", "QuotaCode": "L-F678F1CE"}
    )
    finding = preflight.check_vpcs(stubs["ec2"].client, stubs["service_quotas"].client, NEEDS)
    # Then the stack's one VPC fits only below the quota, and a failure names the quota code
    assert finding.ok is ok
    if not ok:
        assert "L-F678F1CE" in finding.message
        assert "5 VPCs exist" in finding.message


def test_vpc_quota_falls_back_to_the_aws_default(stubs: dict[str, Stubber]) -> None:
    # Given an account that never changed the VPC quota (no applied value)
    vpcs(stubs["ec2"], 5)
    stubs["service_quotas"].add_client_error("get_service_quota", "NoSuchResourceException")
    stubs["service_quotas"].add_response("get_aws_default_service_quota", {"Quota": {"Value": 5.0}})
    # Then the default of 5 applies and a sixth VPC fails
    assert not preflight.check_vpcs(stubs["ec2"].client, stubs["service_quotas"].client, NEEDS).ok


@pytest.mark.parametrize(("existing", "ok"), [(9, True), (10, False)])
def test_logs_resource_policies_hard_limit(stubs: dict[str, Stubber], existing: int, ok: bool) -> None:
    # Given `existing` CloudWatch Logs resource policies and a stack that adds one
    policies = [{"policyName": f"p{i}", "policyDocument": "{}"} for i in range(existing)]
    stubs["logs"].add_response("describe_resource_policies", {"resourcePolicies": policies}, {"limit": 50})
    finding = preflight.check_log_resource_policies(stubs["logs"].client, NEEDS)
    # Then the hard limit of 10 decides
    assert finding.ok is ok
    if not ok:
        assert "hard limit is 10" in finding.message


def test_a_missing_boundary_says_to_run_bootstrap(stubs: dict[str, Stubber]) -> None:
    # Given an account where bootstrap/ never ran
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::1:user/x", "UserId": "x"}
    )
    stubs["iam"].add_client_error("get_policy", "NoSuchEntity")
    finding = preflight.check_boundary(stubs["iam"].client, stubs["sts"].client)
    # Then preflight fails naming the boundary and the fix
    assert not finding.ok
    assert f"arn:aws:iam::{ACCOUNT}:policy/{PROJECT}-permissions-boundary" in finding.message
    assert "bootstrap" in finding.message


def test_stack_needs_come_from_the_program(staging: Any) -> None:
    # Given the staging program under mocks, Then its needs are what it declares
    needs = preflight.needs_of(staging)
    reserved = sum(
        f.inputs["reservedConcurrentExecutions"] for f in staging.of_type("aws:lambda/function:Function")
    )
    assert needs == preflight.StackNeeds(reserved_concurrency=reserved, vpcs=1, log_resource_policies=1)


def test_main_prints_every_check_and_fails_on_any(
    stubs: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a fresh account: 10 concurrent executions, 2 VPCs, no log policies, bootstrap done
    lambda_limits(stubs["lambda_"], 10, 10)
    vpcs(stubs["ec2"], 2)
    stubs["service_quotas"].add_response("get_service_quota", {"Quota": {"Value": 5.0}})
    stubs["logs"].add_response("describe_resource_policies", {"resourcePolicies": []})
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::1:user/x", "UserId": "x"}
    )
    stubs["iam"].add_response("get_policy", {"Policy": {"PolicyName": f"{PROJECT}-permissions-boundary"}})
    # When preflight runs for staging
    code = preflight.main(["--stack", "staging"], clients=clients(stubs), needs=NEEDS)
    out = capsys.readouterr().out.splitlines()
    # Then it exits 1, with one line per check and only the Lambda quota failing
    assert code == 1
    assert out[0] == "preflight staging: FAIL"
    assert [line.split()[:2] for line in out[1:]] == [
        ["FAIL", "lambda-concurrency:"],
        ["PASS", "vpc-quota:"],
        ["PASS", "logs-resource-policies:"],
        ["PASS", "permissions-boundary:"],
    ]
