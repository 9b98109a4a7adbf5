"""Cold import time of each Lambda handler, from `python -X importtime` (target <= 1.5 s).

Each handler module is imported in a fresh interpreter, several times; the median of
the cumulative time of the handler's own module line is reported. This measures this
machine's interpreter and the project virtualenv (the artifact itself is built for the
Lambda architecture and may not import here).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

HANDLERS = ("service.handlers.ingest", "service.handlers.api")
TARGET_SECONDS = 1.5
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$")


def cumulative_seconds(stderr: str, module: str) -> float:
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) == module:
            return int(match.group(2)) / 1_000_000
    raise ValueError(f"{module} not found in -X importtime output")


def measure(module: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"import {module} failed:\n{result.stderr[-1500:]}")
        samples.append(cumulative_seconds(result.stderr, module))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    worst = 0.0
    for module in HANDLERS:
        try:
            seconds = measure(module, args.runs)
        except RuntimeError as error:
            print(f"{module}: not measurable ({str(error).splitlines()[0]})")
            continue
        worst = max(worst, seconds)
        print(f"{module}: {seconds:.3f} s cold import (median of {args.runs}, target <= {TARGET_SECONDS} s)")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
