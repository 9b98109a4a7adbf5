"""actionlint and zizmor report nothing on `.github/workflows` (issue 6: checked in `make test`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.workflows.conftest import REPO_ROOT, WORKFLOWS_DIR, workflow_files


def _tool(name: str) -> str:
    # The dev extra installs both into the venv that runs pytest; PATH is the fallback.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not installed: `make test` installs it with the dev extra"
    return found


def test_actionlint_reports_nothing() -> None:
    # Given every workflow file
    files = [str(p.relative_to(REPO_ROOT)) for p in workflow_files()]
    assert files

    # When actionlint checks them (it also runs shellcheck on `run:` scripts when installed)
    result = subprocess.run(
        [_tool("actionlint"), "-no-color", "-format", "{{json .}}", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    # Then it finds no error
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_zizmor_reports_nothing_offline() -> None:
    # Given the workflows, and no GitHub token: the online audits are off by design
    env = {
        k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}
    }

    # When zizmor audits them with its default (regular) persona
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", str(WORKFLOWS_DIR)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )

    # Then there is no finding
    findings = json.loads(result.stdout or "[]")
    summary = [f"{f['ident']}: {f['desc']}" for f in findings]
    assert findings == [], summary
    assert result.returncode == 0, result.stderr
