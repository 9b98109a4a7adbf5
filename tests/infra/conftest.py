"""Whole-stack runs under Pulumi mocks, once per test session.

`run_stack` sets the mocks and the stack's config before it executes the program, in a
fresh context, so staging and prod runs do not leak into each other.
"""

from __future__ import annotations

import pytest

from infra.naming import domain_name
from infra.tools.offline import StackRun, run_stack
from service.contract import PROJECT

# A per-PR stack as ephemeral.yml makes it: the source stack's config under the name pr-42.
PR_STACK = "pr-42"
pr_stacks_fit = pytest.mark.skipif(
    domain_name(PR_STACK) != f"{PROJECT}-{PR_STACK}",
    reason="a project name this long hashes PR stacks' search domain names (infra/naming.py), which no "
    "`pr-*` glob of the ephemeral role can match without matching other stacks: per-PR stacks need "
    "`<project>-pr-<number>` within OpenSearch's 28 characters",
)


@pytest.fixture(scope="session")
def staging() -> StackRun:
    return run_stack("staging")


@pytest.fixture(scope="session")
def prod() -> StackRun:
    return run_stack("prod")


# Issue 15: staging with the stack's own Cognito pool; signing in needs the NAT (infra/config.py).
COGNITO_OVERRIDES = {
    f"{PROJECT}:auth": {
        "cognito": {"enabled": True},
        "groupMap": {
            "eng": {"workspaces": ["default"], "role": "writer"},
            "ops": {"workspaces": ["*"], "role": "admin"},
        },
    },
    f"{PROJECT}:network": {"cidr": "10.40.0.0/16", "azCount": 2, "natGateway": True},
}


@pytest.fixture(scope="session")
def cognito_staging() -> StackRun:
    return run_stack("staging", COGNITO_OVERRIDES)


@pytest.fixture(scope="session")
def pr_stack() -> StackRun:
    return run_stack(PR_STACK)
