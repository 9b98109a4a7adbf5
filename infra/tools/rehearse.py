"""`make rehearse STACK=...`: the offline deploy rehearsal, one verdict per check and per stack.

No credentials, no cloud, no Pulumi CLI. For each stack:
  program         the Pulumi program under mocks with the committed `Pulumi.<stack>.yaml`
  deploy-roles    every request the stack's `pulumi up` makes, evaluated against its deploy
                  role's real policy (bootstrap/policies.py) - infra/policy/coverage.py
  preview-role    every metadata read of a `pulumi preview --refresh`, against the preview role
  postdeploy-role every request of the post-deploy suite deploy.yml runs after `pulumi up`
                  (smoke with the reader-key checks, the seeded gate), against the same deploy
                  role, KMS use and resource policies included - infra/policy/suite_coverage.py
  policy-pack     every mandatory CrossGuard rule over the mocked resources
  iam-lint        cloudsplaining + parliament over the stack's and bootstrap's policies
  checkov         checkov over the stack's plan (the `make security-scan` machinery)
  operator-secrets  every secret a function reads by name (an external search cluster's
                  credentials, an OpenAI-compatible endpoint's key) is one its role may read and
                  one the deploy role may describe; `make preflight` then checks it holds a value
Exits non-zero naming each failed check; a check's details follow its verdict line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.stacks import stack_names
from infra.tools.offline import StackRun, overlaid, stack_file

DETAIL_LINES = 12


@dataclass(frozen=True)
class Verdict:
    check: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"  {'PASS' if self.ok else 'FAIL'} {self.check}: {self.summary}"
        shown = [f"      {d}" for d in self.details[:DETAIL_LINES]]
        if len(self.details) > DETAIL_LINES:
            shown.append(f"      ... and {len(self.details) - DETAIL_LINES} more")
        return [head, *shown]


def _region(run: StackRun) -> str:
    from infra.tools.offline import config_map

    return config_map(run.stack)[0].get("aws:region", "us-east-1")


def _role_verdict(check: str, role: str, gaps: list[Any], total: int, what: str) -> Verdict:
    if gaps:
        return Verdict(check, False, f"{role} is refused {len(gaps)} requests{what}", [str(g) for g in gaps])
    return Verdict(check, True, f"{role} may make all {total} requests{what}")


def check_deploy_roles(run: StackRun) -> Verdict:
    from infra.policy import coverage

    deployer = coverage.deployer_for(run.stack)
    region = _region(run)
    gaps = coverage.gaps(run, coverage.deploy_principal(deployer), region)
    total = len(coverage.requests_for(run, region))
    return _role_verdict("deploy-roles", deployer.role_name, gaps, total, "")


def check_postdeploy_role(run: StackRun) -> Verdict:
    from infra.policy import coverage, suite_coverage

    deployer = coverage.deployer_for(run.stack)
    region = _region(run)
    gaps = suite_coverage.suite_gaps(run, coverage.deploy_principal(deployer), region)
    # Counted only when every resource was found (a missing one is among the gaps).
    total = 0 if gaps else len(suite_coverage.suite_requests(run, region))
    what = " of the post-deploy suite (reader-key checks included)"
    return _role_verdict("postdeploy-role", deployer.role_name, gaps, total, what)


def check_preview_role(run: StackRun) -> Verdict:
    from infra.policy import coverage

    gaps = coverage.preview_gaps(run, coverage.preview_principal(), _region(run))
    if gaps:
        return Verdict("preview-role", False, f"refused {len(gaps)} metadata reads", [str(g) for g in gaps])
    return Verdict("preview-role", True, "may read every resource's metadata, and no data")


def _role_documents(run: StackRun, role_arn: str) -> list[dict[str, object]]:
    import json

    role = next(r for r in run.of_type("aws:iam/role:Role") if r.state.get("arn") == role_arn)
    return [
        json.loads(p.inputs["policy"])
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs.get("role") in (role.state.get("id"), role.state.get("name"))
    ]


def check_operator_secrets(run: StackRun) -> Verdict:
    """Each `*_SECRET_ID` a function reads: its role may get the value, the deploy role describe it."""
    from infra.policy import coverage
    from infra.policy.evaluator import Principal, Request, allowed
    from infra.tools.offline import ACCOUNT_ID
    from infra.tools.preflight import OPERATOR_SECRET_VARIABLES, iam_requests

    region = _region(run)
    deployer = coverage.deploy_principal(coverage.deployer_for(run.stack))
    problems: list[str] = []
    names: set[str] = set()
    for function in run.of_type("aws:lambda/function:Function"):
        variables = (function.inputs.get("environment") or {}).get("variables") or {}
        for variable in OPERATOR_SECRET_VARIABLES:
            name = variables.get(variable)
            if not name:
                continue
            names.add(name)
            # Secrets Manager appends six random characters to the name in the ARN.
            arn = f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{name}-AbCdEf"
            role = Principal(function.inputs["role"], _role_documents(run, function.inputs["role"]))
            if not allowed(role, Request("secretsmanager:GetSecretValue", arn)):
                problems.append(f"{function.name}: {variable}={name} but its role may not read {arn}")
    for action, resource in iam_requests(ACCOUNT_ID, tuple(sorted(names)), region):
        if action.startswith("secretsmanager:") and not allowed(deployer, Request(action, resource)):
            problems.append(f"the deploy role may not {action} {resource} (make preflight checks it)")
    if problems:
        return Verdict("operator-secrets", False, f"{len(problems)} unreadable secrets", problems)
    if not names:
        return Verdict("operator-secrets", True, "the stack reads no operator secret")
    listed = ", ".join(sorted(names))
    return Verdict(
        "operator-secrets",
        True,
        f"{listed}: readable by their functions; create them before the first deploy "
        "(`make preflight` fails until each holds a value)",
    )


def check_policy_pack(run: StackRun) -> Verdict:
    from infra.policy import offline as pack
    from infra.policy import rules

    found = pack.violations(run)
    summary = f"{len(rules.policies())} mandatory rules over {len(run.resources)} resources"
    return Verdict("policy-pack", not found, f"{summary}, {len(found)} violations", found)


def check_iam_lint(run: StackRun, parliament: Path | None) -> Verdict:
    from infra.tools import iam_lint

    result = iam_lint.lint(iam_lint.program_policies(run) + iam_lint.bootstrap_policies(), parliament)
    summary = f"{result.policies} policies, {len(result.findings)} unwaived findings ({result.waived} waived)"
    return Verdict("iam-lint", not result.findings, summary, [str(f) for f in result.findings])


def check_checkov(run: StackRun, checkov: Path) -> Verdict:
    from infra.tools import security_scan

    with tempfile.TemporaryDirectory() as out:
        report = security_scan.run_checkov(str(checkov), security_scan.write_plan(run.stack, Path(out), run))
    tier = security_scan.stack_tier(run.stack)
    count, lines = security_scan.summarise(run.stack, tier, report, security_scan.load_waivers(), quiet=True)
    passed = len(report.get("results", {}).get("passed_checks", []))
    return Verdict(
        "checkov", count == 0, f"{passed} passed, {count} unwaived failures", [x.strip() for x in lines]
    )


def _guard(check: str, fn: Callable[[], Verdict]) -> Verdict:
    try:
        return fn()
    except Exception as error:
        return Verdict(
            check, False, f"{type(error).__name__}: {error}", traceback.format_exc().splitlines()[-6:]
        )


def rehearse(stack: str, *, checkov: Path | None, parliament: Path | None) -> list[Verdict]:
    from infra.tools.offline import run_stack

    runs: list[StackRun] = []

    def program() -> Verdict:
        runs.append(run_stack(stack))
        return Verdict(
            "program", True, f"{len(runs[0].resources)} resources under mocks from {stack_file(stack).name}"
        )

    verdicts = [_guard("program", program)]
    if not runs:
        return verdicts
    run = runs[0]
    verdicts += [
        _guard("deploy-roles", lambda: check_deploy_roles(run)),
        _guard("postdeploy-role", lambda: check_postdeploy_role(run)),
        _guard("preview-role", lambda: check_preview_role(run)),
        _guard("policy-pack", lambda: check_policy_pack(run)),
        _guard("iam-lint", lambda: check_iam_lint(run, parliament)),
        _guard("operator-secrets", lambda: check_operator_secrets(run)),
    ]
    if checkov is not None:
        verdicts.append(_guard("checkov", lambda: check_checkov(run, checkov)))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    from infra.tools.iam_lint import PARLIAMENT_PYTHON
    from infra.tools.offline import ROOT

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stack", action="append", help="repeatable; `all` or none: every stack file (infra/stacks.py)"
    )
    parser.add_argument("--checkov", default=str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    parser.add_argument("--parliament-python", default=str(PARLIAMENT_PYTHON))
    parser.add_argument(
        "--overlay",
        type=Path,
        help="a docs/examples/ snippet whose config keys replace the staging file's (issue 13)",
    )
    args = parser.parse_args(argv)
    failed_stacks = []
    stacks = [s for s in args.stack or [] if s != "all"] or list(stack_names())
    for stack in stacks:
        with overlaid(stack, args.overlay) if args.overlay else nullcontext():
            verdicts = rehearse(stack, checkov=Path(args.checkov), parliament=Path(args.parliament_python))
        failed = [v.check for v in verdicts if not v.ok]
        print(f"rehearse {stack}" + (f" with the keys of {args.overlay}" if args.overlay else ""))
        for verdict in verdicts:
            print("\n".join(verdict.lines()))
        print(f"rehearse {stack}: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}")
        if failed:
            failed_stacks.append(stack)
    return 1 if failed_stacks else 0


if __name__ == "__main__":
    sys.exit(main())
