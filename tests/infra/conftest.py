"""Whole-stack runs under Pulumi mocks, once per test session.

`run_stack` sets the mocks and the stack's config before it executes the program, in a
fresh context, so staging and prod runs do not leak into each other.
"""

from __future__ import annotations

import pytest

from infra.tools.offline import StackRun, run_stack


@pytest.fixture(scope="session")
def staging() -> StackRun:
    return run_stack("staging")


@pytest.fixture(scope="session")
def prod() -> StackRun:
    return run_stack("prod")
