"""Issue 9: previews never get a passphrase or a key that decrypts prod.

There is no platform passphrase: each stack file names its secrets provider, the KMS key of its
deployer (bootstrap/deployers.py), and only the roles that key's policy names can decrypt it
(evaluated in tests/infra/test_preview_role.py). This checks the workflow side: what runs PR
code never previews prod and never sees a passphrase or a secret of prod.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from bootstrap import deployers
from infra.stacks import stack_names
from tests.workflows.conftest import REPO_ROOT, workflow_files

STACKS_SCRIPT = REPO_ROOT / ".github" / "scripts" / "stacks.py"
BOOTSTRAP_PASSPHRASE = "${{ secrets.PULUMI_BOOTSTRAP_PASSPHRASE }}"


def _script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(STACKS_SCRIPT), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.mark.parametrize("stack", stack_names())
def test_each_stack_file_names_its_deployers_secrets_key(stack: str) -> None:
    # Given a committed stack file
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    # Then its secrets provider is its deployer's KMS key (no passphrase), and the script says so
    expected = deployers.deployer_for(stack).secrets_provider
    assert document.get("secretsprovider") == expected, f"Pulumi.{stack}.yaml secretsprovider"
    assert _script("--secrets-provider", stack) == expected
    assert "encryptionsalt" not in document


def test_prod_has_a_key_of_its_own() -> None:
    # Given the deployers / Then no two share a key, and prod's is not one PRs preview
    aliases = [d.secrets_alias for d in deployers.DEPLOYERS]
    assert len(set(aliases)) == len(aliases)
    prod = deployers.deployer_for("prod")
    assert not prod.previewed_by_pull_requests
    assert prod.environment not in {e for d in deployers.DEPLOYERS for e in d.shared_with}


def test_pull_requests_preview_only_the_stacks_whose_secrets_they_may_read(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the PR preview workflow's stack list
    stacks_job = workflows["preview"]["jobs"]["stacks"]
    runs = "\n".join(str(s.get("run", "")) for s in stacks_job["steps"])
    assert "stacks.py --pull-request --github-output" in runs
    listed = json.loads(_script("--pull-request"))
    # Then it holds staging and never prod
    assert "staging" in listed
    assert "prod" not in listed
    assert all(deployers.deployer_for(s).previewed_by_pull_requests for s in listed)


def test_no_workflow_passes_a_platform_passphrase(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every workflow file's text / Then the old shared passphrase secret is gone
    for path in workflow_files():
        assert "secrets.PULUMI_CONFIG_PASSPHRASE" not in path.read_text(encoding="utf-8"), path.name
    # And a passphrase is set only for bootstrap/'s own stack, whose state holds no secret value
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            scopes = [workflow.get("env", {}), job.get("env", {})] + [s.get("env", {}) for s in job["steps"]]
            for env in scopes:
                if "PULUMI_CONFIG_PASSPHRASE" in env:
                    assert env["PULUMI_CONFIG_PASSPHRASE"] == BOOTSTRAP_PASSPHRASE, f"{name}.{job_id}"
                    assert job.get("env", {}).get("STACK") == "bootstrap", f"{name}.{job_id}"


def test_pr_code_never_names_a_prod_secret_or_role(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the jobs that run a pull request's code without a GitHub environment
    pr_jobs = [
        (name, job_id, job)
        for name, workflow in workflows.items()
        if "pull_request" in workflow["on"]
        for job_id, job in workflow["jobs"].items()
        if "environment" not in job
    ]
    assert pr_jobs
    for name, job_id, job in pr_jobs:
        text = yaml.safe_dump(job)
        # Then none assumes anything but the preview role, or names prod's role or a prod secret
        roles = set(re.findall(r"vars\.(AWS_\w+_ARN\w*)", text))
        assert roles <= {"AWS_PREVIEW_ROLE_ARN"}, f"{name}.{job_id}: {roles}"
        assert "PRODUCTION" not in text, f"{name}.{job_id}"
        assert not re.search(r"secrets\.\w*PROD", text), f"{name}.{job_id}"


def test_each_stack_is_created_with_its_secrets_provider(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every job that may create a stack (the first deploy of staging or prod, a PR stack)
    creating = [
        (name, job_id, "\n".join(str(s.get("run", "")) for s in job["steps"]))
        for name, workflow in workflows.items()
        for job_id, job in workflow["jobs"].items()
        if re.search(r"pulumi stack (init|select --create)", str(job))
    ]
    assert {(n, j) for n, j, _ in creating} == {
        ("deploy", "deploy"),  # the matrix job, once per stack (issue 13)
        ("ephemeral", "deploy-test-destroy"),
    }
    # Then each passes the stack's own secrets provider, from the one place it is defined
    for name, job_id, runs in creating:
        assert (
            '--secrets-provider "$(python3 .github/scripts/stacks.py --secrets-provider "$STACK")"' in runs
        ), f"{name}.{job_id}"


def test_drift_uses_the_drift_role_in_its_environment(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the nightly drift check
    jobs = workflows["drift"]["jobs"]
    job = jobs["drift"]
    # Then it runs in the `drift` environment (main only) as the drift role: the preview role is
    # trusted for pull_request only and cannot decrypt prod; deploy roles write
    assert job["environment"] == deployers.DRIFT_ENVIRONMENT
    (assume,) = [s for s in job["steps"] if "configure-aws-credentials" in str(s.get("uses", ""))]
    assert assume["with"]["role-to-assume"] == "${{ vars.AWS_DRIFT_ROLE_ARN }}"
    # And it checks exactly the drift-checked stacks
    assert "stacks.py --drift --github-output" in str(jobs["stacks"]["steps"])
    assert json.loads(_script("--drift")) == [
        s for s in stack_names() if deployers.deployer_for(s).drift_checked
    ]
