"""The stacks CI previews, rehearses and checks for drift, as the JSON list a job matrix reads.

The list itself is `infra/stacks.py` (one stack per committed `Pulumi.<stack>.yaml`), the same
one the review tools use; this only prints it. Usage, from the repository root:
`python3 .github/scripts/stacks.py [--github-output]`. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from infra.stacks import stack_names  # noqa: E402 - after the repository root is importable


def stacks(root: Path = ROOT) -> list[str]:
    names = list(stack_names(root))
    if not names:
        raise SystemExit(f"no Pulumi.<stack>.yaml in {root}")
    return names


def main(argv: list[str]) -> int:
    listed = json.dumps(stacks())
    print(f"list={listed}" if "--github-output" in argv else listed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
