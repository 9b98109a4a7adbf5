"""Whole-stack runs under Pulumi mocks, once per test session.

`run_stack` sets the mocks and the stack's config before it executes the program, in a
fresh context, so staging and prod runs do not leak into each other.
"""

from __future__ import annotations

import pytest

from infra.tools.offline import StackRun, run_stack
from service.contract import PROJECT


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
