"""Cold start of each Lambda handler, measured from the artifact (target <= 1.5 s per handler).

Each function of the stack's inventory is started several times, each in a fresh isolated
interpreter on the unpacked artifact, with its own environment, against the local cloud
of `infra.tools.artifact_smoke` (the API reads its keys from Secrets Manager at init).
Reported per handler:
- `init`, the median: what Lambda reports as Init Duration, here the import of the handler
  module with its module-level set-up (the runtime imports it with `importlib.import_module`,
  whose top module `-X importtime` does not list, so the time is taken around the call);
- from one more cold start under `python -X importtime`, the packages that take longest
  to import (self time summed per top-level package).
And the artifact's size, zipped and unzipped. On another platform than Lambda's the
figures are those of a host build of the same locked versions (the report says which).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
from collections import defaultdict
from pathlib import Path

from infra.stacks import first_stack
from infra.tools.artifact_functions import describe, lambda_functions
from infra.tools.artifact_smoke import (
    default_python,
    load_inventory,
    prepare,
    session,
    unzipped_bytes,
)

TARGET_SECONDS = 1.5
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$")


def heaviest_packages(stderr: str, count: int = 5) -> list[tuple[str, float]]:
    """Top-level packages by summed self time, in seconds."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            totals[match.group(3).strip().split(".")[0]] += int(match.group(1)) / 1_000_000
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", help="default: the first stack of the deploy order (infra/stacks.py)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--python", default=os.environ.get("SMOKE_PYTHON") or default_python())
    # A benchmark, not a gate by default: timings on a shared machine vary with its load.
    parser.add_argument("--enforce", action="store_true", help="exit 1 when a handler is over the target")
    args = parser.parse_args(argv)
    args.stack = args.stack or first_stack()
    from infra.tools.artifact_scenarios import store_api_keys

    artifact, sdk_dirs, description = prepare(args.python, args.artifact, host_build=False)
    inventory = load_inventory(args.stack, None)
    functions = lambda_functions(inventory)
    print(f"importtime: {description}")
    worst = 0.0
    with session(args.stack, inventory, artifact, args.python, sdk_dirs) as smoke:
        store_api_keys(smoke, functions)
        for fn in functions:
            for number in range(args.runs):
                run = smoke.start(fn, [], f"cold start {number + 1}")
                if run.init_error is not None:
                    print(f"{fn.handler}: does not start: {describe(run.init_error)}")
                    return 1
            init = statistics.median(smoke.init_ms[fn.name]) / 1000
            worst = max(worst, init)
            smoke.interpreter_flags = ("-X", "importtime")
            heavy = heaviest_packages(smoke.start(fn, [], "importtime").log)
            smoke.interpreter_flags = ()
            top = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in heavy)
            verdict = "" if init <= TARGET_SECONDS else " OVER TARGET"
            print(
                f"{fn.handler}: init {init:.3f} s (median of {args.runs} cold starts, "
                f"target <= {TARGET_SECONDS} s){verdict}; slowest imports: {top}"
            )
    zipped, unzipped = artifact.stat().st_size / 1_000_000, unzipped_bytes(artifact) / 1_000_000
    print(
        f"artifact: {zipped:.1f} MB zipped, {unzipped:.1f} MB unzipped "
        "(Lambda's limits: 50 MB zipped for a direct upload, 250 MB unzipped)"
    )
    return 1 if args.enforce and worst > TARGET_SECONDS else 0


if __name__ == "__main__":
    raise SystemExit(main())
