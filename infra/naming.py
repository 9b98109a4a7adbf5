"""Physical names of the IAM roles the program creates.

The deploy roles may only create and pass roles named `<project>-*`
(`bootstrap/program.py`), so every role gets an explicit name under
`<project>-<stack>-`; an automatic name (`<logical name>-<random>`) would be refused
with AccessDenied on the first deploy.
"""

from __future__ import annotations

import re

from infra import aws_catalog
from service.contract import PROJECT

_PURPOSE = re.compile(r"^[a-z][a-z0-9-]*$")


def stack_prefix(stack: str) -> str:
    return f"{PROJECT}-{stack}"


def role_name(stack: str, purpose: str) -> str:
    """`rag-platform-<stack>-<purpose>`, refused (not truncated) beyond IAM's length limit.

    Truncating could make two roles collide or cut the prefix the deploy roles match on.
    """
    if not _PURPOSE.match(purpose):
        raise ValueError(f"role purpose {purpose!r} must match {_PURPOSE.pattern}")
    name = f"{stack_prefix(stack)}-{purpose}"
    limit = aws_catalog.iam_role_name_max()
    if len(name) > limit:
        raise ValueError(f"IAM role name {name!r} has {len(name)} characters; IAM allows {limit}")
    return name
