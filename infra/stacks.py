"""The stacks of this project: one per `Pulumi.<stack>.yaml` beside `Pulumi.yaml`.

Every review tool (inventory diff, cost, security scan) takes its stack list from here, so
adding a stack file is the only step to bring a new stack under review.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.yaml$")


def stack_names(root: Path = ROOT) -> tuple[str, ...]:
    """Stack names from the stack files under `root`, sorted; empty if there are none."""
    return tuple(
        sorted(m.group("stack") for p in root.glob("Pulumi.*.yaml") if (m := _STACK_FILE.match(p.name)))
    )
