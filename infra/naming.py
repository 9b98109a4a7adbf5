"""Physical names of resources whose AWS name limit a fork's project name can exceed.

Every name starts `<project>-<stack>`. The deploy roles may only create and pass roles named
`<project>-<stack>-*` (`bootstrap/program.py`), so every role gets an explicit name under that
prefix; an automatic name (`<logical name>-<random>`) would be refused with AccessDenied on the
first deploy. A name over its limit is never cut silently: it ends in a stable hash of the whole
name instead (`service.contract.fit_name`).
"""

from __future__ import annotations

import re

from infra import aws_catalog
from service.contract import NAME_HASH_CHARS, OPENSEARCH_DOMAIN_NAME_MAX, PROJECT, fit_name

_PURPOSE = re.compile(r"^[a-z][a-z0-9-]*$")
DOMAIN_NAME_MAX = OPENSEARCH_DOMAIN_NAME_MAX


def stack_prefix(stack: str, project: str = PROJECT) -> str:
    return f"{project}-{stack}"


def domain_name(stack: str, project: str = PROJECT) -> str:
    """The stack's OpenSearch domain: `<project>-<stack>`, hash-suffixed beyond 28 characters."""
    return fit_name(stack_prefix(stack, project), DOMAIN_NAME_MAX)


def role_name(stack: str, purpose: str, project: str = PROJECT) -> str:
    """`<project>-<stack>-<purpose>`, hash-suffixed beyond IAM's limit with the prefix kept whole.

    The deploy roles match on `<project>-<stack>-*`, so only the purpose may give way; a name
    whose prefix alone leaves no room for the hash is refused, naming the limit.
    """
    if not _PURPOSE.match(purpose):
        raise ValueError(f"role purpose {purpose!r} must match {_PURPOSE.pattern}")
    prefix = f"{stack_prefix(stack, project)}-"
    name = f"{prefix}{purpose}"
    limit = aws_catalog.iam_role_name_max()
    if len(name) > limit and len(prefix) + NAME_HASH_CHARS >= limit:
        raise ValueError(
            f"IAM role name {name!r} has {len(name)} characters; IAM allows {limit}, and its prefix "
            f"{prefix!r}, which the deploy roles match on, leaves no room for a hash suffix"
        )
    return fit_name(name, limit)
