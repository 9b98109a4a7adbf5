"""`make preflight`'s operator-secrets check (issue 13), against stubbed Secrets Manager answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bootstrap import policies
from infra.policy.evaluator import Principal, Request, allowed
from infra.tools import preflight
from infra.tools.offline import StackRun, overlaid, run_stack
from service.contract import PROJECT
from tests.infra.test_cloud_options import example

NAME = f"{PROJECT}-dev/model-api-key"
VERSION = "01234567-89ab-cdef-0123-456789abcdef"
NEEDS = preflight.StackNeeds(
    reserved_concurrency=8, vpcs=1, log_resource_policies=1, operator_secrets=(NAME,)
)


@pytest.fixture
def secrets() -> Iterator[Stubber]:
    client: Any = boto3.client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stub:
        yield stub


def described(**extra: Any) -> dict[str, Any]:
    return {
        "ARN": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{NAME}-AbCdEf",
        "Name": NAME,
        **extra,
    }


CURRENT = {"VersionIdsToStages": {VERSION: ["AWSCURRENT"]}}


@pytest.mark.parametrize(
    ("answer", "ok", "says"),
    [
        (described(**CURRENT), True, f"{NAME} exist with a current value"),
        (described(**CURRENT, KmsKeyId="alias/aws/secretsmanager"), True, "exist with a current value"),
        # Created without a value (create-secret with no --secret-string): the cold start would fail
        (described(), False, f"put one: aws secretsmanager put-secret-value --secret-id {NAME}"),
        (described(VersionIdsToStages={VERSION: ["AWSPREVIOUS"]}), False, "has no value"),
        (
            described(**CURRENT, DeletedDate=datetime(2026, 1, 1, tzinfo=UTC)),
            False,
            "restore-secret",
        ),
        # A customer key the functions have no kms:Decrypt on
        (described(**CURRENT, KmsKeyId="arn:aws:kms:eu-west-1:123456789012:key/k"), False, "may not decrypt"),
    ],
)
def test_each_way_a_secret_would_break_the_cold_start_fails(
    secrets: Stubber, answer: dict[str, Any], ok: bool, says: str
) -> None:
    secrets.add_response("describe_secret", answer, {"SecretId": NAME})
    finding = preflight.check_operator_secrets(secrets.client, NEEDS)
    assert (finding.ok, finding.check) == (ok, "operator-secrets")
    assert says in finding.message


def test_a_missing_secret_fails_with_the_command_that_creates_it(secrets: Stubber) -> None:
    secrets.add_client_error(
        "describe_secret", "ResourceNotFoundException", expected_params={"SecretId": NAME}
    )
    finding = preflight.check_operator_secrets(secrets.client, NEEDS)
    assert not finding.ok
    assert (
        f"{NAME} does not exist; create it: aws secretsmanager create-secret --name {NAME}" in finding.message
    )


@pytest.fixture(scope="module")
def elastic_openai() -> StackRun:
    with overlaid("staging", example("dev-eu-west-1-elastic-openai")):
        return run_stack("staging")


def test_the_secrets_come_from_the_program(elastic_openai: StackRun, staging: StackRun) -> None:
    # Given the Elastic + OpenAI stack, Then preflight checks exactly the two secrets its functions read
    assert preflight.needs_of(elastic_openai).operator_secrets == (
        f"{PROJECT}-staging/model-api-key",
        f"{PROJECT}-staging/search-credentials",
    )
    # And a stack on the domain and Bedrock has none, so the check does not run for it
    assert preflight.needs_of(staging).operator_secrets == ()


@pytest.mark.parametrize("deployer", policies.DEPLOYERS, ids=lambda d: d.environment)
def test_each_deploy_role_may_describe_its_stacks_operator_secrets(deployer: policies.Deployer) -> None:
    # Given a stack of this deployer (its glob with the wildcard filled in) and its secret names
    stack = deployer.stacks.replace("*", "1")
    names = (f"{PROJECT}-{stack}/search-credentials", f"{PROJECT}-{stack}/model-api-key")
    role = Principal(
        f"arn:aws:iam::123456789012:role/{deployer.role_name}",
        [policies.deploy_document(deployer, "123456789012")],
    )
    # Then the deploy role running preflight may describe each (metadata only)
    requests = [
        (a, r) for a, r in preflight.iam_requests("123456789012", names, "eu-west-1") if "secret" in r
    ]
    assert len(requests) == 2
    assert [r for a, r in requests if not allowed(role, Request(a, r))] == []
    # And never read another stack's
    other = preflight.iam_requests("123456789012", (f"{PROJECT}-other/model-api-key",), "eu-west-1")[0]
    assert not allowed(role, Request(*other))
