"""Compose the one PR comment of the preview workflow from the files its jobs left in a folder.

Usage: python3 .github/scripts/pr_comment.py REPORTS_DIR [--sha SHA] > comment.md

Files read (all optional; a missing one is reported as such, never skipped silently):
  preview-<stack>.json             `pulumi preview --json` per stack: the comment leads with what
                                   it replaces or deletes (preview_changes.py)
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
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from preview_changes import summary

MARKER = "<!-- rag-platform:pr-preview -->"
GITHUB_COMMENT_LIMIT = 65_536
REPORTS = (
    ("diff-inventory", "Inventory diff"),
    ("security-scan", "Checkov summary"),
    ("cost", "Cost of this PR against its base"),
)
# Stacks are whatever the preview jobs left reports for: the list is the stack files', not ours.
_PREVIEW_FILE = re.compile(r"^preview-(?P<stack>[^.]+)\.(?:txt|outcome|json)$")
# Sections of at most this many characters each, for up to this many stacks, leave room for
# headings, status lines, the replace/delete summary and the marker.
SECTION_BUDGET = (GITHUB_COMMENT_LIMIT - 8_000) // (len(REPORTS) + 4)


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


def section(title: str, text: str | None, ok: bool | None, budget: int = SECTION_BUDGET) -> str:
    body = _fence(text, budget) if text else "_no output_"
    return f"<details><summary><b>{title}</b>: {_status(ok)}</summary>\n\n{body}\n\n</details>"


def stacks_in(reports: Path) -> list[str]:
    return sorted({m.group("stack") for p in reports.glob("preview-*") if (m := _PREVIEW_FILE.match(p.name))})


def compose(reports: Path, sha: str = "") -> str:
    stacks = stacks_in(reports)
    budget = (GITHUB_COMMENT_LIMIT - 8_000) // (len(REPORTS) + max(len(stacks), 1))
    parts = [MARKER, f"### Preview of this pull request{f' at {sha[:12]}' if sha else ''}", ""]
    parts.append(
        "#### Replaced or deleted\n\n"
        + "\n\n".join(summary(s, reports / f"preview-{s}.json") for s in stacks)
    )
    for stack in stacks:
        outcome = _read(reports / f"preview-{stack}.outcome")
        ok = None if outcome is None else outcome == "success"
        parts.append(
            section(f"pulumi preview --diff ({stack})", _read(reports / f"preview-{stack}.txt"), ok, budget)
        )
    for target, title in REPORTS:
        rc = _read(reports / f"{target}.rc")
        ok = None if rc is None else rc == "0"
        parts.append(section(f"{title} (make {target})", _read(reports / f"{target}.txt"), ok, budget))
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
