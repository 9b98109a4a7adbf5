"""FORKING.md, followed offline in a temporary copy of the repository (issue 13).

The blocks FORKING.md marks `<!-- forking-test -->` run in order in the copy: `make rename
NAME=acme-rag`, a `dev` stack in eu-west-1 written from staging's file, the deploy order. Then
the renamed fork is rehearsed for every stack (the in-process checks of `make rehearse`: the
program under mocks, deploy-, post-deploy- and preview-role coverage, the policy pack; IAM lint and checkov
need their own virtualenvs), and a representative part of the suite runs in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.stacks import ROOT
from service.contract import PROJECT

DOCUMENTED_NAME = "acme-rag"
# A fork that already took FORKING.md's example name renames once more, so the test still sees a rename.
NAME = DOCUMENTED_NAME if PROJECT != DOCUMENTED_NAME else f"{DOCUMENTED_NAME}-next"
MARK = "<!-- forking-test -->"
_BLOCK = re.compile(re.escape(MARK) + r"\s*```sh\n(.*?)```", re.S)
# Stack-file validation, naming, the program's roles and names under mocks (one stack run), the
# bootstrap program, the settings: what a rename or a new stack would break first.
SUBSET = [
    "tests/infra/test_config.py",
    "tests/infra/test_naming.py",
    "tests/infra/test_rename.py",
    "tests/infra/test_stacks.py::test_every_role_is_named_under_the_stack_prefix",
    "tests/workflows/test_bootstrap.py",
    "tests/workflows/test_secrets_providers.py",
    "tests/unit/test_settings.py",
]


def forking_blocks(markdown: str) -> list[str]:
    return _BLOCK.findall(markdown)


def _files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PY"] = sys.executable
    return env


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository after FORKING.md's marked steps."""
    root = tmp_path_factory.mktemp("fork")
    for name in _files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    # A fork is a git checkout (FORKING.md reviews the rename with `git diff`).
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fork"]):
        _run(["git", "-c", "user.name=fork", "-c", "user.email=fork@example.com", *git], root)
    # FORKING.md's commands call .venv/bin/python, which `make test` built: share this one.
    (root / ".venv").symlink_to(Path(sys.prefix))
    for block in forking_blocks((root / "FORKING.md").read_text()):
        _run(
            ["bash", "-euo", "pipefail", "-c", block.replace(f"NAME={DOCUMENTED_NAME}", f"NAME={NAME}")], root
        )
    return root


def test_forking_md_marks_the_steps_the_test_follows() -> None:
    blocks = forking_blocks((ROOT / "FORKING.md").read_text())
    assert any(f"make rename NAME={DOCUMENTED_NAME}" in b for b in blocks)
    assert any("Pulumi.dev.yaml" in b and "eu-west-1" in b for b in blocks)


def test_the_fork_is_renamed_and_has_a_dev_stack(fork: Path) -> None:
    # Then Pulumi.yaml holds the new name, no stack file keeps the old prefix, dev is in eu-west-1
    assert re.search(rf"(?m)^name: {re.escape(NAME)}$", (fork / "Pulumi.yaml").read_text())
    old = (ROOT / "Pulumi.yaml").read_text().split("name:", 1)[1].split()[0]
    for stack in ("dev", "staging", "prod"):
        assert f"{old}:" not in (fork / f"Pulumi.{stack}.yaml").read_text(), stack
    assert "aws:region: eu-west-1" in (fork / "Pulumi.dev.yaml").read_text()
    # And the deploy order puts the new stack first
    matrix = json.loads(_run([sys.executable, "-m", "infra.stacks", "deploy-matrix"], fork))
    assert [e["stack"] for e in matrix["include"]] == ["dev", "staging", "prod"]


REHEARSE = """
import json
from infra.stacks import stack_names
from infra.tools.rehearse import rehearse
from service.contract import PROJECT
out = {"project": PROJECT, "stacks": {}}
for stack in stack_names():
    verdicts = rehearse(stack, checkov=None, parliament=None)
    out["stacks"][stack] = {v.check: [v.ok, v.summary] for v in verdicts}
print(json.dumps(out))
"""
IN_PROCESS_CHECKS = {"program", "deploy-roles", "postdeploy-role", "preview-role", "policy-pack"}


def test_the_rehearsal_passes_for_every_stack_of_the_fork(fork: Path) -> None:
    # When the fork is rehearsed (in its own interpreter, so its Pulumi.yaml names the project)
    result = json.loads(_run([sys.executable, "-c", REHEARSE], fork).splitlines()[-1])
    # Then it runs as acme-rag, and every in-process check passes for all three stacks
    assert result["project"] == NAME
    assert set(result["stacks"]) == {"dev", "staging", "prod"}
    for stack, checks in result["stacks"].items():
        assert set(checks) >= IN_PROCESS_CHECKS, (stack, checks)
        failed = {c: summary for c, (ok, summary) in checks.items() if c in IN_PROCESS_CHECKS and not ok}
        assert failed == {}, stack


def test_a_representative_part_of_the_suite_passes_in_the_fork(fork: Path) -> None:
    # When the tests that a rename or a new stack would break first run in the fork
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUBSET], fork)
    # Then they pass there
    assert re.search(r"\d+ passed", out), out[-2000:]
