"""`make inventory STACK=...`: every resource the program declares for a stack, as one JSON document.

Computed under mocks (no cloud, no credentials): type token, logical name, parent and
inputs, with secret inputs masked. The review tools (diff, security scan, cost) read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from infra.stacks import first_stack
from infra.tools.offline import StackRun, overlaid, run_stack


def _parent_name(run: StackRun, parent: str | None) -> str | None:
    if not parent or parent.split("::")[-2] == "pulumi:pulumi:Stack":
        return None
    return parent.split("::")[-1]


def inventory(stack: str, run: StackRun | None = None) -> dict[str, Any]:
    """The inventory of `stack`, from `run` when the program already ran for it."""
    run = run or run_stack(stack)
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "parent": _parent_name(run, r.parent),
            "custom": r.custom,
            "inputs": r.inputs,
        }
        for r in sorted(run.resources, key=lambda r: (r.type, r.name))
    ]
    outputs = {str(k): ("[secret]" if k in run.secret_outputs else v) for k, v in sorted(run.outputs.items())}
    return {"stack": stack, "resourceCount": len(resources), "resources": resources, "outputs": outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", help="default: the first stack of the deploy order (infra/stacks.py)")
    parser.add_argument(
        "--overlay",
        type=Path,
        help="a docs/examples/ snippet whose config keys replace the staging file's (issue 13)",
    )
    args = parser.parse_args(argv)
    args.stack = args.stack or first_stack()
    with overlaid(args.stack, args.overlay) if args.overlay else nullcontext():
        document = inventory(args.stack)
    json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
