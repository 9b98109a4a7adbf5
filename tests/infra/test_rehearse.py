"""`make rehearse`: one verdict per check, and reverting a fix makes it fail naming the cause."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap import policies
from infra.tools import iam_lint, rehearse
from infra.tools.offline import StackRun
from service.contract import PROJECT
from tests.infra.conftest import pr_stacks_fit


def _strip_boundary(run: StackRun, role: str) -> StackRun:
    def strip(record: Any) -> Any:
        if record.type == "aws:iam/role:Role" and record.name == role:
            return replace(
                record, inputs={k: v for k, v in record.inputs.items() if k != "permissionsBoundary"}
            )
        return record

    return replace(run, resources=[strip(r) for r in run.resources])


def _rehearse_with(monkeypatch: pytest.MonkeyPatch, run: StackRun) -> list[rehearse.Verdict]:
    monkeypatch.setattr("infra.tools.offline.run_stack", lambda stack, overrides=None: run)
    return rehearse.rehearse(run.stack, checkov=None, parliament=None)


def test_removing_the_boundary_from_one_role_fails_rehearse_naming_it(
    staging: StackRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given staging with the boundary removed from the API role (the fix reverted)
    verdicts = _rehearse_with(monkeypatch, _strip_boundary(staging, "api-role"))
    failed = {v.check: v for v in verdicts if not v.ok}
    # Then the policy pack names the rule and the role, and the deploy role is refused creating it
    assert "policy-pack" in failed
    assert any(
        "permissions-boundary-on-every-role: role api-role" in d for d in failed["policy-pack"].details
    )
    assert "deploy-roles" in failed
    assert any(
        d.startswith("aws:iam/role:Role api-role: refused iam:CreateRole")
        for d in failed["deploy-roles"].details
    )


def test_removing_a_needed_action_from_the_deploy_role_fails_rehearse_naming_it(
    staging: StackRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the staging deploy role without DynamoDB rights on its named resources
    original = policies.deploy_document

    def without_dynamodb(deployer: policies.Deployer, account: str) -> policies.Document:
        document = original(deployer, account)
        for statement in document["Statement"]:
            if statement["Sid"] == "OwnNamedResources":
                statement["Action"] = [a for a in statement["Action"] if a != "dynamodb:*"]
        return document

    monkeypatch.setattr("infra.policy.coverage.deploy_document", without_dynamodb)
    verdicts = _rehearse_with(monkeypatch, staging)
    coverage = next(v for v in verdicts if v.check == "deploy-roles")
    # Then the coverage verdict fails and names the table and the action
    assert not coverage.ok
    assert any(
        "aws:dynamodb/table:Table ledger-table: refused dynamodb:CreateTable" in d for d in coverage.details
    )


def test_a_program_that_cannot_run_fails_first_and_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stack whose program raises (e.g. a missing config key)
    def broken(stack: str, overrides: Any = None) -> StackRun:
        raise ValueError(f"{PROJECT}:apiKeys is required")

    monkeypatch.setattr("infra.tools.offline.run_stack", broken)
    verdicts = rehearse.rehearse("staging", checkov=None, parliament=None)
    # Then rehearse reports the program as failed with the key, and runs nothing on a stack it does not have
    assert [(v.check, v.ok) for v in verdicts] == [("program", False)]
    assert f"{PROJECT}:apiKeys" in verdicts[0].summary


def test_main_prints_one_verdict_per_check_and_exits_non_zero_naming_them(
    staging: StackRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given staging with a role stripped of its boundary, and no checkov/parliament to run
    monkeypatch.setattr(
        "infra.tools.offline.run_stack", lambda stack, overrides=None: _strip_boundary(staging, "api-role")
    )
    monkeypatch.setattr(
        rehearse, "check_checkov", lambda run, checkov: rehearse.Verdict("checkov", True, "stubbed")
    )
    monkeypatch.setattr(iam_lint, "parliament_findings", lambda docs, python: [])
    # When rehearse runs, Then it exits 1 and its last line names the failed checks
    assert rehearse.main(["--stack", "staging"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "rehearse staging: FAIL (deploy-roles, policy-pack)"
    assert [
        line.split()[1].rstrip(":") for line in out if line.startswith("  PASS") or line.startswith("  FAIL")
    ] == [
        "program",
        "deploy-roles",
        "postdeploy-role",
        "preview-role",
        "policy-pack",
        "iam-lint",
        "operator-secrets",
        "checkov",
    ]


def test_iam_lint_flags_an_escalating_policy() -> None:
    # Given a role policy that may pass any role and write any policy
    evil = iam_lint.PolicyDoc(
        "staging:aws:iam/rolePolicy:RolePolicy:evil:policy",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iam:PassRole", "iam:PutRolePolicy", "lambda:CreateFunction"],
                    "Resource": "*",
                }
            ],
        },
        False,
    )
    result = iam_lint.lint([evil], None)
    # Then cloudsplaining reports privilege escalation, which no waiver covers
    assert any(f.issue == "PrivilegeEscalation" for f in result.findings)


def test_every_iam_lint_waiver_has_a_reason() -> None:
    assert all(str(w["reason"]).strip() for w in iam_lint.load_waivers())


def test_program_and_bootstrap_policies_lint_clean(staging: StackRun, prod: StackRun) -> None:
    # Given every policy of both stacks and of bootstrap/, Then no finding is left unwaived
    docs = (
        iam_lint.bootstrap_policies() + iam_lint.program_policies(staging) + iam_lint.program_policies(prod)
    )
    parliament = iam_lint.PARLIAMENT_PYTHON if iam_lint.PARLIAMENT_PYTHON.exists() else None
    result = iam_lint.lint(docs, parliament)
    assert [str(f) for f in result.findings] == []


@pytest.mark.skipif(
    not iam_lint.PARLIAMENT_PYTHON.exists() or shutil.which("python3") is None,
    reason="parliament lives in .venv-iamlint, which `make security-scan` / `make rehearse` bootstrap",
)
def test_parliament_reports_a_malformed_action() -> None:
    doc = iam_lint.PolicyDoc(
        "x",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "*"}],
        },
        False,
    )
    assert any(f.issue == "UNKNOWN_ACTION" for f in iam_lint.parliament_findings([doc]))


# A checkov stand-in: the report a real run gives a non-HA stack (no PITR, no dedicated masters).
_NON_HA_REPORT = {
    "results": {
        "passed_checks": [],
        "failed_checks": [
            {"check_id": check, "resource": resource, "check_name": check}
            for check, resource in [
                ("CKV_AWS_28", "aws_dynamodb_table.ledger_table"),
                ("CKV_AWS_318", "aws_opensearch_domain.search_domain"),
            ]
        ],
    }
}


@pr_stacks_fit
def test_a_pr_stack_gets_its_source_stacks_checkov_waivers(
    pr_stack: StackRun, prod: StackRun, tmp_path: Path
) -> None:
    # Given checkov reporting the findings waived for the dev and staging tiers only
    checkov = tmp_path / "checkov"
    checkov.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(_NON_HA_REPORT)}\nEOF\n")
    checkov.chmod(0o755)
    # When a PR stack (staging's config under its own name) is rehearsed
    verdict = rehearse.check_checkov(pr_stack, checkov)
    # Then its tier is the one its config names, whose waivers cover them
    assert verdict.ok, verdict.details
    # And in prod, whose tier has no such waiver, the same findings fail
    assert not rehearse.check_checkov(prod, checkov).ok
