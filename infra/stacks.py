"""The stacks of this project: one per `Pulumi.<stack>.yaml` beside `Pulumi.yaml`.

Every review tool (inventory, diff, cost, security scan, rehearsal), the bootstrap's deploy
roles and the deploy workflow take their stack list from here, so adding a stack file is the
only step to bring a new stack under review, give it a deploy role and put it in the deploy
order. The order itself is declared once, in `infra/tiers.yaml`: CI deploys every stack of the
first tier, then the next tier's, each after the one before passed its post-deploy suite.

Standard library only: CI's `stacks` jobs and bootstrap/deployers.py run it before any install.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.contract import PROJECT

ROOT = Path(__file__).resolve().parent.parent
TIERS_FILE = Path("infra") / "tiers.yaml"
_STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.yaml$")
# GitHub environment names become IAM role names and `vars` names (docs/cicd.md).
_GITHUB_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# The ephemeral per-PR stacks (`.github/workflows/ephemeral.yml`) get their own deploy role.
EPHEMERAL_ENVIRONMENT = "ephemeral"
EPHEMERAL_STACKS = "pr-*"
# The stack whose config ephemeral.yml copies into a PR stack (`--copy-config-from`).
EPHEMERAL_SOURCE = "staging"


class StackListError(ValueError):
    """A stack file or infra/tiers.yaml that cannot place a stack in the deploy order."""


@dataclass(frozen=True)
class Tier:
    """What sizing tier a stack is in decides beyond the values of its own file."""

    name: str
    # The `ha-in-prod` policy: search with 3 data nodes in 3 zones and 3 dedicated masters.
    high_availability: bool
    # The permissions boundary keeps every other stack's roles off this stack's resources.
    protected: bool
    # The post-deploy retrieval gate seeds its golden documents; off where no test data may land.
    gate: bool


@dataclass(frozen=True)
class Stack:
    name: str
    tier: Tier
    # The GitHub environment whose approvals and OIDC claim guard the stack's deploy.
    github_environment: str

    @property
    def role_variable(self) -> str:
        return role_variable(self.github_environment)


def role_variable(github_environment: str) -> str:
    """The repository variable holding a deploy role's ARN: bootstrap/ exports it, deploy.yml reads it."""
    return "AWS_DEPLOY_ROLE_ARN_" + github_environment.upper().replace("-", "_")


def stack_names(root: Path = ROOT) -> tuple[str, ...]:
    """Stack names from the stack files under `root`, sorted; empty if there are none."""
    return tuple(
        sorted(m.group("stack") for p in root.glob("Pulumi.*.yaml") if (m := _STACK_FILE.match(p.name)))
    )


def _value(text: str) -> str:
    return text.split(" #", 1)[0].strip().strip("'\"")


def read_tiers(root: Path = ROOT) -> tuple[Tier, ...]:
    """The tiers of `infra/tiers.yaml`, in deploy order.

    Read with the standard library (bootstrap/deployers.py runs before any install): the file
    is a flat list of `- name:` items with `key: true|false` lines.
    """
    items: list[dict[str, str]] = []
    for line in (root / TIERS_FILE).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := re.match(r"^\s*-\s*name:\s*(.+)$", line):
            items.append({"name": _value(match.group(1))})
        elif (match := re.match(r"^\s+(\w+):\s*(.+)$", line)) and items:
            items[-1][match.group(1)] = _value(match.group(2))
    tiers: list[Tier] = []
    for index, item in enumerate(items):
        try:
            flags = {k: item[k] == "true" for k in ("highAvailability", "protected", "gate")}
        except KeyError as error:
            raise StackListError(f"{TIERS_FILE}: tiers[{index}] lacks {error}") from error
        tiers.append(Tier(item["name"], flags["highAvailability"], flags["protected"], flags["gate"]))
    if not tiers:
        raise StackListError(f"{TIERS_FILE}: no tiers")
    return tuple(tiers)


def _stack_config(root: Path, stack: str, project: str) -> dict[str, str]:
    """The stack file's flat `<project>:<key>: value` lines (the nested sections are not needed here)."""
    pattern = re.compile(rf"^\s+{re.escape(project)}:(\w+):\s*(\S.*)$")
    lines = (root / f"Pulumi.{stack}.yaml").read_text().splitlines()
    return {f"{project}:{m.group(1)}": _value(m.group(2)) for line in lines if (m := pattern.match(line))}


def read_stacks(root: Path = ROOT, project: str = PROJECT) -> tuple[Stack, ...]:
    """Every stack file's stack, in deploy order: by tier, then by name."""
    tiers = read_tiers(root)
    by_name = {t.name: t for t in tiers}
    stacks: list[Stack] = []
    for name in stack_names(root):
        config = _stack_config(root, name, project)
        tier_name = config.get(f"{project}:tier")
        if tier_name not in by_name:
            raise StackListError(
                f"Pulumi.{name}.yaml: {project}:tier is {tier_name!r}, "
                f"not one of {sorted(by_name)} ({TIERS_FILE})"
            )
        environment = str(config.get(f"{project}:githubEnvironment", name))
        if not _GITHUB_ENVIRONMENT.match(environment) or environment == EPHEMERAL_ENVIRONMENT:
            raise StackListError(
                f"Pulumi.{name}.yaml: {project}:githubEnvironment {environment!r} must match "
                f"{_GITHUB_ENVIRONMENT.pattern} and not be {EPHEMERAL_ENVIRONMENT!r}"
            )
        stacks.append(Stack(name, by_name[tier_name], environment))
    environments = [s.github_environment for s in stacks]
    shared = sorted({e for e in environments if environments.count(e) > 1})
    if shared:
        raise StackListError(f"{project}:githubEnvironment {shared} is shared by stacks; each needs its own")
    rank = {t.name: i for i, t in enumerate(tiers)}
    return tuple(sorted(stacks, key=lambda s: (rank[s.tier.name], s.name)))


def first_stack(root: Path = ROOT) -> str:
    """The first stack of the deploy order: what single-stack tools run on by default."""
    stacks = read_stacks(root)
    if not stacks:
        raise StackListError(f"no Pulumi.<stack>.yaml in {root}")
    return stacks[0].name


def deploy_matrix(root: Path = ROOT) -> dict[str, list[dict[str, Any]]]:
    """The deploy workflow's matrix: one entry per stack, in deploy order."""
    return {
        "include": [
            {
                "stack": s.name,
                "environment": s.github_environment,
                "role_variable": s.role_variable,
                "gate": s.tier.gate,
            }
            for s in read_stacks(root)
        ]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The stacks, from the Pulumi.<stack>.yaml files")
    parser.add_argument("what", choices=["names", "deploy-matrix"])
    parser.add_argument("--github-output", type=Path, help="append `<what>=<json>` to $GITHUB_OUTPUT")
    args = parser.parse_args(argv)
    value: Any = list(stack_names()) if args.what == "names" else deploy_matrix()
    text = json.dumps(value, separators=(",", ":"))
    if args.github_output:
        with args.github_output.open("a") as sink:
            sink.write(f"{args.what}={text}\n")
    # Names one a line, for shell loops; the matrix as JSON.
    print("\n".join(value) if args.what == "names" else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
