"""The bootstrap program under Pulumi mocks: who may assume which role.

Runs `bootstrap.program.build()` against an in-memory engine (Pulumi's unit-testing mocks,
https://www.pulumi.com/docs/using-pulumi/testing/unit/), no AWS and no Pulumi CLI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from bootstrap.policies import DEPLOYERS
from infra.stacks import EPHEMERAL_ENVIRONMENT, deploy_matrix, role_variable
from service.contract import PROJECT
from tests.workflows.conftest import workflow_files

# `pulumi.runtime.test` is untyped; this alias gives mypy --strict its signature.
_pulumi_test: Callable[[Callable[..., Any]], Callable[..., Any]] = pulumi.runtime.test
PROJECT_NAME = f"{PROJECT}-bootstrap"
REPOSITORY = "acme/rag-platform"
ACCOUNT = "123456789012"


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        kind = args.typ.split(":")[-1]
        state = {**args.inputs, "arn": f"arn:aws:iam::{ACCOUNT}:{kind}/{args.name}"}
        self.resources[args.name] = {"type": args.typ, **state}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/admin", "userId": "admin"}, []
        return {}, []


@pytest.fixture
def mocks() -> _Mocks:
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT_NAME, stack="test", preview=False)
    pulumi.runtime.set_all_config({f"{PROJECT_NAME}:githubRepository": REPOSITORY})
    return mocks


def _build() -> Any:
    from bootstrap import program

    return program.build()


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _after(outputs: list[pulumi.Output[Any]], check: Any) -> pulumi.Output[Any]:
    # Checks run once every awaited output resolved, i.e. after the mocks saw the resources.
    return pulumi.Output.all(*outputs).apply(check)


@_pulumi_test
def test_each_role_trusts_exactly_one_subject_of_this_repository(mocks: _Mocks) -> Any:
    # Given the bootstrap program for acme/rag-platform
    bootstrap = _build()
    names = list(bootstrap.roles)

    def check(docs: list[str]) -> None:
        policies = {name: json.loads(doc) for name, doc in zip(names, docs, strict=True)}
        # Then there is one role per stack file's GitHub environment (prod's is `production`) and
        # the PR stacks', plus the PR-preview role (and the bootstrap workflow's own role, behind
        # the `bootstrap` environment, and the nightly drift check's, behind `drift`)
        environments = {d.environment for d in DEPLOYERS}
        assert {"staging", "production", "ephemeral"} <= environments
        assert set(policies) == environments | {"preview", "bootstrap", "drift"}
        expected_sub = {
            env: f"repo:{REPOSITORY}:environment:{env}" for env in environments | {"bootstrap", "drift"}
        }
        expected_sub["preview"] = f"repo:{REPOSITORY}:pull_request"
        provider_arn = f"arn:aws:iam::{ACCOUNT}:OpenIdConnectProvider/github-actions"
        for name, policy in policies.items():
            (statement,) = policy["Statement"]
            # And each is assumed only by web identity through GitHub's provider
            assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
            assert statement["Principal"] == {"Federated": provider_arn}
            # And only with an exact (never wildcard) audience and subject
            assert set(statement["Condition"]) == {"StringEquals"}, name
            assert statement["Condition"]["StringEquals"] == {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": expected_sub[name],
            }
        provider = mocks.resources["github-actions"]
        assert provider["url"] == "https://token.actions.githubusercontent.com"
        assert provider["clientIdLists"] == ["sts.amazonaws.com"]

    return _after([r.assume_role_policy for r in bootstrap.roles.values()], check)


@_pulumi_test
def test_bootstrap_creates_the_boundary_and_scoped_inline_policies_only(mocks: _Mocks) -> Any:
    # Given the bootstrap program
    bootstrap = _build()

    def check(_: Any) -> None:
        from bootstrap import policies

        kind = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
        # Then no managed policy is attached to any role: no PowerUserAccess, no ReadOnlyAccess
        assert [k for k, v in mocks.resources.items() if v["type"] == kind] == []
        inline = {
            k: json.loads(v["policy"]) for k, v in mocks.resources.items() if v["type"].endswith("RolePolicy")
        }
        # And each role holds exactly the document bootstrap/policies.py computes for it
        # (the preview role may decrypt only the secrets keys of the stacks PRs preview)
        previewed = [
            mocks.resources[f"secrets-{d.environment}"]["arn"]
            for d in policies.DEPLOYERS
            if d.previewed_by_pull_requests
        ]
        assert previewed
        assert inline["preview-metadata"] == policies.preview_document(None, previewed)
        assert inline["drift-refresh"] == policies.drift_document(ACCOUNT)
        assert inline["bootstrap-manage"] == policies.bootstrap_document(ACCOUNT)
        for deployer in policies.DEPLOYERS:
            assert inline[f"deploy-{deployer.environment}-scoped"] == policies.deploy_document(
                deployer, ACCOUNT
            )
        # And each deployer's stacks have their own secrets key, under the alias their stack files
        # name, whose key policy is the one bootstrap/policies.py computes
        keys = {k: v for k, v in mocks.resources.items() if v["type"] == "aws:kms/key:Key"}
        aliases = {v["name"] for v in mocks.resources.values() if v["type"] == "aws:kms/alias:Alias"}
        assert len(keys) == len(aliases) == len(policies.DEPLOYERS)
        assert aliases == {d.secrets_alias for d in policies.DEPLOYERS}
        for deployer in policies.DEPLOYERS:
            key = keys[f"secrets-{deployer.environment}"]
            assert json.loads(key["policy"]) == policies.secrets_key_policy(deployer, ACCOUNT)
            assert key["tags"] == {policies.SECRETS_KEY_TAG: "true"}
            assert key["enableKeyRotation"] is True
        # And the boundary is the managed policy every program role names
        boundary = mocks.resources["permissions-boundary"]
        assert boundary["name"] == f"{PROJECT}-permissions-boundary"
        assert json.loads(boundary["policy"]) == policies.boundary_document(ACCOUNT)

    # (the aliases too: nothing else waits for them, and a check that ran before the last alias was
    # registered counted one alias short, as CI once did)
    aliases = [a.urn for a in bootstrap.secrets_aliases.values()]
    return _after([g.urn for g in bootstrap.grants] + [bootstrap.boundary.urn, *aliases], check)


@_pulumi_test
def test_a_state_bucket_adds_one_scoped_state_policy_per_role(mocks: _Mocks) -> Any:
    # Given a DIY S3 backend named in the bootstrap config
    pulumi.runtime.set_all_config(
        {f"{PROJECT_NAME}:githubRepository": REPOSITORY, f"{PROJECT_NAME}:stateBucket": "acme-state"}
    )
    bootstrap = _build()

    def check(_: Any) -> None:
        from bootstrap import policies

        state = {k: json.loads(v["policy"]) for k, v in mocks.resources.items() if k.endswith("-state")}
        # Then every role gets its own stacks' state: deploy roles write, the preview role reads
        assert set(state) == (
            {f"deploy-{d.environment}-state" for d in DEPLOYERS}
            | {f"preview-{d.environment}-state" for d in DEPLOYERS if d.previewed_by_pull_requests}
            | {f"drift-{d.environment}-state" for d in DEPLOYERS if d.drift_checked}
            | {"preview-bootstrap-state", "bootstrap-state"}
        )
        assert state["deploy-production-state"] == policies.state_document(
            "acme-state", PROJECT, "prod", write=True
        )
        # And the preview role reads the state of the stacks PRs preview, never prod's
        assert state["preview-staging-state"] == policies.state_document(
            "acme-state", PROJECT, "staging", write=False
        )
        assert not [k for k in state if k.startswith("preview-") and "prod" in k]

    return _after([g.urn for g in bootstrap.grants], check)


def test_a_malformed_repository_is_refused() -> None:
    # Given a repository with a wildcard in it / Then no trust policy is produced for it
    from bootstrap import program

    with pytest.raises(ValueError, match="owner/name"):
        program.trust_policy("arn:aws:iam::1:oidc-provider/x", "acme/*", "environment:production")


def test_exported_role_arns_are_the_variables_the_workflows_read() -> None:
    # Given the variable names the workflows pass to role-to-assume, and those the deploy matrix
    # names per stack (`vars[matrix.role_variable]`)
    used = {
        m.group(1)
        for path in workflow_files()
        for m in re.finditer(r"role-to-assume: \$\{\{ vars\.(\w+) \}\}", path.read_text(encoding="utf-8"))
    }
    used |= {entry["role_variable"] for entry in deploy_matrix()["include"]}
    used.add(role_variable(EPHEMERAL_ENVIRONMENT))
    # Then the bootstrap exports exactly those, so its outputs can be pasted into GitHub settings
    assert used == _exported_role_variables()


BOOTSTRAP_ROLE_VARIABLE = "AWS_BOOTSTRAP_ROLE_ARN"


def _exported_role_variables() -> set[str]:
    source = (Path(__file__).resolve().parents[2] / "bootstrap" / "program.py").read_text(encoding="utf-8")
    exported = set(re.findall(r'pulumi\.export\("(AWS_\w+)"', source))
    # one per deploy role (`pulumi.export(role_variable(environment), ...)`)
    exported |= {role_variable(d.environment) for d in DEPLOYERS}
    return exported


def test_the_bootstrap_workflow_role_is_created_by_the_bootstrap_program() -> None:
    used = {
        m.group(1)
        for path in workflow_files()
        for m in re.finditer(r"role-to-assume: \$\{\{ vars\.(\w+) \}\}", path.read_text(encoding="utf-8"))
    }
    assert BOOTSTRAP_ROLE_VARIABLE in used
    assert BOOTSTRAP_ROLE_VARIABLE in _exported_role_variables()


@_pulumi_test
def test_each_secrets_key_is_created_after_every_role_its_policy_names(mocks: _Mocks) -> Any:
    # Given the bootstrap program (KMS refuses a key policy whose principals do not exist yet)
    bootstrap = _build()

    def check(_: list[str]) -> None:
        order = list(mocks.resources)
        role_at = {
            f"arn:aws:iam::{ACCOUNT}:role/{r['name']}": order.index(n)
            for n, r in mocks.resources.items()
            if r["type"] == "aws:iam/role:Role"
        }
        keys = [(n, r) for n, r in mocks.resources.items() if r["type"] == "aws:kms/key:Key"]
        assert keys
        for name, key in keys:
            named = {
                arn
                for statement in json.loads(key["policy"])["Statement"]
                for arn in _as_list(statement.get("Principal", {}).get("AWS", []))
                if ":role/" in arn
            }
            # Then every role the key's policy names was registered before the key
            assert named, name
            assert all(role_at[arn] < order.index(name) for arn in named), name

    return _after([k.arn for k in bootstrap.secrets_keys.values()], check)
