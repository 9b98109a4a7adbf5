"""Compose the one PR comment of the preview workflow from the files its jobs left in a folder.

Usage: python3 .github/scripts/pr_comment.py REPORTS_DIR [--sha SHA] > comment.md

Files read (all optional; a missing one is reported as such, never skipped silently):
  preview-<stack>.txt / .outcome   output and outcome of `pulumi preview --diff` per stack
  <target>.txt / .rc               output and exit status of `make diff-inventory|security-scan|cost`

The first line is a hidden marker by which the workflow finds and updates its earlier comment.
GitHub rejects comment bodies over 65,536 characters
(https://docs.github.com/en/rest/issues/comments#create-an-issue-comment), so each section
is cut to its share of that budget and says so. Standard library only: the comment job
installs nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

MARKER = "<!-- rag-platform:pr-preview -->"
GITHUB_COMMENT_LIMIT = 65_536
STACKS = ("staging", "prod")
REPORTS = (
    ("diff-inventory", "Inventory diff"),
    ("security-scan", "Checkov summary"),
    ("cost", "Cost delta"),
)
SECTION_COUNT = len(STACKS) + len(REPORTS)
# Room for headings, status lines and the marker.
SECTION_BUDGET = (GITHUB_COMMENT_LIMIT - 4_000) // SECTION_COUNT


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else None


def _fence(text: str, budget: int = SECTION_BUDGET) -> str:
    if len(text) > budget:
        # Keep the end: Pulumi and checkov print their summaries last.
        cut = len(text) - budget
        text = f"... (first {cut} characters cut; the full text is in the run's artifacts)\n{text[-budget:]}"
    text = text.replace("```", "`\u200b``")
    return f"```\n{text}\n```"


def _status(ok: bool | None) -> str:
    return {True: "passed", False: "**failed**", None: "did not run"}[ok]


def section(title: str, text: str | None, ok: bool | None) -> str:
    body = _fence(text) if text else "_no output_"
    return f"<details><summary><b>{title}</b>: {_status(ok)}</summary>\n\n{body}\n\n</details>"


def compose(reports: Path, sha: str = "") -> str:
    parts = [MARKER, f"### Preview of this pull request{f' at {sha[:12]}' if sha else ''}", ""]
    for stack in STACKS:
        outcome = _read(reports / f"preview-{stack}.outcome")
        ok = None if outcome is None else outcome == "success"
        parts.append(section(f"pulumi preview --diff ({stack})", _read(reports / f"preview-{stack}.txt"), ok))
    for target, title in REPORTS:
        rc = _read(reports / f"{target}.rc")
        ok = None if rc is None else rc == "0"
        parts.append(section(f"{title} (make {target})", _read(reports / f"{target}.txt"), ok))
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", type=Path)
    parser.add_argument("--sha", default="")
    args = parser.parse_args(argv)
    sys.stdout.write(compose(args.reports, args.sha))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
