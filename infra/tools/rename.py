"""`make rename NAME=acme-rag`: give a fork its own project name.

The name lives in `Pulumi.yaml`'s `name` (service/contract.py reads it from there); what
cannot read it is rewritten here:

- `Pulumi.yaml`'s `name`, and bootstrap/Pulumi.yaml's `<name>-bootstrap`;
- the `<name>:` prefix of every config key in every `Pulumi.<stack>.yaml` (and values that
  start with the name, such as `costCenter: <name>-staging`);
- mentions in the docs (README.md, FORKING.md, docs/, bootstrap/README.md).

Code, tests and workflows derive the name and are left alone, as is pyproject.toml's
distribution name (nothing deployed carries it, and the hash-locked installs name it). Run it
on a clean tree and review `git diff`; a second run with the same name changes nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from infra.stacks import ROOT, stack_names
from service.contract import project_name

# Lowercase, digits and hyphens: the name starts every physical resource name (S3 buckets
# allow no capitals or underscores, https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
# 40 characters keeps `<name>-<stack>-<purpose>` role names under IAM's 64 (infra/naming.py).
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
NAME_MAX = 40
# docs/examples/ holds stack-file snippets whose keys carry the name too.
DOC_GLOBS = ("README.md", "FORKING.md", "docs/**/*.md", "docs/**/*.yaml", "bootstrap/README.md")


def check_name(name: str) -> str:
    if not NAME.match(name) or len(name) > NAME_MAX:
        raise ValueError(
            f"NAME={name!r}: lowercase letters, digits and single hyphens, starting with a letter, "
            f"at most {NAME_MAX} characters"
        )
    return name


def rename(new: str, root: Path = ROOT) -> list[Path]:
    """Rename the project under `root` to `new`; the files changed."""
    check_name(new)
    old = project_name(root / "Pulumi.yaml")
    if old == new:
        return []
    # The old name as a word of its own: `rag-platform:`, `rag-platform-staging`, not `my-rag-platform`.
    word = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(old)}(?![A-Za-z0-9_])")
    files = [root / "Pulumi.yaml", root / "bootstrap" / "Pulumi.yaml"]
    files += [root / f"Pulumi.{stack}.yaml" for stack in stack_names(root)]
    files += sorted({p for pattern in DOC_GLOBS for p in root.glob(pattern) if p.is_file()})
    changed: list[Path] = []
    for path in files:
        if not path.exists():
            continue
        text = path.read_text()
        new_text = word.sub(new, text)
        if new_text != text:
            path.write_text(new_text)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    try:
        changed = rename(args.name, args.root)
    except ValueError as error:
        print(f"rename: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"renamed in {path.relative_to(args.root)}")
    print(f"rename: {len(changed)} files changed; project is now {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
