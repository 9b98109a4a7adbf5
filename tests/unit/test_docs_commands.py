"""Every `make <target>` the docs show in code is a Makefile target (issue 13: `make deploy`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted({*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("bootstrap/*.md")})
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_SPAN = re.compile(r"`([^`\n]+)`")
_MAKE = re.compile(r"(?<![\w-])make ([a-z][a-z0-9-]*)")


def make_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"(?m)^([a-z][a-z0-9-]*):(?!=)", makefile.read_text()))


def cited_targets(markdown: str) -> set[str]:
    """Targets after `make` in fenced blocks and inline code; prose ("make one attempt") is not a command."""
    code = _FENCE.findall(markdown)
    prose = _FENCE.sub("", markdown)
    code += _SPAN.findall(prose)
    return {target for chunk in code for target in _MAKE.findall(chunk)}


def test_the_scan_finds_a_missing_target() -> None:
    # Given a doc citing a target in a fenced block, another inline, and "make" in prose
    doc = "Run `make cost`.\n```text\nrun make deploy with STACK=staging\n```\nWrites make one attempt.\n"
    # Then both commands are found, and the prose is not
    assert cited_targets(doc) == {"cost", "deploy"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_a_doc_cites_exists(doc: Path) -> None:
    # Given the Makefile's targets, When a doc's code cites `make <target>`, Then the target exists
    missing = cited_targets(doc.read_text()) - make_targets(ROOT / "Makefile")
    assert not missing, f"{doc.relative_to(ROOT)} cites make targets the Makefile lacks: {sorted(missing)}"
