"""What a `pulumi preview --json` will replace or delete, by resource: the part of a preview a
reviewer must not miss. Standard library only (the comment job installs nothing).

A replacement shows up as several steps for one URN (`create-replacement`, `replace`,
`delete-replaced`, ...); it is reported once, with the properties that force it
(`replaceReasons`). See the engine's step ops: https://www.pulumi.com/docs/iac/cli/commands/pulumi_preview/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPLACE_OPS = frozenset(
    {
        "replace",
        "create-replacement",
        "delete-replaced",
        "read-replacement",
        "import-replacement",
        "discard-replaced",
    }
)
DELETE_OPS = frozenset({"delete", "discard"})


@dataclass(frozen=True)
class Change:
    action: str  # "replace" or "delete"
    type: str
    name: str
    reasons: tuple[str, ...] = ()

    def line(self) -> str:
        why = f" (forced by: {', '.join(self.reasons)})" if self.reasons else ""
        return f"- **{self.action}** `{self.type}` `{self.name}`{why}"


def _type_and_name(urn: str) -> tuple[str, str]:
    # urn:pulumi:<stack>::<project>::<parent types $-joined>$<type>::<name>
    parts = urn.split("::")
    if len(parts) < 4:
        return "?", urn
    return parts[2].split("$")[-1], "::".join(parts[3:])


def risky_changes(preview: dict[str, Any]) -> list[Change]:
    """Replacements and deletions, one per resource, sorted by action then type and name."""
    found: dict[str, Change] = {}
    for step in preview.get("steps") or []:
        op, urn = step.get("op"), step.get("urn", "")
        if op not in REPLACE_OPS | DELETE_OPS:
            continue
        kind, name = _type_and_name(urn)
        action = "replace" if op in REPLACE_OPS else "delete"
        known = found.get(urn)
        reasons = tuple(sorted({*(known.reasons if known else ()), *(step.get("replaceReasons") or [])}))
        if known is None or action == "replace":
            found[urn] = Change(action, kind, name, reasons)
    return sorted(found.values(), key=lambda c: (c.action, c.type, c.name))


def summary(stack: str, path: Path) -> str:
    """Markdown lines for one stack's preview JSON, or why there are none."""
    if not path.is_file():
        return f"**{stack}**: no preview JSON (the preview did not run or failed)"
    try:
        preview = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return f"**{stack}**: the preview JSON could not be read ({error.msg})"
    changes = risky_changes(preview)
    if not changes:
        return f"**{stack}**: nothing is replaced or deleted"
    return "\n".join(
        [f"**{stack}**: {len(changes)} resource(s) replaced or deleted", *(c.line() for c in changes)]
    )
