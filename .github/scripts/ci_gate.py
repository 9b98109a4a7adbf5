"""Deploy only a commit CI passed: wait for the `ci` workflow's run on this SHA, fail unless green.

`deploy.yml` runs on the same push as `ci.yml`; its first job calls this script, which polls the
Actions API (`GET /repos/{repo}/actions/workflows/{file}/runs?head_sha=...`,
https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow) until
that run completes. Environment: GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_TOKEN (actions: read).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CI_WORKFLOW = "ci.yml"
POLL_SECONDS = 30
TIMEOUT_SECONDS = 75 * 60


@dataclass(frozen=True)
class Verdict:
    done: bool
    ok: bool
    reason: str


def verdict(runs: list[dict[str, Any]], sha: str) -> Verdict:
    """The newest CI run of `sha` decides; a run still going (or not yet started) means wait."""
    mine = [r for r in runs if r.get("head_sha") == sha]
    if not mine:
        return Verdict(False, False, f"no {CI_WORKFLOW} run for {sha} yet")
    newest = max(mine, key=lambda r: (r.get("run_number", 0), r.get("run_attempt", 0)))
    url = newest.get("html_url", "")
    if newest.get("status") != "completed":
        return Verdict(False, False, f"{CI_WORKFLOW} run {url} is {newest.get('status')}")
    if newest.get("conclusion") == "success":
        return Verdict(True, True, f"{CI_WORKFLOW} passed for {sha}: {url}")
    return Verdict(True, False, f"{CI_WORKFLOW} concluded {newest.get('conclusion')} for {sha}: {url}")


def fetch_runs(repo: str, sha: str, token: str) -> list[dict[str, Any]]:
    url = (
        f"https://api.github.com/repos/{repo}/actions/workflows/{CI_WORKFLOW}/runs?head_sha={sha}&per_page=50"
    )
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        runs: list[dict[str, Any]] = json.load(response)["workflow_runs"]
    return runs


def wait(
    fetch: Callable[[], list[dict[str, Any]]],
    sha: str,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = TIMEOUT_SECONDS,
    poll: float = POLL_SECONDS,
) -> Verdict:
    waited = 0.0
    while True:
        result = verdict(fetch(), sha)
        print(result.reason, flush=True)
        if result.done:
            return result
        if waited >= timeout:
            return Verdict(True, False, f"gave up after {int(waited)} s: {result.reason}")
        sleep(poll)
        waited += poll


def main() -> int:
    repo, sha, token = (os.environ[k] for k in ("GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_TOKEN"))
    result = wait(lambda: fetch_runs(repo, sha, token), sha)
    if not result.ok:
        print(f"::error::not deploying: {result.reason}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
