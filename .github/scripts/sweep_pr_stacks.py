"""Which `pr-<number>` stacks leaked: their pull request is no longer open.

`ephemeral.yml` destroys a PR's stack after its run and again when the PR closes; a cancelled
runner or a failed destroy still leaves one behind, billed until someone notices. The scheduled
sweeper (`sweep-pr-stacks.yml`) destroys what this prints. Usage:
`python3 .github/scripts/sweep_pr_stacks.py STACKS_JSON OPEN_PRS_JSON` where STACKS_JSON is
`pulumi stack ls --json` and OPEN_PRS_JSON is `gh pr list --state open --json number`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_PR_STACK = re.compile(r"^pr-(?P<number>[0-9]+)$")


def leaked(stacks: list[dict[str, Any]], open_prs: list[dict[str, Any]]) -> list[str]:
    """Short names of the `pr-<n>` stacks whose PR is not open; never any other stack."""
    still_open = {int(pr["number"]) for pr in open_prs}
    found = []
    for stack in stacks:
        # `pulumi stack ls` names a stack `org/project/name` on the Cloud backend, `name` on others.
        name = str(stack["name"]).rsplit("/", 1)[-1]
        match = _PR_STACK.match(name)
        if match and int(match.group("number")) not in still_open:
            found.append(name)
    return sorted(found)


def main(argv: list[str]) -> int:
    stacks_file, prs_file = argv
    stacks = json.loads(Path(stacks_file).read_text(encoding="utf-8") or "[]")
    prs = json.loads(Path(prs_file).read_text(encoding="utf-8") or "[]")
    print("\n".join(leaked(stacks, prs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
