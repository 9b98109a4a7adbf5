"""The deploy roles, evaluated: bootstrap/'s real documents through an IAM policy evaluator.

No substring checks: each request below goes through `infra.policy.evaluator.allowed`
(principalmapper's local simulation: explicit denies, boundary, identity policies,
conditions). Issue 9: `iam:*Role*` on `rag-platform-*` let the staging or PR role rewrite
the prod role's trust or make itself admin.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bootstrap import policies
from infra.policy import coverage
from infra.policy.evaluator import Principal, Request, allowed
from infra.stacks import EPHEMERAL_SOURCE
from infra.tools import preflight
from infra.tools.offline import ACCOUNT_ID, ResourceRecord, StackRun
from service.contract import PROJECT
from tests.infra.conftest import PR_STACK, pr_stacks_fit

A = ACCOUNT_ID
BOUNDARY = policies.boundary_policy_arn(A)
REGION = "us-east-1"
PROD_ROLE = f"arn:aws:iam::{A}:role/{PROJECT}-prod-api"
NON_PROD = [d for d in policies.DEPLOYERS if d.stacks != "prod"]
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def role(deployer: policies.Deployer) -> Principal:
    return coverage.deploy_principal(deployer, A)


def own_role(deployer: policies.Deployer) -> str:
    return f"arn:aws:iam::{A}:role/{deployer.role_name}"


def escalations(deployer: policies.Deployer) -> list[Request]:
    """What a PR's code running as `deployer` would try in order to reach prod or widen itself."""
    with_boundary = {"iam:PermissionsBoundary": BOUNDARY}
    prod_admin = f"arn:aws:iam::{A}:role/{PROJECT}-prod-evil"
    return [
        Request("iam:UpdateAssumeRolePolicy", PROD_ROLE),
        Request("iam:PutRolePolicy", PROD_ROLE, with_boundary),
        Request("iam:AttachRolePolicy", PROD_ROLE, with_boundary),
        Request("iam:DeleteRolePermissionsBoundary", PROD_ROLE),
        Request("iam:PassRole", PROD_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}),
        Request("iam:CreateRole", prod_admin, with_boundary),
        # its own role and every other deploy role
        Request("iam:PutRolePolicy", own_role(deployer), with_boundary),
        Request("iam:AttachRolePolicy", own_role(deployer), with_boundary),
        Request("iam:UpdateAssumeRolePolicy", own_role(deployer)),
        Request("iam:DeleteRolePolicy", own_role(deployer), with_boundary),
        Request("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{A}:role/{PROJECT}-github-deploy-production"),
        Request("iam:PutRolePolicy", f"arn:aws:iam::{A}:role/{policies.BOOTSTRAP_ROLE_NAME}", with_boundary),
        # the boundary and the OIDC provider
        Request("iam:CreatePolicyVersion", BOUNDARY),
        Request("iam:DeletePolicy", BOUNDARY),
        Request("iam:UpdateOpenIDConnectProviderThumbprint", policies.oidc_provider_arn(A)),
        Request("iam:DeleteOpenIDConnectProvider", policies.oidc_provider_arn(A)),
        # prod resources, by name and by tag
        Request("s3:DeleteBucket", f"arn:aws:s3:::{PROJECT}-prod-documents-123456789012"),
        Request("s3:GetObject", f"arn:aws:s3:::{PROJECT}-prod-documents-123456789012/doc.pdf"),
        Request("dynamodb:Scan", f"arn:aws:dynamodb:{REGION}:{A}:table/{PROJECT}-prod-ledger"),
        Request(
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{REGION}:{A}:secret:{PROJECT}-prod/api-keys-x",
        ),
        Request("lambda:UpdateFunctionCode", f"arn:aws:lambda:{REGION}:{A}:function:{PROJECT}-prod-api"),
        Request("es:UpdateDomainConfig", f"arn:aws:es:{REGION}:{A}:domain/{PROJECT}-prod"),
        Request("ec2:DeleteVpc", f"arn:aws:ec2:{REGION}:{A}:vpc/vpc-1", {"aws:ResourceTag/stack": "prod"}),
        Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{A}:key/k", {"aws:ResourceTag/stack": "prod"}),
        # re-labelling a prod resource as its own, to manage it afterwards
        Request(
            "ec2:CreateTags",
            f"arn:aws:ec2:{REGION}:{A}:vpc/vpc-1",
            {"aws:ResourceTag/stack": "prod", "aws:RequestTag/stack": deployer.stacks.replace("*", "1")},
        ),
    ]


@pytest.mark.parametrize("deployer", NON_PROD, ids=lambda d: d.environment)
def test_staging_and_pr_roles_cannot_reach_prod_or_widen_themselves(deployer: policies.Deployer) -> None:
    # Given the staging or PR deploy role's real policy
    principal = role(deployer)
    # When each escalation is evaluated, Then every one is refused
    granted = [str(r) for r in escalations(deployer) if allowed(principal, r)]
    assert granted == []


@pytest.mark.parametrize("deployer", policies.DEPLOYERS, ids=lambda d: d.environment)
def test_no_deploy_role_creates_or_changes_a_role_without_the_boundary(deployer: policies.Deployer) -> None:
    # Given any deploy role, and a role name it does own
    principal = role(deployer)
    own = f"arn:aws:iam::{A}:role/{deployer.name_globs[1].replace('*', 'x')}"
    # Then with the boundary it may create the role, and without it (or with another) it may not
    assert allowed(principal, Request("iam:CreateRole", own, {"iam:PermissionsBoundary": BOUNDARY}))
    for context in ({}, {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}):
        for action in policies.BOUNDED_ROLE_WRITES:
            assert not allowed(principal, Request(action, own, context)), (action, context)
    # And it may pass its roles only to the services the program uses
    assert not allowed(principal, Request("iam:PassRole", own, {"iam:PassedToService": "ec2.amazonaws.com"}))


def test_a_role_created_by_a_non_prod_deployer_cannot_reach_prod_even_as_admin() -> None:
    # Given a staging workload role that carries the boundary but an admin policy
    workload = Principal(
        f"arn:aws:iam::{A}:role/{PROJECT}-staging-api", [ADMIN], policies.boundary_document(A)
    )
    prod_workload = replace(workload, arn=PROD_ROLE)
    prod_object = Request("s3:GetObject", f"arn:aws:s3:::{PROJECT}-prod-documents-123456789012/doc.pdf")
    # Then the boundary stops it at prod's data, at IAM and at the guardrail itself
    assert not allowed(workload, prod_object)
    assert not allowed(
        workload, Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{A}:key/k", {"aws:ResourceTag/stack": "prod"})
    )
    assert not allowed(
        workload,
        Request(
            "iam:CreateRole",
            f"arn:aws:iam::{A}:role/{PROJECT}-prod-x",
            {"iam:PermissionsBoundary": BOUNDARY},
        ),
    )
    assert not allowed(workload, Request("iam:DeleteRolePermissionsBoundary", workload.arn))
    # While its own stack's data, and prod's for prod's own roles, stay reachable
    assert allowed(workload, Request("s3:GetObject", f"arn:aws:s3:::{PROJECT}-staging-documents-1/doc.pdf"))
    assert allowed(prod_workload, prod_object)


@pytest.mark.parametrize("deployer", policies.DEPLOYERS, ids=lambda d: d.environment)
def test_each_deploy_role_may_run_preflight(deployer: policies.Deployer) -> None:
    # Given the calls `make preflight` makes before a first deploy, with the deploy role's credentials
    principal = role(deployer)
    # Then the role may make every one of them
    refused = [(a, r) for a, r in preflight.iam_requests(A) if not allowed(principal, Request(a, r))]
    assert refused == []


def test_the_bootstrap_role_manages_only_what_bootstrap_creates() -> None:
    # Given the role bootstrap.yml assumes
    admin = Principal(
        f"arn:aws:iam::{A}:role/{policies.BOOTSTRAP_ROLE_NAME}", [policies.bootstrap_document(A)]
    )
    # Then it may change the deploy roles, the boundary and the OIDC provider
    assert allowed(admin, Request("iam:PutRolePolicy", own_role(policies.DEPLOYERS[1])))
    assert allowed(admin, Request("iam:CreatePolicyVersion", BOUNDARY))
    assert allowed(admin, Request("iam:UpdateOpenIDConnectProviderThumbprint", policies.oidc_provider_arn(A)))
    # And nothing of the stacks: no workload role, no data
    assert not allowed(admin, Request("iam:PutRolePolicy", PROD_ROLE))
    assert not allowed(admin, Request("s3:GetObject", f"arn:aws:s3:::{PROJECT}-prod-documents-1/doc.pdf"))


def test_preview_role_reads_metadata_but_no_data() -> None:
    # Given the PR-preview role (no ReadOnlyAccess any more)
    preview = Principal(f"arn:aws:iam::{A}:role/{policies.PREVIEW_ROLE_NAME}", [policies.preview_document()])
    bucket = f"arn:aws:s3:::{PROJECT}-prod-documents-123456789012"
    # Then what `pulumi preview` reads is allowed
    assert allowed(preview, Request("s3:GetBucketPolicy", bucket))
    assert allowed(preview, Request("ec2:DescribeVpcs", "*"))
    # And no data read is, on any stack, nor any write
    for action, resource in [
        ("s3:GetObject", f"{bucket}/doc.pdf"),
        ("dynamodb:Scan", f"arn:aws:dynamodb:{REGION}:{A}:table/{PROJECT}-prod-ledger"),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{A}:table/{PROJECT}-staging-ledger"),
        (
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{REGION}:{A}:secret:{PROJECT}-prod/api-keys-x",
        ),
        ("kms:Decrypt", f"arn:aws:kms:{REGION}:{A}:key/k"),
        ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{A}:{PROJECT}-prod-ingest"),
        ("s3:PutObject", f"{bucket}/doc.pdf"),
        ("s3:ListBucket", bucket),
        ("iam:CreateRole", f"arn:aws:iam::{A}:role/{PROJECT}-staging-x"),
    ]:
        assert not allowed(preview, Request(action, resource)), action


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_deploy_role_can_make_every_request_its_stack_needs(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the stack's resources under mocks and the requests the table derives from them
    run: StackRun = request.getfixturevalue(stack)
    principal = role(coverage.deployer_for(stack))
    assert len(coverage.requests_for(run, REGION)) > 300
    # When each is evaluated against that stack's deploy role, Then none is refused
    assert [str(g) for g in coverage.gaps(run, principal, REGION)] == []


@pr_stacks_fit
def test_the_pr_role_can_deploy_a_pr_stack(pr_stack: StackRun) -> None:
    # Given a PR stack made as ephemeral.yml makes it: the source stack's config under the name pr-42
    # Then the ephemeral deploy role may make every request of its `pulumi up`
    principal = role(coverage.deployer_for(PR_STACK))
    assert [str(g) for g in coverage.gaps(pr_stack, principal, REGION)] == []
    # And the source stack's own role may make none of those that touch its names or tags
    assert coverage.gaps(pr_stack, role(coverage.deployer_for(EPHEMERAL_SOURCE)), REGION) != []


def test_the_old_deploy_policy_escalates_so_the_evaluator_can_fail() -> None:
    # Given the deploy roles' IAM statement on main before issue 9: iam:*Role* on rag-platform-*
    old = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:*Role*", "iam:*RolePolicy*", "iam:PassRole", "iam:*InstanceProfile*"],
                "Resource": [
                    f"arn:aws:iam::*:role/{PROJECT}-*",
                    f"arn:aws:iam::*:instance-profile/{PROJECT}-*",
                ],
            }
        ],
    }
    staging = Principal(f"arn:aws:iam::{A}:role/{PROJECT}-github-deploy-staging", [old])
    # Then the evaluator finds the escalations the issue describes
    assert allowed(staging, Request("iam:UpdateAssumeRolePolicy", PROD_ROLE))
    assert allowed(staging, Request("iam:AttachRolePolicy", staging.arn))
    assert allowed(staging, Request("iam:CreateRole", f"arn:aws:iam::{A}:role/{PROJECT}-x"))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_preview_role_can_refresh_every_resource_of_the_stack(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the stack's resources, When every metadata read of a refresh is evaluated for the
    # preview role, Then none is refused
    run: StackRun = request.getfixturevalue(stack)
    assert [str(g) for g in coverage.preview_gaps(run, coverage.preview_principal(A), REGION)] == []


def test_preview_coverage_names_a_read_the_role_lost(staging: StackRun) -> None:
    # Given the preview role without lambda:GetEventSourceMapping
    document = policies.preview_document()
    document["Statement"][0]["Action"].remove("lambda:GetEventSourceMapping")
    preview = Principal(f"arn:aws:iam::{A}:role/{policies.PREVIEW_ROLE_NAME}", [document])
    # Then the check names the mapping and the read
    found = [str(g) for g in coverage.preview_gaps(staging, preview, REGION)]
    assert len(found) == 1
    assert found[0].startswith(
        "aws:lambda/eventSourceMapping:EventSourceMapping ingester-sqs: refused lambda:GetEventSourceMapping"
    )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_api_access_logs_need_the_vended_log_delivery_actions(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the API stage, whose access logs go to CloudWatch Logs: enabling them needs
    # logs:CreateLogDelivery & co. on "*" from the caller (API Gateway's HTTP API logging guide)
    run: StackRun = request.getfixturevalue(stack)
    needed = {r.action for r in coverage.requests_for(run, REGION)}
    assert {"logs:CreateLogDelivery", "logs:UpdateLogDelivery"} <= needed
    # Then the stack's deploy role may make every request the stage needs
    gaps = coverage.gaps(run, role(coverage.deployer_for(stack)), REGION)
    assert [str(g) for g in gaps if g.resource.startswith("aws:apigatewayv2/stage:Stage")] == []


def test_coverage_names_a_request_the_role_lost(staging: StackRun) -> None:
    # Given the staging deploy role without its SQS rights (a needed action removed)
    deployer = coverage.deployer_for("staging")
    document = policies.deploy_document(deployer, A)
    for statement in document["Statement"]:
        if statement["Sid"] == "OwnNamedResources":
            statement["Action"] = [a for a in statement["Action"] if a != "sqs:*"]
    principal = Principal(own_role(deployer), [document])
    # Then the coverage check names the queue and the refused action
    found = [str(g) for g in coverage.gaps(staging, principal, REGION)]
    assert any("aws:sqs/queue:Queue ingest-queue: refused sqs:CreateQueue" in g for g in found), found


def test_coverage_names_a_role_without_the_boundary_or_with_an_automatic_name(staging: StackRun) -> None:
    # Given the staging stack with the flow-log role stripped of its boundary and its name
    def strip(record: ResourceRecord) -> ResourceRecord:
        if record.type != "aws:iam/role:Role" or record.name != "network-flow-logs-role":
            return record
        inputs = {k: v for k, v in record.inputs.items() if k not in ("permissionsBoundary", "name")}
        return replace(record, inputs=inputs)

    run = replace(staging, resources=[strip(r) for r in staging.resources])
    # Then creating that role is refused, and reported by name
    found = [str(g) for g in coverage.gaps(run, role(coverage.deployer_for("staging")), REGION)]
    assert any(
        g.startswith("aws:iam/role:Role network-flow-logs-role: refused iam:CreateRole") for g in found
    )


def test_an_unmapped_resource_type_is_reported_by_name(staging: StackRun) -> None:
    # Given a stack that declares a type the table does not know
    stranger = replace(
        staging.resources[0], type="aws:sfn/stateMachine:StateMachine", name="flow", custom=True
    )
    run = replace(staging, resources=[*staging.resources, stranger])
    found = [str(g) for g in coverage.gaps(run, role(coverage.deployer_for("staging")), REGION)]
    # Then the check fails naming it, rather than passing it by silence
    assert "aws:sfn/stateMachine:StateMachine flow: no IAM actions mapped" in "\n".join(found)


@pytest.mark.parametrize(
    ("stack", "environment"), [("staging", "staging"), ("prod", "production"), ("pr-42", "ephemeral")]
)
def test_each_stack_has_exactly_one_deploy_role(stack: str, environment: str) -> None:
    assert coverage.deployer_for(stack).environment == environment


STATE_BUCKET = "acme-pulumi-state"


def state_object(project: str, stack: str) -> str:
    return f"arn:aws:s3:::{STATE_BUCKET}/.pulumi/stacks/{project}/{stack}.json"


@pytest.mark.parametrize("deployer", NON_PROD, ids=lambda d: d.environment)
def test_with_a_diy_state_bucket_each_role_reaches_only_its_own_stacks_state(
    deployer: policies.Deployer,
) -> None:
    # Given the deploy role with its state policy for an S3 backend
    principal = Principal(
        own_role(deployer),
        [
            policies.deploy_document(deployer, A),
            policies.state_document(STATE_BUCKET, f"{PROJECT}", deployer.stacks, write=True),
        ],
    )
    own_stack = deployer.stacks.replace("*", "7")
    # Then it reads and writes its stack's state, lock and history
    assert allowed(principal, Request("s3:PutObject", state_object(f"{PROJECT}", own_stack)))
    lock = f"arn:aws:s3:::{STATE_BUCKET}/.pulumi/locks/{PROJECT}/{own_stack}/l.json"
    assert allowed(principal, Request("s3:PutObject", lock))
    # And cannot read or rewrite prod's, nor the bootstrap's
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert not allowed(principal, Request(action, state_object(f"{PROJECT}", "prod")))
        assert not allowed(principal, Request(action, state_object(f"{PROJECT}-bootstrap", "bootstrap")))


def test_the_preview_role_reads_state_but_no_other_object() -> None:
    # Given the preview role with an S3 backend
    preview = Principal(
        f"arn:aws:iam::{A}:role/{policies.PREVIEW_ROLE_NAME}",
        [
            policies.preview_document(STATE_BUCKET),
            policies.state_document(STATE_BUCKET, f"{PROJECT}", "*", write=False),
        ],
    )
    # Then it reads every stack's state, writes none, and still reads no document
    assert allowed(preview, Request("s3:GetObject", state_object(f"{PROJECT}", "prod")))
    assert not allowed(preview, Request("s3:PutObject", state_object(f"{PROJECT}", "prod")))
    assert not allowed(preview, Request("s3:GetObject", f"arn:aws:s3:::{PROJECT}-prod-documents-1/doc.pdf"))
    assert not allowed(preview, Request("s3:GetObject", f"arn:aws:s3:::{STATE_BUCKET}/other/secret.txt"))


def test_the_staging_role_can_deploy_the_optional_cognito_pool(cognito_staging: StackRun) -> None:
    # Given staging with auth.cognito.enabled (issue 15): pool, client and groups
    principal = role(coverage.deployer_for("staging"))
    # Then every request of its `pulumi up` is allowed, the pool's included
    assert [str(g) for g in coverage.gaps(cognito_staging, principal, REGION)] == []
    assert any(
        r.action == "cognito-idp:CreateUserPool" for r in coverage.requests_for(cognito_staging, REGION)
    )
    # And the prod role may not touch the staging pool
    assert coverage.gaps(cognito_staging, role(coverage.deployer_for("prod")), REGION) != []
    # And the preview role can refresh it
    assert [
        str(g) for g in coverage.preview_gaps(cognito_staging, coverage.preview_principal(A), REGION)
    ] == []
