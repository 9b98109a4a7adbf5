"""`make diff-inventory BASE=<ref>`: what a PR changes in the declared infrastructure, for both stacks.

The base is exported with `git archive` into a temporary directory (no change to the
working tree or to git state) and its own program is run there under mocks; the
working tree is run in place. Resources are matched by type and logical name, and
properties are compared by dotted path.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from infra.tools.inventory import inventory
from infra.tools.offline import ROOT

STACKS = ("staging", "prod")
GIT = shutil.which("git") or "git"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as `a.b[0].c` paths; JSON-string policies are expanded so diffs are readable."""
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _index(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['type']} {r['name']}": flatten(r["inputs"]) for r in doc.get("resources", [])}


def diff_documents(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    old, new = _index(base), _index(head)
    lines: list[str] = []
    for key in sorted(new.keys() - old.keys()):
        lines.append(f"+ {key}")
    for key in sorted(old.keys() - new.keys()):
        lines.append(f"- {key}")
    for key in sorted(old.keys() & new.keys()):
        changed = sorted(p for p in old[key].keys() | new[key].keys() if old[key].get(p) != new[key].get(p))
        if changed:
            lines.append(f"~ {key}")
            lines += [
                f"    {p}: {old[key].get(p, '<unset>')!r} -> {new[key].get(p, '<unset>')!r}" for p in changed
            ]
    return lines


def _base_inventory(ref: str, stack: str, workdir: Path) -> dict[str, Any]:
    if not (workdir / "infra" / "tools" / "inventory.py").exists():
        return {"resources": []}
    result = subprocess.run(
        [sys.executable, "-m", "infra.tools.inventory", "--stack", stack],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"inventory of {ref} ({stack}) failed:\n{result.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def export_ref(ref: str, target: Path) -> None:
    archive = subprocess.run(
        [GIT, "archive", "--format=tar", ref],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"cannot read base {ref!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="origin/main")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rag-platform-base-") as tmp:
        export_ref(args.base, Path(tmp))
        for stack in STACKS:
            lines = diff_documents(_base_inventory(args.base, stack, Path(tmp)), inventory(stack))
            print(f"=== {stack}: {args.base} -> working tree ({len(lines)} lines) ===")
            print("\n".join(lines) if lines else "no infrastructure changes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
