"""The small scripts the workflows run: the CI gate, the stack list and the pr-* stack sweeper."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.stacks import EPHEMERAL_SOURCE, stack_names
from tests.workflows.conftest import REPO_ROOT, WORKFLOWS_DIR, load

SHA = "a" * 40


def _script(name: str) -> ModuleType:
    path = REPO_ROOT / ".github" / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while the class is created.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(number: int, status: str, conclusion: str | None, sha: str = SHA) -> dict[str, Any]:
    return {
        "head_sha": sha,
        "run_number": number,
        "run_attempt": 1,
        "status": status,
        "conclusion": conclusion,
        "html_url": f"https://example.invalid/runs/{number}",
    }


def test_ci_gate_passes_only_a_green_ci_run_of_the_same_commit() -> None:
    gate = _script("ci_gate")
    # Given CI's runs: green for another commit only / Then the gate keeps waiting
    assert not gate.verdict([_run(1, "completed", "success", sha="b" * 40)], SHA).done
    # Given a run of this commit still in progress / Then it waits
    assert not gate.verdict([_run(2, "in_progress", None)], SHA).done
    # Given it failed / Then the gate fails, naming the conclusion
    failed = gate.verdict([_run(2, "completed", "failure")], SHA)
    assert (failed.done, failed.ok) == (True, False)
    assert "failure" in failed.reason
    # Given a failed run re-run green (newer run number) / Then the newest decides
    ok = gate.verdict([_run(2, "completed", "failure"), _run(3, "completed", "success")], SHA)
    assert (ok.done, ok.ok) == (True, True)
    # Given a cancelled run / Then it is not a pass
    assert not gate.verdict([_run(4, "completed", "cancelled")], SHA).ok


def test_ci_gate_polls_until_done_and_gives_up_after_its_timeout() -> None:
    gate = _script("ci_gate")
    # Given CI that completes green on the third look
    answers = [[], [_run(1, "queued", None)], [_run(1, "completed", "success")]]
    slept: list[float] = []
    result = gate.wait(lambda: answers.pop(0), SHA, sleep=slept.append, timeout=600, poll=30)
    # Then the gate waited twice and passed
    assert result.ok
    assert slept == [30, 30]
    # Given CI that never starts / Then the gate fails once the timeout is spent, saying why
    never = gate.wait(lambda: [], SHA, sleep=lambda _: None, timeout=60, poll=30)
    assert (never.done, never.ok) == (True, False)
    assert "gave up after 60 s" in never.reason


def test_stack_list_is_the_committed_stack_files(tmp_path: Path) -> None:
    stacks = _script("stacks")
    # Given the repository / Then the list is one name per Pulumi.<stack>.yaml, nothing else
    expected = sorted(p.name.split(".")[1] for p in REPO_ROOT.glob("Pulumi.*.yaml"))
    assert stacks.stacks() == expected
    # Given a fork that adds a stack file / Then the list follows, without a workflow edit
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.eu-prod.yaml", "Pulumi.staging.yaml.bak"):
        (tmp_path / name).write_text("config: {}\n", encoding="utf-8")
    assert stacks.stacks(tmp_path) == ["eu-prod", "staging"]


def test_stack_list_prints_a_github_output_line(capsys: Any) -> None:
    stacks = _script("stacks")
    assert stacks.main(["--github-output"]) == 0
    key, value = capsys.readouterr().out.strip().split("=", 1)
    assert key == "list"
    assert json.loads(value) == stacks.stacks()


def test_a_pr_stack_copies_the_config_the_stack_script_names(capsys: Any) -> None:
    # Given the stack ephemeral.yml copies into a PR stack, as the stacks script prints it
    stacks = _script("stacks")
    assert stacks.main(["--ephemeral-source"]) == 0
    source = capsys.readouterr().out.strip()
    # Then it is infra/stacks.py's one answer, and a committed stack file
    assert source == EPHEMERAL_SOURCE
    assert (REPO_ROOT / f"Pulumi.{source}.yaml").is_file()
    # And ephemeral.yml creates the stack from that answer, naming no stack itself (a fork that
    # renames or drops the source stack changes infra/stacks.py only)
    steps = load(WORKFLOWS_DIR / "ephemeral.yml")["jobs"]["deploy-test-destroy"]["steps"]
    (init,) = [str(s["run"]) for s in steps if "pulumi stack init" in str(s.get("run", ""))]
    assert 'source="$(python3 .github/scripts/stacks.py --ephemeral-source)"' in init
    assert '--copy-config-from "$source"' in init
    assert not {re.escape(n) for n in stack_names() if re.search(rf"\b{re.escape(n)}\b", init)}


def test_sweeper_names_only_pr_stacks_of_closed_pull_requests(tmp_path: Path) -> None:
    sweep = _script("sweep_pr_stacks")
    # Given stacks on the backend: shared ones, an open PR's, closed PRs', look-alikes
    stacks = [
        {"name": "acme/rag-platform/staging"},
        {"name": "prod"},
        {"name": "acme/rag-platform/pr-12"},
        {"name": "pr-7"},
        {"name": "pr-31"},
        {"name": "pr-7-old"},
        {"name": "bootstrap"},
    ]
    open_prs = [{"number": 12}]
    # When the sweeper decides / Then only closed PRs' stacks go, by short name
    assert sweep.leaked(stacks, open_prs) == ["pr-31", "pr-7"]
    # And the CLI form reads the two JSON files the workflow writes
    (tmp_path / "s.json").write_text(json.dumps(stacks), encoding="utf-8")
    (tmp_path / "p.json").write_text(json.dumps(open_prs), encoding="utf-8")
    assert sweep.main([str(tmp_path / "s.json"), str(tmp_path / "p.json")]) == 0
