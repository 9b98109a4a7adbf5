"""Issue 9: "the preview role cannot read data, and previews never get a passphrase that decrypts prod".

Evaluated, not string-matched: bootstrap/'s real documents (the roles' policies and each
secrets key's key policy) go through the IAM evaluator (`infra.policy.evaluator`,
principalmapper's local simulation, which also applies KMS's rule that a key policy must name
the caller or the account). The workflow half is in tests/workflows/test_secrets_providers.py.
"""

from __future__ import annotations

import pytest

from bootstrap import deployers, policies
from infra.policy import coverage
from infra.policy.evaluator import Principal, Request, allowed
from infra.tools.offline import ACCOUNT_ID
from service.contract import PROJECT

A = ACCOUNT_ID
REGION = "us-east-1"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
KEY_ARN = {
    d.environment: f"arn:aws:kms:{REGION}:{A}:key/{d.environment}-secrets" for d in deployers.DEPLOYERS
}
PREVIEWED = [KEY_ARN[d.environment] for d in deployers.DEPLOYERS if d.previewed_by_pull_requests]
STACKS = ("staging", "prod")


def data_reads(stack: str) -> list[Request]:
    """One read of each kind of data a stack holds: documents, ledger, secrets, logs, messages."""
    name = f"{PROJECT}-{stack}"
    return [
        Request("s3:GetObject", f"arn:aws:s3:::{name}-documents-{A}/contracts/nda.pdf"),
        Request("s3:GetObjectVersion", f"arn:aws:s3:::{name}-documents-{A}/contracts/nda.pdf"),
        Request("s3:ListBucket", f"arn:aws:s3:::{name}-documents-{A}"),
        Request("dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{A}:table/{name}-ledger"),
        Request("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{A}:table/{name}-ledger"),
        Request("dynamodb:Scan", f"arn:aws:dynamodb:{REGION}:{A}:table/{name}-ledger"),
        Request(
            "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{A}:secret:{name}/api-keys-a1"
        ),
        Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{A}:parameter/{name}/token"),
        Request("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{A}:log-group:/aws/lambda/{name}-api:*"),
        Request("logs:FilterLogEvents", f"arn:aws:logs:{REGION}:{A}:log-group:/aws/lambda/{name}-api:*"),
        Request("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{A}:{name}-ingest"),
        Request("es:ESHttpGet", f"arn:aws:es:{REGION}:{A}:domain/{name}/chunks/_search"),
        Request("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{A}:function:{name}-api"),
    ]


def preview() -> Principal:
    arn = policies.role_arn(A, deployers.PREVIEW_ROLE_NAME)
    return Principal(arn, [policies.preview_document("acme-state", PREVIEWED)])


def drift() -> Principal:
    arn = policies.role_arn(A, deployers.DRIFT_ROLE_NAME)
    return Principal(arn, [policies.drift_document(A, "acme-state")])


def decrypt(deployer: deployers.Deployer) -> tuple[Request, policies.Document]:
    """A Decrypt of the stack's Pulumi data key, and the key policy bootstrap/ gives that key."""
    return Request("kms:Decrypt", KEY_ARN[deployer.environment]), policies.secrets_key_policy(deployer, A)


PROD = deployers.deployer_for("prod")
STAGING = deployers.deployer_for("staging")


@pytest.mark.parametrize("stack", STACKS)
def test_the_preview_role_cannot_read_an_object_an_item_or_a_secret(stack: str) -> None:
    # Given the preview role's real policy, which PR code runs with
    principal = preview()
    # When it asks for any stack's data / Then every request is refused
    granted = [str(r) for r in data_reads(stack) if allowed(principal, r)]
    assert granted == []
    # While it still reads the metadata a refresh needs (the rehearsal checks every resource's)
    assert allowed(principal, Request("s3:GetBucketPolicy", f"arn:aws:s3:::{PROJECT}-{stack}-documents-{A}"))
    assert allowed(principal, Request("dynamodb:DescribeTable", f"arn:aws:dynamodb:{REGION}:{A}:table/x"))


def test_the_preview_role_decrypts_staging_but_never_prod() -> None:
    # Given the preview role and the secrets keys of staging and prod, with their key policies
    principal = preview()
    # Then it may decrypt the stack PRs preview (a preview must load staging's state)
    assert allowed(principal, *decrypt(STAGING))
    # And not prod's: its own policy denies it, and prod's key policy does not name it
    assert not allowed(principal, *decrypt(PROD))
    # Even were the role an administrator, prod's key policy alone refuses it
    as_admin = Principal(principal.arn, [ADMIN])
    assert not allowed(as_admin, *decrypt(PROD))
    assert allowed(as_admin, *decrypt(STAGING))


@pytest.mark.parametrize("deployer", deployers.DEPLOYERS, ids=lambda d: d.environment)
def test_only_the_roles_a_key_policy_names_decrypt_that_stacks_secrets(deployer: deployers.Deployer) -> None:
    # Given every role bootstrap/ creates, each with an administrator's identity policy (the
    # worst case: only the key policy stands between it and the secrets)
    names = [d.role_name for d in deployers.DEPLOYERS]
    names += [deployers.PREVIEW_ROLE_NAME, deployers.DRIFT_ROLE_NAME, policies.BOOTSTRAP_ROLE_NAME]
    request, key_policy = decrypt(deployer)
    may = {n for n in names if allowed(Principal(policies.role_arn(A, n), [ADMIN]), request, key_policy)}
    # Then exactly the named users decrypt; the bootstrap role administers the key but cannot
    assert may == {arn.rsplit("/", 1)[1] for arn in policies.secrets_key_users(deployer, A)}
    assert deployer.role_name in may
    assert policies.BOOTSTRAP_ROLE_NAME not in may
    # And for prod that is its deploy role and the drift check: no PR role, no staging role
    if deployer is PROD:
        assert may == {PROD.role_name, deployers.DRIFT_ROLE_NAME}


@pytest.mark.parametrize("deployer", deployers.DEPLOYERS, ids=lambda d: d.environment)
def test_no_deploy_role_can_rewrite_a_secrets_key_or_its_alias(deployer: deployers.Deployer) -> None:
    # Given a deploy role's real policy and a secrets key (tagged as such by bootstrap/)
    principal = coverage.deploy_principal(deployer)
    tagged = {f"aws:ResourceTag/{policies.SECRETS_KEY_TAG}": "true"}
    key = KEY_ARN["production"]
    alias = f"arn:aws:kms:{REGION}:{A}:{PROD.secrets_alias}"
    attempts = [
        Request("kms:PutKeyPolicy", key, tagged),
        Request("kms:CreateGrant", key, tagged),
        Request("kms:UntagResource", key, tagged),
        Request("kms:TagResource", key, {**tagged, "aws:RequestTag/stack": deployer.stacks}),
        Request("kms:ScheduleKeyDeletion", key, tagged),
        Request("kms:UpdateAlias", alias),
        Request("kms:DeleteAlias", alias),
    ]
    # Then none is allowed, even where the key also carries this deployer's own stack tag
    for context_extra in ({}, {"aws:ResourceTag/stack": deployer.stacks}):
        granted = [
            str(r)
            for r in attempts
            if allowed(principal, Request(r.action, r.resource, {**r.context, **context_extra}))
        ]
        assert granted == [], context_extra


def test_the_drift_role_reads_what_a_refresh_needs_and_no_other_data() -> None:
    # Given the drift role (main's code, environment `drift`)
    principal = drift()
    # Then it may read the stacks' secrets through Secrets Manager, as a SecretVersion refresh does
    for stack in STACKS:
        secret = f"arn:aws:secretsmanager:{REGION}:{A}:secret:{PROJECT}-{stack}/api-keys-a1"
        assert allowed(principal, Request("secretsmanager:GetSecretValue", secret))
        via_secrets_manager = {
            "aws:ResourceTag/stack": stack,
            "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        }
        assert allowed(
            principal, Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{A}:key/k", via_secrets_manager)
        )
        assert not allowed(
            principal,
            Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{A}:key/k", {"aws:ResourceTag/stack": stack}),
        )
        # And decrypt the stack's Pulumi secrets (its key policy names it)
        assert allowed(principal, *decrypt(deployers.deployer_for(stack)))
        # But no document, ledger item, log line or message
        reads = [r for r in data_reads(stack) if r.action != "secretsmanager:GetSecretValue"]
        assert [str(r) for r in reads if allowed(principal, r)] == []
    # And nothing of the PR stacks'
    assert not allowed(principal, *decrypt(deployers.deployer_for("pr-7")))
