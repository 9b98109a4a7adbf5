"""Each CrossGuard rule with one passing and one failing resource, then both whole stacks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from infra.iam import PERMISSIONS_BOUNDARY_NAME
from infra.policy import offline as offline_pack
from infra.policy import rules
from infra.tools.offline import StackRun
from service.contract import PROJECT

TAGS = {
    "project": PROJECT,
    "environment": "production-eu",
    "tier": "prod",
    "stack": "prod",
    "owner": "team",
    "cost-center": "cc",
}
KMS = "arn:aws:kms:us-east-1:123456789012:key/k"


def args(resource_type: str, props: Mapping[str, Any], name: str = "r") -> ResourceValidationArgs:
    return ResourceValidationArgs(resource_type, props, f"urn:{name}", name, None, None)  # type: ignore[arg-type]


class Collector:
    """A ReportViolation that keeps the messages."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.messages.append(message)


def violations(validator: rules.Validator, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    found = Collector()
    validator(args(resource_type, props), found)
    return found.messages


DOMAIN_OK = {
    "encryptAtRest": {"enabled": True, "kmsKeyId": KMS},
    "nodeToNodeEncryption": {"enabled": True},
    "domainEndpointOptions": {"enforceHttps": True, "tlsSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10"},
    "vpcOptions": {"subnetIds": ["s-1"]},
    "advancedSecurityOptions": {"enabled": True},
    "accessPolicies": json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:role"]}}]}),
    "clusterConfig": {
        "instanceCount": 3,
        "zoneAwarenessEnabled": True,
        "zoneAwarenessConfig": {"availabilityZoneCount": 3},
        "dedicatedMasterEnabled": True,
        "dedicatedMasterCount": 3,
    },
    "tags": TAGS,
}
TLS_POLICY = json.dumps(
    {
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]
    }
)
D = "aws:opensearch/domain:Domain"
F = "aws:lambda/function:Function"

CASES: list[tuple[rules.Validator, str, dict[str, Any], dict[str, Any]]] = [
    (rules.encryption_everywhere, "aws:sqs/queue:Queue", {"kmsMasterKeyId": KMS}, {}),
    (rules.encryption_everywhere, D, DOMAIN_OK, {**DOMAIN_OK, "encryptAtRest": {"enabled": False}}),
    (
        rules.encryption_everywhere,
        "aws:cloudwatch/logGroup:LogGroup",
        {"kmsKeyId": KMS},
        {"retentionInDays": 7},
    ),
    (rules.no_public_search_domain, D, DOMAIN_OK, {**DOMAIN_OK, "vpcOptions": {}}),
    (
        rules.no_public_search_domain,
        D,
        DOMAIN_OK,
        {**DOMAIN_OK, "accessPolicies": json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*"}]})},
    ),
    (
        rules.no_public_bucket,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        dict.fromkeys(
            ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True
        ),
        {"blockPublicAcls": True},
    ),
    (rules.no_public_bucket, "aws:s3/bucket:Bucket", {"bucket": "b"}, {"bucket": "b", "acl": "public-read"}),
    (
        rules.https_only,
        D,
        DOMAIN_OK,
        {
            **DOMAIN_OK,
            "domainEndpointOptions": {
                "enforceHttps": True,
                "tlsSecurityPolicy": "Policy-Min-TLS-1-0-2019-07",
            },
        },
    ),
    (
        rules.https_only,
        "aws:s3/bucketPolicy:BucketPolicy",
        {"policy": TLS_POLICY},
        {"policy": '{"Statement": []}'},
    ),
    (rules.dlq_on_every_queue, "aws:sqs/queue:Queue", {"name": "q", "redrivePolicy": "{}"}, {"name": "q"}),
    (rules.required_tags, "aws:s3/bucket:Bucket", {"tags": TAGS}, {"tags": {"project": PROJECT}}),
    # Without the stack tag the deploy roles cannot manage an id-named resource (issue 9).
    (
        rules.required_tags,
        "aws:ec2/vpc:Vpc",
        {"tags": TAGS},
        {"tags": {k: v for k, v in TAGS.items() if k != "stack"}},
    ),
    (rules.ha_in_prod, D, DOMAIN_OK, {**DOMAIN_OK, "clusterConfig": {"instanceCount": 1}}),
    # The deploy roles may create only roles that carry the bootstrap's boundary (issue 9).
    (
        rules.permissions_boundary_on_every_role,
        "aws:iam/role:Role",
        {"permissionsBoundary": f"arn:aws:iam::123456789012:policy/{PERMISSIONS_BOUNDARY_NAME}"},
        {"name": f"{PROJECT}-staging-flow-logs"},
    ),
    (
        rules.permissions_boundary_on_every_role,
        "aws:iam/role:Role",
        {"permissionsBoundary": f"arn:aws:iam::123456789012:policy/{PERMISSIONS_BOUNDARY_NAME}"},
        {"permissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"},
    ),
    # Issue 13: credentials go to endpoints outside AWS only over https ...
    (
        rules.external_endpoints_https,
        F,
        {"environment": {"variables": {"SEARCH_ENDPOINT": "https://es.example.com:9243"}}},
        {"environment": {"variables": {"SEARCH_ENDPOINT": "http://es.example.com:9200"}}},
    ),
    (
        rules.external_endpoints_https,
        F,
        {"environment": {"variables": {"OPENAI_BASE_URL": "https://api.openai.com/v1"}}},
        {"environment": {"variables": {"OPENAI_BASE_URL": "http://gateway.internal:4000/v1"}}},
    ),
    # ... and come from Secrets Manager, never from a function variable.
    (
        rules.no_credentials_in_environment,
        F,
        {"environment": {"variables": {"OPENAI_API_KEY_SECRET_ID": f"{PROJECT}-dev/model-api-key"}}},
        {"environment": {"variables": {"OPENAI_API_KEY": "sk-live"}}},
    ),
    (
        rules.no_credentials_in_environment,
        F,
        {"environment": {"variables": {"SEARCH_CREDENTIALS_SECRET_ID": f"{PROJECT}-dev/search-credentials"}}},
        {"environment": {"variables": {"SEARCH_API_KEY": "ZWxhc3RpYw=="}}},
    ),
]


KEYS_TABLE_OK = {
    "hashKey": "key_id",
    "pointInTimeRecovery": {"enabled": True},
    "serverSideEncryption": {"enabled": True, "kmsKeyArn": KMS},
}
STRONG_PASSWORDS: dict[str, Any] = {
    "minimumLength": 12,
    "requireLowercase": True,
    "requireUppercase": True,
    "requireNumbers": True,
    "requireSymbols": True,
}
POOL_OK: dict[str, Any] = {
    "passwordPolicy": STRONG_PASSWORDS,
    "mfaConfiguration": "OPTIONAL",
    "adminCreateUserConfig": {"allowAdminCreateUserOnly": True},
}
POOL = "aws:cognito/userPool:UserPool"
CASES += [
    # Issue 15: the keys table is recoverable and under the stack key; other tables are not its business.
    (
        rules.keys_table_protected,
        "aws:dynamodb/table:Table",
        KEYS_TABLE_OK,
        {**KEYS_TABLE_OK, "pointInTimeRecovery": {}},
    ),
    (
        rules.keys_table_protected,
        "aws:dynamodb/table:Table",
        {**KEYS_TABLE_OK, "hashKey": "document_id", "pointInTimeRecovery": {}},
        {**KEYS_TABLE_OK, "serverSideEncryption": {"enabled": True}},
    ),
    (
        rules.cognito_strong_sign_in,
        POOL,
        POOL_OK,
        {**POOL_OK, "passwordPolicy": {**STRONG_PASSWORDS, "minimumLength": 8}},
    ),
    (rules.cognito_strong_sign_in, POOL, POOL_OK, {**POOL_OK, "passwordPolicy": {"minimumLength": 16}}),
    (rules.cognito_strong_sign_in, POOL, POOL_OK, {**POOL_OK, "mfaConfiguration": "OFF"}),
    (
        rules.cognito_strong_sign_in,
        POOL,
        POOL_OK,
        {k: v for k, v in POOL_OK.items() if k != "adminCreateUserConfig"},
    ),
    (
        rules.cognito_strong_sign_in,
        "aws:cognito/userPoolClient:UserPoolClient",
        {"preventUserExistenceErrors": "ENABLED"},
        {"preventUserExistenceErrors": "LEGACY"},
    ),
]


@pytest.mark.parametrize(("validator", "resource_type", "good", "bad"), CASES)
def test_rule_passes_good_and_fails_bad(
    validator: rules.Validator, resource_type: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    # Given one compliant and one non-compliant resource, When validated, Then only the bad one is reported
    assert violations(validator, resource_type, good) == []
    assert violations(validator, resource_type, bad) != []


def test_ha_rule_follows_the_tier_not_the_environment_name() -> None:
    # Given one-node domains: one in the staging tier whose environment is called "prod",
    # one in the prod tier whose environment has another name
    small = {**DOMAIN_OK, "clusterConfig": {"instanceCount": 1}}
    staging_tier = {**small, "tags": {**TAGS, "environment": "prod", "tier": "staging"}}
    prod_tier = {**small, "tags": {**TAGS, "environment": "customer-a", "tier": "prod"}}
    # Then only the tier with highAvailability in infra/tiers.yaml is held to HA
    assert violations(rules.ha_in_prod, D, staging_tier) == []
    assert violations(rules.ha_in_prod, D, prod_tier) != []


def _policy_resource(resource_type: str, name: str, props: Mapping[str, Any]) -> PolicyResource:
    return PolicyResource(resource_type, props, f"urn:{name}", name, None, None, None, [], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(("timeout", "expected"), [(300, 0), (900, 1)])
def test_lambda_timeout_below_visibility(timeout: int, expected: int) -> None:
    # Given a function on an SQS trigger, with a timeout below or above the queue's visibility
    resources = [
        _policy_resource("aws:lambda/function:Function", "fn", {"name": "ingester", "timeout": timeout}),
        _policy_resource("aws:sqs/queue:Queue", "q", {"name": "ingest", "visibilityTimeoutSeconds": 600}),
        _policy_resource(
            "aws:lambda/eventSourceMapping:EventSourceMapping",
            "esm",
            {
                "functionName": "arn:aws:lambda:us-east-1:1:function:ingester",
                "eventSourceArn": "arn:aws:sqs:us-east-1:1:ingest",
            },
        ),
    ]
    found = Collector()
    rules.timeout_below_visibility(StackValidationArgs(resources), found)
    assert len(found.messages) == expected


def test_pack_has_every_rule_mandatory() -> None:
    names = {p.name for p in rules.policies()}
    assert names == {*rules.RESOURCE_RULES, *rules.STACK_RULES}


NAT = _policy_resource("aws:ec2/natGateway:NatGateway", "nat", {})
NAT_ROUTE = _policy_resource(
    "aws:ec2/route:Route", "default", {"destinationCidrBlock": "0.0.0.0/0", "natGatewayId": "nat-id"}
)


@pytest.mark.parametrize(
    ("endpoint", "network", "expected"),
    [
        # Issue 13: an endpoint outside AWS without a NAT route fails, naming the function
        ("https://acme.es.eu-west-1.aws.elastic.cloud", [], 1),
        ("https://acme.es.eu-west-1.aws.elastic.cloud", [NAT], 1),
        ("https://acme.es.eu-west-1.aws.elastic.cloud", [NAT, NAT_ROUTE], 0),
        # The stack's own domain is reached through the VPC
        (f"https://vpc-{PROJECT}-dev-x.eu-west-1.es.amazonaws.com", [], 0),
    ],
)
def test_egress_has_nat(endpoint: str, network: list[PolicyResource], expected: int) -> None:
    function = _policy_resource(
        "aws:lambda/function:Function", "api", {"environment": {"variables": {"SEARCH_ENDPOINT": endpoint}}}
    )
    found = Collector()
    rules.egress_has_nat(StackValidationArgs([function, *network]), found)
    assert len(found.messages) == expected
    assert all("api calls SEARCH_ENDPOINT=" in m for m in found.messages)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_both_stacks_comply_with_the_pack(stack: str, request: pytest.FixtureRequest) -> None:
    # Given the whole mocked stack, When every resource rule runs, Then nothing is reported
    run: StackRun = request.getfixturevalue(stack)
    assert offline_pack.violations(run) == []


def test_taggable_list_is_complete(staging: StackRun, prod: StackRun) -> None:
    # Every declared resource that takes tags is in the rule's list, so none escapes it.
    tagged = {r.type for run in (staging, prod) for r in run.resources if "tags" in r.inputs}
    assert tagged <= rules.TAGGABLE


def test_timeout_rule_links_the_real_stack(staging: StackRun) -> None:
    # Given the staging resources with the ingester's timeout pushed past the visibility timeout
    def props(record: Any) -> dict[str, Any]:
        merged = {**record.inputs, "name": record.state.get("name")}
        return {**merged, "timeout": 10_000} if record.name == "ingester-function" else merged

    resources = [_policy_resource(r.type, r.name, props(r)) for r in staging.resources]
    found = Collector()
    # When the stack rule runs, Then it finds the function through the event source mapping
    rules.timeout_below_visibility(StackValidationArgs(resources), found)
    assert len(found.messages) == 1


def test_a_role_without_the_boundary_fails_the_pack(staging: StackRun) -> None:
    # Given the staging stack with the boundary removed from one role (the fix reverted)
    stripped = [
        replace(r, inputs={k: v for k, v in r.inputs.items() if k != "permissionsBoundary"})
        if r.type == "aws:iam/role:Role" and r.name == "network-flow-logs-role"
        else r
        for r in staging.resources
    ]
    # When the pack runs over it, Then exactly that role is reported, by rule name
    found = offline_pack.violations(replace(staging, resources=stripped))
    assert len(found) == 1
    assert found[0].startswith("permissions-boundary-on-every-role: role network-flow-logs-role")


def test_a_stack_with_cognito_complies_and_weakening_the_pool_fails_the_pack(
    cognito_staging: StackRun,
) -> None:
    # Given staging with the stack's own user pool, When the pack runs, Then it complies
    assert offline_pack.violations(cognito_staging) == []
    # And with MFA switched off on the pool (a hand edit of the component), exactly that is reported
    weakened = [
        replace(r, inputs={**r.inputs, "mfaConfiguration": "OFF"}) if r.type == POOL else r
        for r in cognito_staging.resources
    ]
    found = offline_pack.violations(replace(cognito_staging, resources=weakened))
    assert len(found) == 1
    assert found[0].startswith("cognito-strong-sign-in: user pool sign-in-pool must offer MFA")


def test_the_keys_table_without_recovery_fails_the_pack(staging: StackRun) -> None:
    stripped = [
        replace(r, inputs={**r.inputs, "pointInTimeRecovery": {"enabled": False}})
        if r.name == "keys-table"
        else r
        for r in staging.resources
    ]
    found = offline_pack.violations(replace(staging, resources=stripped))
    assert found == ["keys-table-protected: keys table keys-table must enable point-in-time recovery"]
