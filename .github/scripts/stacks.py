"""The stacks CI previews, rehearses and checks for drift, as the JSON list a job matrix reads.

The list itself is `infra/stacks.py` (one stack per committed `Pulumi.<stack>.yaml`), the same
one the review tools use; who may preview, drift-check and decrypt each stack is
`bootstrap/deployers.py`. Usage, from the repository root, standard library only:

  python3 .github/scripts/stacks.py [--github-output]            every stack
  python3 .github/scripts/stacks.py --pull-request [--github-output]
        the stacks a pull request previews (never one whose secrets PR code must not read)
  python3 .github/scripts/stacks.py --drift [--github-output]     the drift-checked stacks
  python3 .github/scripts/stacks.py --secrets-provider STACK      the stack's secrets provider
  python3 .github/scripts/stacks.py --ephemeral-source             the stack a PR stack copies its config from
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bootstrap.deployers import deployer_for  # noqa: E402 - after the repository root is importable
from infra.stacks import EPHEMERAL_SOURCE, stack_names  # noqa: E402


def stacks(root: Path = ROOT, *, pull_request: bool = False, drift: bool = False) -> list[str]:
    names = list(stack_names(root))
    if not names:
        raise SystemExit(f"no Pulumi.<stack>.yaml in {root}")
    if pull_request:
        names = [n for n in names if deployer_for(n).previewed_by_pull_requests]
    if drift:
        names = [n for n in names if deployer_for(n).drift_checked]
    return names


def main(argv: list[str]) -> int:
    if "--ephemeral-source" in argv:
        print(EPHEMERAL_SOURCE)
        return 0
    if "--secrets-provider" in argv:
        print(deployer_for(argv[argv.index("--secrets-provider") + 1]).secrets_provider)
        return 0
    listed = json.dumps(stacks(pull_request="--pull-request" in argv, drift="--drift" in argv))
    print(f"list={listed}" if "--github-output" in argv else listed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
