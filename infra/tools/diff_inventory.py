"""`make diff-inventory BASE=<ref>`: what a PR changes in the declared infrastructure, per stack.

The base is exported with `git archive` into a temporary directory (no change to the
working tree or to git state) and its own program is run there under mocks; the
working tree is run in place. Resources are matched by type and logical name, and
properties are compared by dotted path.

The diff is stable, so a reviewer sees only what the PR changes:
- file paths are made relative to the checkout they were read from (the base runs in a
  temporary directory);
- IAM policy statements are keyed by their `Sid` (else by their content), so adding one
  statement is one added block, not a cascade of `Statement[n]` index shifts;
- lists whose order AWS ignores (actions, resources, principals, subnets, security groups)
  are compared sorted.
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

from infra.stacks import stack_names
from infra.tools.inventory import inventory
from infra.tools.offline import ROOT

GIT = shutil.which("git") or "git"
# Keys whose list values AWS treats as sets.
UNORDERED = frozenset(
    {
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "AWS",
        "Service",
        "Federated",
        "subnetIds",
        "securityGroupIds",
        "vpcSecurityGroupIds",
        "routeTableIds",
        "securityGroupIdsLists",
    }
)
CHECKOUT = "<checkout>"


def _statement_key(statement: Any) -> str:
    if isinstance(statement, dict) and isinstance(statement.get("Sid"), str) and statement["Sid"]:
        return str(statement["Sid"])
    return json.dumps(statement, sort_keys=True)


def flatten(value: Any, prefix: str = "", root: str = str(ROOT)) -> dict[str, Any]:
    """Nested inputs as `a.b[0].c` paths; JSON-string policies are expanded so diffs are readable."""
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    key = prefix.rsplit(".", 1)[-1]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            out.update(flatten(item, f"{prefix}.{name}" if prefix else str(name), root))
        return out
    if isinstance(value, list) and key == "Statement":
        out = {}
        for statement in value:
            out.update(flatten(statement, f"{prefix}[{_statement_key(statement)}]", root))
        return out
    if isinstance(value, list):
        items = sorted(value, key=lambda v: json.dumps(v, sort_keys=True)) if key in UNORDERED else value
        out = {}
        for i, item in enumerate(items):
            out.update(flatten(item, f"{prefix}[{i}]", root))
        return out
    if isinstance(value, str) and value.startswith(root):
        value = CHECKOUT + value[len(root) :]
    return {prefix: value}


def _index(doc: dict[str, Any], root: str) -> dict[str, dict[str, Any]]:
    return {f"{r['type']} {r['name']}": flatten(r["inputs"], root=root) for r in doc.get("resources", [])}


def diff_documents(
    base: dict[str, Any], head: dict[str, Any], base_root: str = str(ROOT), head_root: str = str(ROOT)
) -> list[str]:
    old, new = _index(base, base_root), _index(head, head_root)
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


def base_inventory(ref: str, stack: str, workdir: Path) -> dict[str, Any]:
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
    parser.add_argument("--stacks", nargs="+", default=list(stack_names()))
    args = parser.parse_args(argv)
    changed = False
    with tempfile.TemporaryDirectory(prefix="infra-base-") as tmp:
        export_ref(args.base, Path(tmp))
        base_root = str(Path(tmp).resolve())
        for stack in args.stacks:
            lines = diff_documents(
                base_inventory(args.base, stack, Path(tmp)), inventory(stack), base_root=base_root
            )
            changed = changed or bool(lines)
            print(f"=== {stack}: {args.base} -> working tree ({len(lines)} lines) ===")
            print("\n".join(lines) if lines else "no infrastructure changes")
    print("infrastructure changes: see above" if changed else "no changes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
