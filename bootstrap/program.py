"""GitHub Actions OIDC provider and one IAM role per GitHub environment.

A workflow job gets an OIDC token whose `sub` claim names the repository and, for a job
bound to a GitHub environment, that environment: `repo:OWNER/NAME:environment:production`
(https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#example-subject-claims).
Each role trusts exactly one such subject and the `sts.amazonaws.com` audience
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html),
so only the `production` environment's jobs - which wait for its required reviewers -
can become the prod deploy role. No long-lived AWS key exists anywhere.

The deploy roles cannot escalate: see `bootstrap/policies.py` (permissions boundary,
per-stack scoping, metadata-only preview role) and bootstrap/README.md.

Config (`pulumi config set ...` in bootstrap/):
  githubRepository        owner/name (required)
  existingProviderArn     reuse an account's existing GitHub OIDC provider (one per account)
  stateBucket             the S3 bucket of a DIY state backend (`pulumi login s3://BUCKET`);
                          each role then reads/writes only its own stacks' state
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws

from bootstrap.deployers import DRIFT_ENVIRONMENT
from bootstrap.policies import (
    BOOTSTRAP_ENVIRONMENT,
    BOOTSTRAP_PROJECT,
    BOOTSTRAP_ROLE_NAME,
    DEPLOYERS,
    DRIFT_ROLE_NAME,
    GITHUB_OIDC_HOST,
    PREVIEW_ROLE_NAME,
    SECRETS_KEY_TAG,
    Deployer,
    bootstrap_document,
    boundary_document,
    deploy_document,
    drift_document,
    preview_document,
    secrets_key_policy,
    state_document,
)
from infra.iam import PERMISSIONS_BOUNDARY_NAME
from infra.stacks import role_variable
from service.contract import PROJECT

AUDIENCE = "sts.amazonaws.com"
# PR previews run without an environment; their subject is the pull_request event.
PREVIEW_SUBJECT = "pull_request"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def subject(repository: str, claim: str) -> str:
    return f"repo:{repository}:{claim}"


def trust_policy(provider_arn: str, repository: str, claim: str) -> dict[str, Any]:
    """Allow web-identity federation from GitHub for exactly one subject of one repository."""
    if not _REPO.match(repository):
        raise ValueError(f"githubRepository must be owner/name, got {repository!r}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    # StringEquals, not StringLike: no wildcard can widen the subject.
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": subject(repository, claim),
                    }
                },
            }
        ],
    }


@dataclass
class Bootstrap:
    provider_arn: pulumi.Output[str]
    boundary: aws.iam.Policy
    roles: dict[str, aws.iam.Role]
    grants: list[aws.iam.RolePolicy]
    # Per deployer environment: the KMS key its stacks' Pulumi secrets are encrypted with, and the
    # alias their stack files name it by (`secretsprovider: awskms://alias/...`).
    secrets_keys: dict[str, aws.kms.Key]
    secrets_aliases: dict[str, aws.kms.Alias]


def _provider(config: pulumi.Config) -> pulumi.Output[str]:
    existing = config.get("existingProviderArn")
    if existing:
        return pulumi.Output.from_input(existing)
    provider = aws.iam.OpenIdConnectProvider(
        "github-actions",
        url=f"https://{GITHUB_OIDC_HOST}",
        client_id_lists=[AUDIENCE],
        # No thumbprint: AWS trusts GitHub's OIDC endpoint through its own CA library and the
        # API made the list optional
        # (https://github.blog/changelog/2023-06-27-github-actions-update-on-oidc-integration-with-aws/).
    )
    return provider.arn


def _role(
    name: str, role_name: str, provider_arn: pulumi.Output[str], repository: str, claim: str
) -> aws.iam.Role:
    return aws.iam.Role(
        name,
        name=role_name,
        description=f"Assumed by GitHub Actions ({subject(repository, claim)})",
        assume_role_policy=provider_arn.apply(lambda arn: json.dumps(trust_policy(arn, repository, claim))),
        max_session_duration=3600,
    )


def _deploy_json(deployer: Deployer, account: str) -> str:
    return json.dumps(deploy_document(deployer, account))


def _state_grant(
    name: str, role: aws.iam.Role, bucket: str | None, project: str, stacks: str, *, write: bool
) -> list[aws.iam.RolePolicy]:
    """The role's access to its stacks' state in a DIY S3 backend; none without `stateBucket`."""
    if not bucket:
        return []
    document = state_document(bucket, project, stacks, write=write)
    return [aws.iam.RolePolicy(name, role=role.id, policy=json.dumps(document))]


def build() -> Bootstrap:
    config = pulumi.Config()
    repository = config.require("githubRepository")
    provider_arn = _provider(config)
    state_bucket = config.get("stateBucket")
    account = aws.get_caller_identity_output().account_id

    boundary = aws.iam.Policy(
        "permissions-boundary",
        name=PERMISSIONS_BOUNDARY_NAME,
        description=f"Permissions boundary of every {PROJECT} role (bootstrap/policies.py)",
        policy=account.apply(lambda a: json.dumps(boundary_document(a))),
    )
    roles: dict[str, aws.iam.Role] = {}
    grants: list[aws.iam.RolePolicy] = []
    for deployer in DEPLOYERS:
        environment = deployer.environment
        role = _role(
            f"deploy-{environment}",
            deployer.role_name,
            provider_arn,
            repository,
            f"environment:{environment}",
        )
        grants.append(
            aws.iam.RolePolicy(
                f"deploy-{environment}-scoped",
                role=role.id,
                policy=account.apply(partial(_deploy_json, deployer)),
            )
        )
        grants += _state_grant(
            f"deploy-{environment}-state", role, state_bucket, PROJECT, deployer.stacks, write=True
        )
        roles[environment] = role
        pulumi.export(role_variable(environment), role.arn)

    preview = _role("preview", PREVIEW_ROLE_NAME, provider_arn, repository, PREVIEW_SUBJECT)
    drift = _role("drift", DRIFT_ROLE_NAME, provider_arn, repository, f"environment:{DRIFT_ENVIRONMENT}")
    # KMS refuses a key policy naming a principal that does not exist yet (invalid principals), so
    # every key waits for the roles its policy names.
    key_users = [*roles.values(), preview, drift]
    secrets = {d.environment: _secrets_key(d, account, key_users) for d in DEPLOYERS}
    secrets_keys = {environment: key for environment, (key, _) in secrets.items()}
    secrets_aliases = {environment: alias for environment, (_, alias) in secrets.items()}
    previewed = [secrets_keys[d.environment].arn for d in DEPLOYERS if d.previewed_by_pull_requests]

    grants.append(
        aws.iam.RolePolicy(
            "preview-metadata",
            role=preview.id,
            policy=pulumi.Output.all(*previewed).apply(
                lambda arns: json.dumps(preview_document(state_bucket, arns))
            ),
        )
    )
    # The state of the stacks PRs preview only: prod's state (its outputs, its resource ids) is not
    # PR code's to read.
    for deployer in DEPLOYERS:
        if deployer.previewed_by_pull_requests:
            grants += _state_grant(
                f"preview-{deployer.environment}-state",
                preview,
                state_bucket,
                PROJECT,
                deployer.stacks,
                write=False,
            )
    # bootstrap/ is previewed on PRs too (its state holds role and key ids, no secret).
    grants += _state_grant(
        "preview-bootstrap-state", preview, state_bucket, BOOTSTRAP_PROJECT, "*", write=False
    )
    roles["preview"] = preview
    pulumi.export("AWS_PREVIEW_ROLE_ARN", preview.arn)

    grants.append(
        aws.iam.RolePolicy(
            "drift-refresh",
            role=drift.id,
            policy=account.apply(lambda a: json.dumps(drift_document(a, state_bucket))),
        )
    )
    for deployer in DEPLOYERS:
        if deployer.drift_checked:
            grants += _state_grant(
                f"drift-{deployer.environment}-state",
                drift,
                state_bucket,
                PROJECT,
                deployer.stacks,
                write=False,
            )
    roles[DRIFT_ENVIRONMENT] = drift
    pulumi.export("AWS_DRIFT_ROLE_ARN", drift.arn)

    admin = _role(
        "bootstrap", BOOTSTRAP_ROLE_NAME, provider_arn, repository, f"environment:{BOOTSTRAP_ENVIRONMENT}"
    )
    grants.append(
        aws.iam.RolePolicy(
            "bootstrap-manage",
            role=admin.id,
            policy=account.apply(lambda a: json.dumps(bootstrap_document(a))),
        )
    )
    grants += _state_grant("bootstrap-state", admin, state_bucket, BOOTSTRAP_PROJECT, "*", write=True)
    roles[BOOTSTRAP_ENVIRONMENT] = admin
    pulumi.export("AWS_BOOTSTRAP_ROLE_ARN", admin.arn)
    pulumi.export("oidcProviderArn", provider_arn)
    pulumi.export("permissionsBoundaryArn", boundary.arn)
    for environment, key in secrets_keys.items():
        pulumi.export(f"secretsKeyArn{environment.capitalize()}", key.arn)
    return Bootstrap(provider_arn, boundary, roles, grants, secrets_keys, secrets_aliases)


def _secrets_key(
    deployer: Deployer, account: pulumi.Output[str], users: list[aws.iam.Role]
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """The KMS key of one deployer's Pulumi secrets, named by the alias its stack files use."""
    key = aws.kms.Key(
        f"secrets-{deployer.environment}",
        description=f"Pulumi secrets of the {deployer.stacks} stacks (bootstrap/deployers.py)",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=account.apply(lambda a: json.dumps(secrets_key_policy(deployer, a))),
        tags={SECRETS_KEY_TAG: "true"},
        opts=pulumi.ResourceOptions(depends_on=users),
    )
    alias = aws.kms.Alias(
        f"secrets-{deployer.environment}-alias", name=deployer.secrets_alias, target_key_id=key.key_id
    )
    return key, alias
