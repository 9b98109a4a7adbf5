"""`make security-scan`: checkov over both stacks' mocked plans and IAM lint over every policy
(infra/tools/iam_lint.py), failing on any unwaived finding.

Each stack is run under mocks, converted to Terraform plan JSON (`infra.tools.tfplan`)
and scanned by checkov from its own virtualenv (`.venv-checkov`, bootstrapped by make,
because checkov pins versions that conflict with the main environment). Waivers live
in `infra/checkov_waivers.yaml`, each with a reason.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from infra.stacks import stack_names
from infra.tools import iam_lint
from infra.tools.offline import ROOT, StackRun, committed_config, run_stack
from infra.tools.tfplan import to_plan
from service.contract import PROJECT

WAIVERS = ROOT / "infra" / "checkov_waivers.yaml"


def load_waivers(path: Path = WAIVERS) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(path.read_text()) or {}
    waivers: dict[str, dict[str, Any]] = {}
    for item in document.get("waivers", []):
        if not str(item.get("reason", "")).strip():
            raise ValueError(f"waiver {item.get('id')} has no reason")
        waivers[item["id"]] = item
    return waivers


def stack_tier(stack: str) -> str:
    """The tier `stack`'s config names: waivers name tiers, so a new stack gets its tier's. Read
    wherever that config is: a per-PR stack's is its source stack's, an overlaid stack's the
    overlay's (infra/tools/offline.py `stack_file`)."""
    return str(committed_config(stack).get(f"{PROJECT}:tier", ""))


def is_waived(check_id: str, address: str, tier: str, waivers: dict[str, dict[str, Any]]) -> bool:
    """Whether a waiver covers the check on `address` in a stack of `tier` (default: every tier)."""
    waiver = waivers.get(check_id)
    if waiver is None or tier not in waiver.get("tiers", [tier]):
        return False
    patterns = waiver.get("resources") or ["*"]
    return any(fnmatch.fnmatch(address, p) for p in patterns)


def write_plan(stack: str, out_dir: Path, run: StackRun | None = None) -> Path:
    run = run or run_stack(stack)
    plan = to_plan([asdict(r) for r in run.resources])
    path = out_dir / f"{stack}.tfplan.json"
    path.write_text(json.dumps(plan, indent=1, sort_keys=True, default=str))
    return path


def run_checkov(checkov: str, plan: Path) -> dict[str, Any]:
    result = subprocess.run(
        [checkov, "-f", str(plan), "--framework", "terraform_plan", "-o", "json", "--compact"],
        capture_output=True,
        text=True,
        check=False,
    )
    if not result.stdout.strip():
        raise RuntimeError(f"checkov produced no report:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    # One framework gives an object; several give a list.
    merged: dict[str, Any] = report[0] if isinstance(report, list) else report
    return merged


def summarise(
    stack: str, tier: str, report: dict[str, Any], waivers: dict[str, dict[str, Any]], *, quiet: bool = False
) -> tuple[int, list[str]]:
    results = report.get("results", {})
    passed = len(results.get("passed_checks", []))
    failures, waived = [], 0
    for check in results.get("failed_checks", []):
        if is_waived(check["check_id"], check["resource"], tier, waivers):
            waived += 1
        else:
            failures.append(f"  FAIL {check['check_id']} {check['resource']}: {check['check_name']}")
    if not quiet:
        print(f"{stack}: {passed} passed, {len(failures)} failed, {waived} waived")
    return len(failures), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkov", default=str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    parser.add_argument("--out", default=str(ROOT / "reports" / "checkov"))
    parser.add_argument("--parliament-python", default=str(iam_lint.PARLIAMENT_PYTHON))
    parser.add_argument("--stacks", nargs="+", default=list(stack_names()), help="default: every stack file")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    waivers = load_waivers()
    total = 0
    docs = iam_lint.bootstrap_policies()
    for stack in args.stacks:
        run = run_stack(stack)
        docs += iam_lint.program_policies(run)
        report = run_checkov(args.checkov, write_plan(stack, out_dir, run))
        (out_dir / f"{stack}.checkov.json").write_text(json.dumps(report, indent=1))
        count, lines = summarise(stack, stack_tier(stack), report, waivers)
        total += count
        if lines:
            print("\n".join(lines))
    # IAM lint over every policy of both stacks and of bootstrap/ (issue 9).
    linted = iam_lint.lint(docs, Path(args.parliament_python))
    open_count = len(linted.findings)
    print(f"iam-lint: {linted.policies} policies, {open_count} unwaived findings, {linted.waived} waived")
    for finding in linted.findings:
        print(f"  FAIL {finding}")
    total += len(linted.findings)
    print(f"security-scan: {'FAILED' if total else 'OK'} ({total} unwaived failures)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
