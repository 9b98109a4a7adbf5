"""GitHub Actions OIDC provider and one IAM role per GitHub environment.

A workflow job gets an OIDC token whose `sub` claim names the repository and, for a job
bound to a GitHub environment, that environment: `repo:OWNER/NAME:environment:production`
(https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#example-subject-claims).
Each role trusts exactly one such subject and the `sts.amazonaws.com` audience
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html),
so only the `production` environment's jobs - which wait for its required reviewers -
can become the prod deploy role. No long-lived AWS key exists anywhere.

Config (`pulumi config set ...` in bootstrap/):
  githubRepository        owner/name (required)
  existingProviderArn     reuse an account's existing GitHub OIDC provider (one per account)
  deployPolicyArns        JSON list of managed policies for the deploy roles
                          (default: PowerUserAccess plus the IAM statement below)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from service.contract import PROJECT

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# GitHub environment -> role-name suffix. The workflow variable holding each role's ARN is
# named in the stack outputs so the GitHub settings can be copied from `pulumi stack output`.
ENVIRONMENTS = {"staging": "staging", "production": "production", "ephemeral": "ephemeral"}
# PR previews run without an environment; their subject is the pull_request event.
PREVIEW_SUBJECT = "pull_request"
READ_ONLY_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
POWER_USER_POLICY = "arn:aws:iam::aws:policy/PowerUserAccess"
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


def iam_for_project_roles() -> dict[str, Any]:
    """PowerUserAccess excludes IAM; the stack creates its Lambdas' roles, all named `rag-platform-*`."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:*Role*", "iam:*RolePolicy*", "iam:PassRole", "iam:*InstanceProfile*"],
                "Resource": [
                    f"arn:aws:iam::*:role/{PROJECT}-*",
                    f"arn:aws:iam::*:instance-profile/{PROJECT}-*",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["iam:CreateServiceLinkedRole"],
                "Resource": "arn:aws:iam::*:role/aws-service-role/*",
            },
        ],
    }


@dataclass
class Bootstrap:
    provider_arn: pulumi.Output[str]
    roles: dict[str, aws.iam.Role]
    grants: list[aws.iam.RolePolicyAttachment | aws.iam.RolePolicy]


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


def _role(name: str, provider_arn: pulumi.Output[str], repository: str, claim: str) -> aws.iam.Role:
    return aws.iam.Role(
        name,
        name=f"{PROJECT}-github-{name}",
        description=f"Assumed by GitHub Actions ({subject(repository, claim)})",
        assume_role_policy=provider_arn.apply(lambda arn: json.dumps(trust_policy(arn, repository, claim))),
        max_session_duration=3600,
    )


def build() -> Bootstrap:
    config = pulumi.Config()
    repository = config.require("githubRepository")
    provider_arn = _provider(config)
    deploy_policies = config.get_object("deployPolicyArns") or [POWER_USER_POLICY]

    roles: dict[str, aws.iam.Role] = {}
    grants: list[aws.iam.RolePolicyAttachment | aws.iam.RolePolicy] = []
    for environment, suffix in ENVIRONMENTS.items():
        role = _role(f"deploy-{suffix}", provider_arn, repository, f"environment:{environment}")
        for i, policy in enumerate(deploy_policies):
            aws.iam.RolePolicyAttachment(f"deploy-{suffix}-{i}", role=role.name, policy_arn=str(policy))
        aws.iam.RolePolicy(f"deploy-{suffix}-iam", role=role.id, policy=json.dumps(iam_for_project_roles()))
        roles[environment] = role
        pulumi.export(f"AWS_DEPLOY_ROLE_ARN_{environment.upper()}", role.arn)

    preview = _role("preview", provider_arn, repository, PREVIEW_SUBJECT)
    grants.append(
        aws.iam.RolePolicyAttachment("preview-read-only", role=preview.name, policy_arn=READ_ONLY_POLICY)
    )
    roles["preview"] = preview
    pulumi.export("AWS_PREVIEW_ROLE_ARN", preview.arn)
    pulumi.export("oidcProviderArn", provider_arn)
    return Bootstrap(provider_arn, roles, grants)
